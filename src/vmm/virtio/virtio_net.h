/* virtio-net (virtio 1.2, 5.1; device id 1) on the virtio-mmio transport, with a TAP as its
 * backend (tap.h). Queues: 0 receive, 1 transmit, 2 control. Features offered: MAC,
 * STATUS, MRG_RXBUF, CTRL_VQ and GUEST_ANNOUNCE (with VERSION_1, INDIRECT_DESC and
 * EVENT_IDX from the transport); no offloads: every frame is whole and checksummed, and
 * every header the device writes is zero but for num_buffers.
 *
 * Transmit runs in the vCPU thread that notifies (a frame is written to the backend before
 * its chain is returned, so no transmit is ever in flight when the VM is paused). Receive
 * runs in the NIC's I/O thread (virtio_net_io.c): it reads a frame from the backend, takes
 * as many receive chains as it needs (one, or several with MRG_RXBUF), writes, returns them
 * and interrupts; without chains it holds the frame and waits for the driver's notify.
 * Nothing is written into the guest while the VM is paused (vs_virtio_net_set_running), so
 * every frame handed to the guest is in the RAM the migration sends, and none twice.
 *
 * With vlan= the device tags every frame its guest sends (802.1Q) and hands the guest only
 * frames of that VLAN, untagged (the others count in rx_filtered). With rate= a token
 * bucket each way (net_rate.h) holds frames back: transmit chains stay on the ring and
 * received frames in the TAP's queue until the I/O thread's timer lets them go.
 *
 * Migration: the transport's "virtio-mmio" section carries the queues; this device adds a
 * "virtio-net" section (MAC, status, the guest's IPv4 address if known, counters, VLAN). On the
 * destination the device, once loaded, discards what its TAP queued before the VM runs
 * there (frames meant for the source), and when it first runs announces the move:
 * RARP (and a gratuitous ARP when the guest's address is known) from the TAP, and
 * VIRTIO_NET_S_ANNOUNCE with a configuration interrupt when the driver took
 * GUEST_ANNOUNCE, on the schedule of its spec (virtio_net_spec.h). */
#ifndef VS_VIRTIO_NET_H
#define VS_VIRTIO_NET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/virtio/net_rate.h"
#include "vmm/virtio/tap.h"
#include "vmm/virtio/virtio_mmio.h"
#include "vmm/virtio/virtio_net_spec.h"

#define VS_VIRTIO_ID_NET 1
#define VS_VIRTIO_NET_F_MAC (1ull << 5)
#define VS_VIRTIO_NET_F_MRG_RXBUF (1ull << 15)
#define VS_VIRTIO_NET_F_STATUS (1ull << 16)
#define VS_VIRTIO_NET_F_CTRL_VQ (1ull << 17)
#define VS_VIRTIO_NET_F_GUEST_ANNOUNCE (1ull << 21)
#define VS_VIRTIO_NET_S_LINK_UP 1u
#define VS_VIRTIO_NET_S_ANNOUNCE 2u

#define VS_VIRTIO_NET_RXQ 0
#define VS_VIRTIO_NET_TXQ 1
#define VS_VIRTIO_NET_CTRLQ 2
#define VS_VIRTIO_NET_QUEUE_MAX 256
#define VS_VIRTIO_NET_HDR 12             /* struct virtio_net_hdr_v1 */
#define VS_VIRTIO_NET_MAX_FRAME 65535    /* bytes of one frame, without the header */
#define VS_VIRTIO_NET_MAX_EVENTS 32      /* announcement rounds remembered */

/* Control queue (virtio 1.2, 5.1.6.5). */
#define VS_VIRTIO_NET_CTRL_ANNOUNCE 3
#define VS_VIRTIO_NET_CTRL_ANNOUNCE_ACK 0
#define VS_VIRTIO_NET_OK 0
#define VS_VIRTIO_NET_ERR 1

/* The "virtio-net" section (version 1, 64 bytes; docs/device-state.md). */
struct vs_virtio_net_record {
    uint8_t mac[6];
    uint16_t status;                 /* VIRTIO_NET_S_* */
    uint8_t ip[4];                   /* the guest's IPv4 address (network order) */
    uint32_t flags;                  /* VS_NET_REC_IP_KNOWN, VS_NET_REC_IP_LEARNED */
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
    uint16_t vlan;                   /* 802.1Q VLAN (0 none): it moves with the VM */
    uint16_t pad[3];                 /* 0 */
    uint64_t rate;                   /* bytes/s each way (0 none): it moves with the VM */
};
#define VS_NET_REC_IP_KNOWN 1u
#define VS_NET_REC_IP_LEARNED 2u

struct vs_virtio_net_counters {
    uint64_t rx_frames, rx_bytes;    /* handed to the guest */
    uint64_t tx_frames, tx_bytes;    /* sent by the guest and written to the backend */
    uint64_t rx_dropped;             /* read from the backend, not handed to the guest */
    uint64_t tx_dropped;             /* taken from the guest, not written to the backend */
    uint64_t rx_discarded;           /* queued for the source, discarded on arrival */
    uint64_t rx_filtered;            /* not of the NIC's VLAN */
    uint64_t rx_throttled, tx_throttled;   /* times the rate limit held frames back */
    uint64_t announce_acks;          /* VIRTIO_NET_CTRL_ANNOUNCE_ACK from the driver */
};

/* One announcement round after a move. */
struct vs_net_announce_event {
    uint32_t round;                  /* 0 = the first */
    uint64_t at_us;                  /* after the VM started running here */
    bool rarp, garp, guest;          /* RARP sent, gratuitous ARP sent, guest asked */
};

