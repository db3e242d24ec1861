#include "net_proto.h"

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

#define ETH_HLEN 14
#define ETH_P_IPV4 0x0800
#define ETH_P_ARP 0x0806
#define ARP_LEN 28
#define IP_PROTO_ICMP 1
#define IP_PROTO_UDP 17
#define ICMP_ECHO_REQUEST 8
#define ICMP_ECHO_REPLY 0
#define UDP_HLEN 8

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static int same(const uint8_t *a, const uint8_t *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

uint16_t vs_net_checksum(const uint8_t *p, unsigned len)
{
    uint32_t sum = 0;

    for (unsigned i = 0; i + 1 < len; i += 2)
        sum += get16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* The Ethernet header of a frame to dst from me. */
static void eth_header(uint8_t *out, const uint8_t dst[6], const struct vs_net_addr *me,
                       uint16_t type)
{
    memcpy(out, dst, 6);
    memcpy(out + 6, me->mac, 6);
    put16(out + 12, type);
}

/* An Ethernet/IPv4 ARP packet (request or reply) from me into out + ETH_HLEN, padded. */
static unsigned arp(const struct vs_net_addr *me, uint8_t *out, uint16_t op,
                    const uint8_t tha[6], const uint8_t tpa[4])
{
    uint8_t *a = out + ETH_HLEN;

    memset(a, 0, VS_NET_MIN_FRAME - ETH_HLEN);
    put16(a, 1);
    put16(a + 2, ETH_P_IPV4);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, me->mac, 6);
    memcpy(a + 14, me->ip, 4);
    memcpy(a + 18, tha, 6);
    memcpy(a + 24, tpa, 4);
    return VS_NET_MIN_FRAME;
}

unsigned vs_net_garp(const struct vs_net_addr *me, uint8_t *out)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t zero[6];

    eth_header(out, bcast, me, ETH_P_ARP);
    return arp(me, out, 1, zero, me->ip);
}

unsigned vs_net_arp_request(const struct vs_net_addr *me, const uint8_t ip[4], uint8_t *out)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t zero[6];

    eth_header(out, bcast, me, ETH_P_ARP);
    return arp(me, out, 1, zero, ip);
}

int vs_net_arp_sender(const uint8_t *in, unsigned len, const uint8_t ip[4], uint8_t mac[6])
{
    const uint8_t *a = in + ETH_HLEN;

    if (len < ETH_HLEN + ARP_LEN || get16(in + 12) != ETH_P_ARP || get16(a) != 1 ||
        get16(a + 2) != ETH_P_IPV4 || a[4] != 6 || a[5] != 4 ||
        (get16(a + 6) != 1 && get16(a + 6) != 2) || !same(a + 14, ip, 4))
        return 0;
    memcpy(mac, a + 8, 6);
    return 1;
}

static unsigned answer_arp(const struct vs_net_addr *me, const uint8_t *in, unsigned len,
                           uint8_t *out)
{
    const uint8_t *a = in + ETH_HLEN;

    if (len < ETH_HLEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != ETH_P_IPV4 || a[4] != 6 ||
        a[5] != 4 || get16(a + 6) != 1 || !same(a + 24, me->ip, 4))
        return 0;
    eth_header(out, a + 8, me, ETH_P_ARP);
    return arp(me, out, 2, a + 8, a + 14);
}

/* An IPv4 packet for me: its header length and total length, or 0. */
static unsigned ip_for_me(const struct vs_net_addr *me, const uint8_t *ip, unsigned avail,
                          unsigned *hlen)
{
    if (avail < 20 || (ip[0] >> 4) != 4)
        return 0;
    *hlen = (ip[0] & 15) * 4u;
    unsigned total = get16(ip + 2);

    if (*hlen < 20 || total < *hlen || total > avail || (get16(ip + 6) & 0x3fff) ||
        !same(ip + 16, me->ip, 4) || vs_net_checksum(ip, *hlen) != 0)
        return 0;   /* short, fragmented, for another host, or damaged */
    return total;
}

/* The reply to an IPv4 packet: the same packet with addresses swapped, a fresh header
 * checksum and TTL; the caller fixes what follows the header. */
