/* 802.1Q tags on Ethernet frames, for a NIC in a VLAN: the device tags what its guest sends
 * and takes only frames of its VLAN, which the guest sees untagged. Pure. */
#ifndef VS_NET_VLAN_H
#define VS_NET_VLAN_H

#include <stddef.h>
#include <stdint.h>

#define VS_VLAN_HLEN 4
#define VS_ETH_P_8021Q 0x8100

/* Insert a tag for vid after the addresses of frame[0, len) (len >= 12; the buffer has
 * room for len + VS_VLAN_HLEN bytes). Returns the new length. */
size_t vs_net_vlan_tag(uint8_t *frame, size_t len, uint16_t vid);
/* If frame[0, len) carries a tag for vid, remove it and return the new length; otherwise
 * (untagged, another VLAN, too short) 0. */
size_t vs_net_vlan_untag(uint8_t *frame, size_t len, uint16_t vid);

#endif