struct vs_virtio_net {
    struct vs_virtio_mmio *transport;   /* owned; its lock guards everything below */
    struct vs_net_spec spec;
    struct vs_tap tap;                  /* fd -1 when the backend is not a TAP (tests) */
    int fd;                             /* the backend: one frame (with header) per read */
    char backend[IFNAMSIZ];             /* its name, for messages */
    uint8_t mac[6];
    uint16_t status;
    uint8_t ip[4];
    bool ip_known, ip_learned;
    uint16_t vlan;                      /* 802.1Q VLAN of the NIC (0: untagged) */
    struct vs_token_bucket rx_tb, tx_tb;   /* rate= (rate 0: none) */
    uint64_t rx_retry_ns, tx_retry_ns;  /* held back by the rate until then (0: not) */
    bool running;                       /* the VM runs: frames may go into the guest */
    bool stop_requested;                /* atomic: vs_virtio_net_request_stop */
    bool arrived;                       /* loaded from a migration, not run here yet */
    bool rx_wait;                       /* no receive chains: wait for the driver */
    bool rx_held;                       /* rx_frame holds a frame read, not delivered */
    size_t rx_len;                      /* its bytes, header included */
    uint8_t *rx_frame, *tx_frame;       /* header + VS_VIRTIO_NET_MAX_FRAME each */
    struct vs_vq_chain *chain, *first;  /* the chain being used, and a frame's first */
    uint16_t rx_heads[VS_VIRTIO_NET_QUEUE_MAX];
    uint32_t rx_lens[VS_VIRTIO_NET_QUEUE_MAX];
    struct vs_virtio_net_counters n;
    /* Announcing the move. */
    uint32_t ann_round;                 /* the next round */
    bool ann_active;
    uint64_t ann_start_ns, ann_next_ns;
    struct vs_net_announce_event events[VS_VIRTIO_NET_MAX_EVENTS];
    unsigned nr_events;
    /* The I/O thread (virtio_net_io.c). */
    pthread_t thread;
    bool thread_started, quit;
    int wake_fd;                        /* eventfd: the thread looks again */
    struct vs_virtio_net_record rec;
};

extern const struct vs_virtio_device_ops vs_virtio_net_ops;
extern const struct vs_vmstate vs_virtio_net_vmstate;

/* Create the NIC SPEC describes (virtio_net_spec.h) and put it into the VM as p says: its
 * TAP (a fresh name if `incoming` and the spec's is taken here), its transport, its state,
 * its I/O thread. It delivers nothing until vs_virtio_net_set_running(true).
 * (virtio_devices.c) */
int vs_virtio_net_create(struct vs_virtio_net **out, const struct vs_virtio_mmio_params *p,
                         const char *spec, bool incoming);
void vs_virtio_net_free(struct vs_virtio_net *n);

/* The device alone, on backend fd (owned from now on), no transport yet (tests, and the
 * constructor above). */
int vs_virtio_net_new(struct vs_virtio_net **out, const struct vs_net_spec *spec, int fd,
                      const char *backend);
/* Free what vs_virtio_net_new made (the thread must be stopped, the transport freed). */
void vs_virtio_net_delete(struct vs_virtio_net *n);

/* The VM starts or stops running. Stopping returns once no frame goes into the guest any
 * more. The first start after a migration discards what the backend queued and begins the
 * announcements. Takes the transport's lock. */
void vs_virtio_net_set_running(struct vs_virtio_net *n, bool running);
/* Stop delivering without waiting (the receive thread may be blocked on a post-copy page
 * with the lock held): no frame is delivered after the one in progress. Any thread. */
void vs_virtio_net_request_stop(struct vs_virtio_net *n);

/* ---- For the I/O thread (and tests): the transport's lock held ---- */
enum vs_net_rx { VS_NET_RX_IDLE, VS_NET_RX_MORE, VS_NET_RX_WAIT };
/* Move frames from the backend into the guest: IDLE when the backend has none, MORE when
 * a batch was moved and more may be queued, WAIT when the guest has no chains (or the VM
 * does not run): then wait for the driver's notify (the thread is woken). */
enum vs_net_rx vs_virtio_net_rx_pump(struct vs_virtio_net *n);
/* Do what is due at now_ns (an announcement round, transmitting what the rate held back);
 * returns ns until the next timer (those, or receiving again after the rate), or -1. */
int64_t vs_virtio_net_timers(struct vs_virtio_net *n, uint64_t now_ns);

/* ---- The I/O thread (virtio_net_io.c) ---- */
int vs_virtio_net_io_start(struct vs_virtio_net *n);
void vs_virtio_net_io_stop(struct vs_virtio_net *n);
/* Make the thread look again (a notify, a change of state). Any thread, any lock. */
void vs_virtio_net_io_wake(struct vs_virtio_net *n);

/* What the control protocol shows of a NIC: a consistent copy (takes the lock). */
struct vs_virtio_net_view {
    char name[24];                      /* "virtio-net1" */
    char tap[IFNAMSIZ], bridge[IFNAMSIZ];
    uint8_t mac[6], ip[4];
    bool ip_known;
    uint16_t vlan;
    uint64_t rate;
    struct vs_virtio_net_counters n;
    struct vs_net_announce_event events[VS_VIRTIO_NET_MAX_EVENTS];
    unsigned nr_events;
};
void vs_virtio_net_view(struct vs_virtio_net *n, struct vs_virtio_net_view *out);

#endif
