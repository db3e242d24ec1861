/* A virtio-net driver (virtio 1.2, 5.1) for the net workload on a version 2 virtio-mmio
 * device: it takes VERSION_1, MAC, STATUS, and CTRL_VQ with GUEST_ANNOUNCE where offered
 * (no offloads, no merged buffers: each receive buffer holds a whole frame), sets up the
 * receive, transmit and (with CTRL_VQ) control queues of 16 entries, routes the
 * interrupt through the IOAPIC and answers what net_proto.c answers. Up to two devices,
 * each with its own address, queues and buffers. When the device
 * asks it to announce itself (VIRTIO_NET_S_ANNOUNCE with a configuration interrupt) it
 * sends a gratuitous ARP and acknowledges on the control queue. Every used entry is
 * checked (virtq.h). vCPU 0 only, interrupts off outside the handler. */
#ifndef VS_GUEST_VIRTIO_NET_H
#define VS_GUEST_VIRTIO_NET_H

#include <stdint.h>
#include "net_proto.h"

struct vs_net_counts {
    uint64_t rx_frames;             /* received frames that passed the checks */
    uint64_t tx_frames;             /* frames handed to the device */
    uint64_t arp, ping, udp;        /* requests answered */
    uint64_t announces;             /* gratuitous ARPs sent because the device asked */
    uint64_t errors;                /* a used entry failing a check, the device needing a
                                       reset, an announcement not acknowledged */
    uint64_t interrupts;
};

#define VS_NET_MAX_NICS 2

/* vCPU 0 at boot, after vs_platform_setup: start the first nr_ips network devices the
 * probe found (at most VS_NET_MAX_NICS; fewer if there are fewer), device k with IPv4
 * address ips[k], and announce each. Returns 1 if there is none, 0 once they run, or -1
 * with a message in err. */
int vs_net_start(const uint8_t (*ips)[4], unsigned nr_ips, char *err, unsigned errlen);

/* vCPU 0, interrupts off, after an interrupt: take what each device returned, answer
 * what came in, announce when asked. */
void vs_net_poll(void);

/* Called by vs_net_poll with every frame received (before it is answered). */
typedef void (*vs_net_rx_hook)(const uint8_t *frame, unsigned len);
void vs_net_set_rx_hook(vs_net_rx_hook hook);

/* Hand a whole Ethernet frame to the first NIC: 0, or -1 when it was dropped (every
 * transmit buffer in flight, the device broken, or no NIC). vCPU 0, interrupts off. */
int vs_net_send(const uint8_t *frame, unsigned len);

/* The first NIC's addresses (NULL before vs_net_start). */
const struct vs_net_addr *vs_net_addr0(void);

/* The counts of every running NIC, summed. */
void vs_net_counts(struct vs_net_counts *out);

#endif
