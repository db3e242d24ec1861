/* Announcing a NIC after its VM moved: the frames (RARP for the MAC, as vMotion and QEMU
 * send; gratuitous ARP when the guest's IPv4 address is known), the schedule of rounds
 * (QEMU's announce-initial/max/rounds/step), and learning the guest's address from the
 * frames it sends. Pure: no device, no clock. */
#ifndef VS_NET_ANNOUNCE_H
#define VS_NET_ANNOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/virtio/virtio_net_spec.h"

#define VS_ETH_HLEN 14
#define VS_ETH_MIN_FRAME 60        /* without the FCS: shorter frames are padded */
#define VS_ETH_P_IPV4 0x0800
#define VS_ETH_P_ARP 0x0806
#define VS_ETH_P_RARP 0x8035

/* The delay before round `round` (1 = the second round; the first goes out at once):
 * initial + (round - 1) * step, at most max. */
uint32_t vs_net_announce_delay_ms(const struct vs_net_announce_params *p, uint32_t round);

/* A broadcast RARP "reverse request" for mac (a switch learns the port from its source
 * address). Writes VS_ETH_MIN_FRAME bytes; returns that. */
size_t vs_net_rarp_frame(uint8_t buf[VS_ETH_MIN_FRAME], const uint8_t mac[6]);
/* A broadcast gratuitous ARP request: mac has ip (sender and target ip). Same length. */
size_t vs_net_garp_frame(uint8_t buf[VS_ETH_MIN_FRAME], const uint8_t mac[6], const uint8_t ip[4]);

/* If frame (sent by the guest) is an ARP from mac, or an IPv4 packet from mac, with a
 * usable unicast sender address, put it in ip and return true. Any bytes are safe. */
bool vs_net_learn_ip(const uint8_t *frame, size_t len, const uint8_t mac[6], uint8_t ip[4]);

#endif
