/* Unit tests: the guest's network answers (guest/net_proto.c), compiled for the host: ARP
 * replies, ping replies with valid checksums, UDP echoes, the gratuitous ARP; and nothing
 * for frames that are for someone else, damaged, fragmented or cut short. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "net_proto.h"

static const struct vs_net_addr me = { { 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, { 198, 18, 0, 10 } };
static const uint8_t peer_mac[6] = { 2, 0, 0, 0, 0, 7 }, peer_ip[4] = { 198, 18, 0, 99 };

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static unsigned eth(uint8_t *f, const uint8_t dst[6], uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, peer_mac, 6);
    put16(f + 12, type);
    return 14;
}

/* An IPv4 packet from the peer to dst_ip with proto and payload; returns the frame length. */
static unsigned ipv4(uint8_t *f, const uint8_t dst_ip[4], uint8_t proto, const uint8_t *payload,
                     unsigned plen)
{
    unsigned n = eth(f, me.mac, 0x0800);
    uint8_t *ip = f + n;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + plen));
    put16(ip + 4, 0x1234);
    ip[8] = 17;
    ip[9] = proto;
    memcpy(ip + 12, peer_ip, 4);
    memcpy(ip + 16, dst_ip, 4);
    put16(ip + 10, vs_net_checksum(ip, 20));
    memcpy(ip + 20, payload, plen);
    return n + 20 + plen;
}

static unsigned ping(uint8_t *f, const uint8_t dst_ip[4], unsigned data)
{
    uint8_t icmp[64] = { 8, 0, 0, 0, 0x33, 0x44, 0, 7 };
    for (unsigned i = 8; i < 8 + data; i++)
        icmp[i] = (uint8_t)i;
    put16(icmp + 2, vs_net_checksum(icmp, 8 + data));
    return ipv4(f, dst_ip, 1, icmp, 8 + data);
}

static void arp_request_gets_a_reply(void **state)
{
    (void)state;
    uint8_t f[64] = { 0 }, out[VS_NET_MAX_FRAME];
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    unsigned n = eth(f, bcast, 0x0806);
    const uint8_t arp[28] = { 0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 7, 198, 18, 0, 99,
                              0, 0, 0, 0, 0, 0, 198, 18, 0, 10 };
    memcpy(f + n, arp, sizeof(arp));
    enum vs_net_answer kind;
    assert_int_equal(vs_net_answer(&me, f, 60, out, &kind), 60);
    assert_int_equal(kind, VS_NET_ARP);
    assert_memory_equal(out, peer_mac, 6);
    assert_memory_equal(out + 6, me.mac, 6);
    assert_int_equal(out[14 + 7], 2);                 /* reply */
    assert_memory_equal(out + 14 + 8, me.mac, 6);     /* sender: me */
    assert_memory_equal(out + 14 + 14, me.ip, 4);
    assert_memory_equal(out + 14 + 18, peer_mac, 6);  /* target: the asker */
    assert_memory_equal(out + 14 + 24, peer_ip, 4);
    f[14 + 27] = 11;   /* for another address: no reply */
    assert_int_equal(vs_net_answer(&me, f, 60, out, &kind), 0);
    assert_int_equal(kind, VS_NET_NONE);
    assert_int_equal(vs_net_answer(&me, f, 30, out, &kind), 0);   /* cut short */
}

static void ping_gets_a_valid_reply(void **state)
{
    (void)state;
    uint8_t f[128], out[VS_NET_MAX_FRAME];
    unsigned n = ping(f, me.ip, 48);
    enum vs_net_answer kind;
    unsigned r = vs_net_answer(&me, f, n, out, &kind);
    assert_int_equal(r, n);
    assert_int_equal(kind, VS_NET_PING);
    assert_memory_equal(out, peer_mac, 6);
    const uint8_t *ip = out + 14;
    assert_int_equal(vs_net_checksum(ip, 20), 0);
    assert_memory_equal(ip + 12, me.ip, 4);
    assert_memory_equal(ip + 16, peer_ip, 4);
    assert_int_equal(ip[20], 0);   /* echo reply */
    assert_int_equal(vs_net_checksum(ip + 20, n - 34), 0);
    assert_memory_equal(ip + 24, f + 14 + 24, n - 38);   /* id, sequence and data */
    /* A damaged checksum, another address, a fragment: nothing. */
    f[14 + 20 + 9] ^= 1;
    assert_int_equal(vs_net_answer(&me, f, n, out, &kind), 0);
    f[14 + 20 + 9] ^= 1;
    n = ping(f, peer_ip, 8);
    assert_int_equal(vs_net_answer(&me, f, n, out, &kind), 0);
    n = ping(f, me.ip, 8);
    f[14 + 6] = 0x20;   /* more fragments */
    put16(f + 14 + 10, 0);
    put16(f + 14 + 10, vs_net_checksum(f + 14, 20));
    assert_int_equal(vs_net_answer(&me, f, n, out, &kind), 0);
}