static uint8_t *turn_around(const struct vs_net_addr *me, const uint8_t *in, unsigned total,
                            uint8_t *out)
{
    uint8_t *ip = out + ETH_HLEN;

    eth_header(out, in + 6, me, ETH_P_IPV4);
    memcpy(ip, in + ETH_HLEN, total);
    memcpy(ip + 16, in + ETH_HLEN + 12, 4);
    memcpy(ip + 12, me->ip, 4);
    ip[8] = 64;
    return ip;
}

static void seal_ip(uint8_t *ip, unsigned hlen)
{
    put16(ip + 10, 0);
    put16(ip + 10, vs_net_checksum(ip, hlen));
}

unsigned vs_net_udp(const struct vs_net_addr *me, const uint8_t dst_mac[6],
                    const uint8_t dst_ip[4], uint16_t sport, uint16_t dport,
                    const uint8_t *payload, unsigned plen, uint8_t *out)
{
    uint8_t *ip = out + ETH_HLEN, *u = ip + 20;
    unsigned total = 20 + UDP_HLEN + plen, n = ETH_HLEN + total;

    if (n > VS_NET_MAX_FRAME)
        return 0;
    eth_header(out, dst_mac, me, ETH_P_IPV4);
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)total);
    put16(ip + 6, 0x4000);   /* don't fragment */
    ip[8] = 64;
    ip[9] = IP_PROTO_UDP;
    memcpy(ip + 12, me->ip, 4);
    memcpy(ip + 16, dst_ip, 4);
    seal_ip(ip, 20);
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(UDP_HLEN + plen));
    put16(u + 6, 0);
    memcpy(u + UDP_HLEN, payload, plen);
    if (n < VS_NET_MIN_FRAME) {
        memset(out + n, 0, VS_NET_MIN_FRAME - n);
        n = VS_NET_MIN_FRAME;
    }
    return n;
}

static unsigned answer_ip(const struct vs_net_addr *me, const uint8_t *in, unsigned len,
                          uint8_t *out, enum vs_net_answer *kind)
{
    unsigned hlen = 0, total = ip_for_me(me, in + ETH_HLEN, len - ETH_HLEN, &hlen);
    const uint8_t *ip = in + ETH_HLEN;

    if (!total)
        return 0;
    unsigned plen = total - hlen;
    const uint8_t *p = ip + hlen;

    if (ip[9] == IP_PROTO_ICMP && plen >= 8 && p[0] == ICMP_ECHO_REQUEST && p[1] == 0 &&
        vs_net_checksum(p, plen) == 0) {
        uint8_t *r = turn_around(me, in, total, out) + hlen;

        r[0] = ICMP_ECHO_REPLY;
        put16(r + 2, 0);
        put16(r + 2, vs_net_checksum(r, plen));
        *kind = VS_NET_PING;
    } else if (ip[9] == IP_PROTO_UDP && plen >= UDP_HLEN && get16(p + 4) >= UDP_HLEN &&
               get16(p + 4) <= plen) {
        uint8_t *r = turn_around(me, in, total, out) + hlen;

        put16(r, get16(p + 2));
        put16(r + 2, get16(p));
        put16(r + 6, 0);   /* no UDP checksum (allowed for IPv4) */
        *kind = VS_NET_UDP;
    } else {
        return 0;
    }
    seal_ip(out + ETH_HLEN, hlen);
    unsigned n = ETH_HLEN + total;

    if (n < VS_NET_MIN_FRAME) {
        memset(out + n, 0, VS_NET_MIN_FRAME - n);
        n = VS_NET_MIN_FRAME;
    }
    return n;
}

unsigned vs_net_answer(const struct vs_net_addr *me, const uint8_t *in, unsigned len,
                       uint8_t *out, enum vs_net_answer *kind)
{
    unsigned n = 0;

    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

    *kind = VS_NET_NONE;
    if (len < ETH_HLEN || len > VS_NET_MAX_FRAME || (!same(in, me->mac, 6) && !same(in, bcast, 6)))
        return 0;   /* a switch may flood frames for others */
    if (get16(in + 12) == ETH_P_ARP && (n = answer_arp(me, in, len, out)))
        *kind = VS_NET_ARP;
    else if (get16(in + 12) == ETH_P_IPV4)
        n = answer_ip(me, in, len, out, kind);
    return n;
}
