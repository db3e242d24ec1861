#include "vmm/virtio/net_announce.h"

#include <string.h>

#define ARP_HLEN 28             /* Ethernet/IPv4 ARP payload */
#define ARP_OP_REQUEST 1
#define RARP_OP_REQUEST 3
#define IPV4_MIN_HLEN 20

uint32_t vs_net_announce_delay_ms(const struct vs_net_announce_params *p, uint32_t round)
{
    uint64_t d = (uint64_t)p->initial_ms + (uint64_t)(round ? round - 1 : 0) * p->step_ms;
    return d > p->max_ms ? p->max_ms : (uint32_t)d;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Broadcast Ethernet header + Ethernet/IPv4 ARP payload, zero-padded to the minimum. */
static size_t arp_like(uint8_t *buf, uint16_t ethertype, uint16_t op, const uint8_t mac[6],
                       const uint8_t spa[4], const uint8_t tha[6], const uint8_t tpa[4])
{
    memset(buf, 0, VS_ETH_MIN_FRAME);
    memset(buf, 0xff, 6);
    memcpy(buf + 6, mac, 6);
    put16(buf + 12, ethertype);
    uint8_t *a = buf + VS_ETH_HLEN;
    put16(a, 1);                 /* hardware: Ethernet */
    put16(a + 2, VS_ETH_P_IPV4);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, mac, 6);
    memcpy(a + 14, spa, 4);
    memcpy(a + 18, tha, 6);
    memcpy(a + 24, tpa, 4);
    return VS_ETH_MIN_FRAME;
}

size_t vs_net_rarp_frame(uint8_t buf[VS_ETH_MIN_FRAME], const uint8_t mac[6])
{
    static const uint8_t none[4];
    return arp_like(buf, VS_ETH_P_RARP, RARP_OP_REQUEST, mac, none, mac, none);
}

size_t vs_net_garp_frame(uint8_t buf[VS_ETH_MIN_FRAME], const uint8_t mac[6], const uint8_t ip[4])
{
    static const uint8_t zero_mac[6];
    return arp_like(buf, VS_ETH_P_ARP, ARP_OP_REQUEST, mac, ip, zero_mac, ip);
}

/* A host address: not 0.0.0.0, not multicast or broadcast (224.0.0.0 and up), not
 * loopback. */
static bool usable(const uint8_t ip[4])
{
    return ip[0] != 0 && ip[0] != 127 && ip[0] < 224;
}

bool vs_net_learn_ip(const uint8_t *frame, size_t len, const uint8_t mac[6], uint8_t ip[4])
{
    if (len < VS_ETH_HLEN || memcmp(frame + 6, mac, 6) != 0)
        return false;
    const uint8_t *p = frame + VS_ETH_HLEN, *sender;
    size_t plen = len - VS_ETH_HLEN;
    uint16_t type = get16(frame + 12);
    if (type == VS_ETH_P_ARP) {
        if (plen < ARP_HLEN || get16(p) != 1 || get16(p + 2) != VS_ETH_P_IPV4 || p[4] != 6 ||
            p[5] != 4 || memcmp(p + 8, mac, 6) != 0)
            return false;
        sender = p + 14;
    } else if (type == VS_ETH_P_IPV4) {
        if (plen < IPV4_MIN_HLEN || (p[0] >> 4) != 4)
            return false;
        sender = p + 12;
    } else {
        return false;
    }
    if (!usable(sender))
        return false;
    memcpy(ip, sender, 4);
    return true;
}
