#include "vmm/virtio/net_vlan.h"

#include <string.h>

#define ADDRS 12                 /* destination and source MAC */
#define VID_MASK 0x0fff

size_t vs_net_vlan_tag(uint8_t *frame, size_t len, uint16_t vid)
{
    memmove(frame + ADDRS + VS_VLAN_HLEN, frame + ADDRS, len - ADDRS);
    frame[ADDRS] = VS_ETH_P_8021Q >> 8;
    frame[ADDRS + 1] = VS_ETH_P_8021Q & 0xff;
    frame[ADDRS + 2] = (uint8_t)((vid & VID_MASK) >> 8);   /* priority 0, DEI 0 */
    frame[ADDRS + 3] = (uint8_t)vid;
    return len + VS_VLAN_HLEN;
}

size_t vs_net_vlan_untag(uint8_t *frame, size_t len, uint16_t vid)
{
    if (len < ADDRS + VS_VLAN_HLEN + 2 ||
        (frame[ADDRS] << 8 | frame[ADDRS + 1]) != VS_ETH_P_8021Q ||
        ((frame[ADDRS + 2] << 8 | frame[ADDRS + 3]) & VID_MASK) != vid)
        return 0;
    memmove(frame + ADDRS, frame + ADDRS + VS_VLAN_HLEN, len - ADDRS - VS_VLAN_HLEN);
    return len - VS_VLAN_HLEN;
}
