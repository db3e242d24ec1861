/* The guest's network answers, on Ethernet frames: ARP requests for its address get a
 * reply, ICMP echo requests to it an echo reply, UDP datagrams to it the same datagram
 * back; and the gratuitous ARP it announces itself with. Pure and freestanding (the unit
 * test builds it hosted): every length and field of a received frame is checked before
 * it is used. */
#ifndef VS_GUEST_NET_PROTO_H
#define VS_GUEST_NET_PROTO_H

#include <stdint.h>

#define VS_NET_MIN_FRAME 60             /* Ethernet without FCS: shorter frames are padded */
#define VS_NET_MAX_FRAME 1514

struct vs_net_addr {
    uint8_t mac[6];
    uint8_t ip[4];
};

enum vs_net_answer { VS_NET_NONE = 0, VS_NET_ARP, VS_NET_PING, VS_NET_UDP };

/* The reply to frame in[0, len) into out (room for VS_NET_MAX_FRAME bytes): its length,
 * with *kind saying what was answered, or 0 (*kind VS_NET_NONE) when nothing is owed. */
unsigned vs_net_answer(const struct vs_net_addr *me, const uint8_t *in, unsigned len,
                       uint8_t *out, enum vs_net_answer *kind);

/* A broadcast gratuitous ARP request for me (VS_NET_MIN_FRAME bytes into out). */
unsigned vs_net_garp(const struct vs_net_addr *me, uint8_t *out);

/* A broadcast ARP request from me for ip (VS_NET_MIN_FRAME bytes into out). */
unsigned vs_net_arp_request(const struct vs_net_addr *me, const uint8_t ip[4], uint8_t *out);

/* If frame in[0, len) is an ARP request or reply whose sender is ip: 1, with the sender's
 * MAC in mac; else 0. */
int vs_net_arp_sender(const uint8_t *in, unsigned len, const uint8_t ip[4], uint8_t mac[6]);

/* A UDP datagram from me (source port sport) to dst_ip:dport at dst_mac carrying
 * payload[0, plen) (at most VS_NET_MAX_FRAME - 42 bytes) into out: its length, padded to
 * VS_NET_MIN_FRAME; 0 if the payload is too long. No UDP checksum (allowed for IPv4). */
unsigned vs_net_udp(const struct vs_net_addr *me, const uint8_t dst_mac[6],
                    const uint8_t dst_ip[4], uint16_t sport, uint16_t dport,
                    const uint8_t *payload, unsigned plen, uint8_t *out);

/* The Internet checksum of p[0, len). */
uint16_t vs_net_checksum(const uint8_t *p, unsigned len);

#endif