static void udp_is_echoed(void **state)
{
    (void)state;
    uint8_t f[128], out[VS_NET_MAX_FRAME];
    uint8_t udp[8 + 5] = { 0x9c, 0x40, 0x00, 0x07, 0, 13, 0xab, 0xcd, 'h', 'e', 'l', 'l', 'o' };
    unsigned n = ipv4(f, me.ip, 17, udp, sizeof(udp));
    enum vs_net_answer kind;
    unsigned r = vs_net_answer(&me, f, n, out, &kind);
    assert_int_equal(r, 60);   /* padded to the minimum frame */
    assert_int_equal(kind, VS_NET_UDP);
    const uint8_t *u = out + 14 + 20;
    assert_int_equal(u[0] << 8 | u[1], 7);        /* ports swapped */
    assert_int_equal(u[2] << 8 | u[3], 40000);
    assert_int_equal(u[6] << 8 | u[7], 0);        /* no checksum */
    assert_memory_equal(u + 8, "hello", 5);
    assert_int_equal(vs_net_checksum(out + 14, 20), 0);
    udp[5] = 200;   /* a UDP length beyond the packet */
    n = ipv4(f, me.ip, 17, udp, sizeof(udp));
    assert_int_equal(vs_net_answer(&me, f, n, out, &kind), 0);
    /* Unicast to another MAC (a switch flooding): not ours. */
    udp[5] = 13;
    n = ipv4(f, me.ip, 17, udp, sizeof(udp));
    f[5] ^= 1;
    assert_int_equal(vs_net_answer(&me, f, n, out, &kind), 0);
    for (unsigned len = 0; len < n; len++)   /* any cut is safe */
        vs_net_answer(&me, f, len, out, &kind);
}

static void gratuitous_arp(void **state)
{
    (void)state;
    uint8_t out[VS_NET_MIN_FRAME];
    assert_int_equal(vs_net_garp(&me, out), 60);
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    assert_memory_equal(out, bcast, 6);
    assert_int_equal(out[12] << 8 | out[13], 0x0806);
    assert_int_equal(out[14 + 7], 1);
    assert_memory_equal(out + 14 + 14, me.ip, 4);
    assert_memory_equal(out + 14 + 24, me.ip, 4);
}

/* The stream's frames: an ARP request for the collector, learning its MAC from its ARP
 * (reply or request, not from anyone else), and a UDP datagram with a valid IPv4 header. */
static void stream_frames(void **state)
{
    (void)state;
    uint8_t out[VS_NET_MAX_FRAME], mac[6] = { 0 };
    assert_int_equal(vs_net_arp_request(&me, peer_ip, out), 60);
    assert_int_equal(out[0], 0xff);
    assert_int_equal(out[14 + 7], 1);
    assert_memory_equal(out + 14 + 24, peer_ip, 4);
    /* The collector's reply, as a frame whose sender is the peer. */
    uint8_t f[64] = { 0 };
    unsigned n = eth(f, me.mac, 0x0806);
    const uint8_t arp[28] = { 0, 1, 8, 0, 6, 4, 0, 2, 2, 0, 0, 0, 0, 7, 198, 18, 0, 99,
                              0x52, 0x54, 0, 0x12, 0x34, 0x56, 198, 18, 0, 10 };
    memcpy(f + n, arp, sizeof(arp));
    assert_int_equal(vs_net_arp_sender(f, 60, peer_ip, mac), 1);
    assert_memory_equal(mac, peer_mac, 6);
    static const uint8_t other[4] = { 198, 18, 0, 98 };
    assert_int_equal(vs_net_arp_sender(f, 60, other, mac), 0);
    assert_int_equal(vs_net_arp_sender(f, 40, peer_ip, mac), 0);   /* cut short */
    f[14 + 7] = 3;   /* RARP request: not ARP */
    assert_int_equal(vs_net_arp_sender(f, 60, peer_ip, mac), 0);

    const uint8_t payload[32] = { 1, 2, 3 };
    n = vs_net_udp(&me, peer_mac, peer_ip, 9001, 9000, payload, sizeof(payload), out);
    assert_int_equal(n, 14 + 20 + 8 + 32);
    assert_memory_equal(out, peer_mac, 6);
    assert_int_equal(out[14] >> 4, 4);
    assert_int_equal(vs_net_checksum(out + 14, 20), 0);
    assert_int_equal(out[14 + 2] << 8 | out[14 + 3], 60);
    assert_int_equal(out[14 + 9], 17);
    assert_memory_equal(out + 14 + 12, me.ip, 4);
    assert_memory_equal(out + 14 + 16, peer_ip, 4);
    assert_int_equal(out[34] << 8 | out[35], 9001);
    assert_int_equal(out[36] << 8 | out[37], 9000);
    assert_int_equal(out[38] << 8 | out[39], 40);
    assert_memory_equal(out + 42, payload, 32);
    assert_int_equal(vs_net_udp(&me, peer_mac, peer_ip, 1, 2, payload, 0, out), 60);   /* padded */
    assert_int_equal(vs_net_udp(&me, peer_mac, peer_ip, 1, 2, out, 1473, out), 0);    /* too long */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arp_request_gets_a_reply),
        cmocka_unit_test(ping_gets_a_valid_reply),
        cmocka_unit_test(udp_is_echoed),
        cmocka_unit_test(gratuitous_arp),
        cmocka_unit_test(stream_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
