#include "vmm/virtio/virtio_net.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "vmm/virtio/net_announce.h"
#include "vmm/virtio/net_vlan.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FEATURES (VS_VIRTIO_NET_F_MAC | VS_VIRTIO_NET_F_STATUS | VS_VIRTIO_NET_F_MRG_RXBUF | \
                  VS_VIRTIO_NET_F_CTRL_VQ | VS_VIRTIO_NET_F_GUEST_ANNOUNCE)
#define CONFIG_SIZE 10           /* mac[6], le16 status, le16 max_virtqueue_pairs */
#define RX_BATCH 64              /* frames per turn of the I/O thread */
#define NUM_BUFFERS_OFF 10       /* in the header */
#define DRAIN_MAX 4096           /* frames discarded on arrival, at most */

static uint64_t negotiated(const struct vs_virtio_net *n)
{
    return vs_virtio_mmio_features(n->transport);
}

static bool driver_ok(const struct vs_virtio_net *n)
{
    return n->transport->status & VS_VIRTIO_STATUS_DRIVER_OK;
}

/* ---- Configuration space, features, reset ---- */

static void net_config_read(void *dev, uint32_t offset, uint8_t *data, unsigned size)
{
    struct vs_virtio_net *n = dev;
    uint8_t cfg[CONFIG_SIZE];
    uint16_t status = htole16(n->status), pairs = htole16(1);
    memcpy(cfg, n->mac, 6);
    memcpy(cfg + 6, &status, 2);
    memcpy(cfg + 8, &pairs, 2);
    memcpy(data, cfg + offset, size);   /* the transport checked [offset, offset+size) */
}

/* GUEST_ANNOUNCE is acknowledged on the control queue: it needs CTRL_VQ. */
static int net_features_ok(void *dev, uint64_t features)
{
    (void)dev;
    if ((features & VS_VIRTIO_NET_F_GUEST_ANNOUNCE) && !(features & VS_VIRTIO_NET_F_CTRL_VQ)) {
        vs_debug("virtio-net: GUEST_ANNOUNCE without CTRL_VQ; FEATURES_OK refused");
        return -EINVAL;
    }
    return 0;
}

static void net_reset(void *dev)
{
    struct vs_virtio_net *n = dev;
    n->status = VS_VIRTIO_NET_S_LINK_UP;
    n->rx_wait = false;
    n->tx_retry_ns = n->rx_retry_ns = 0;
    vs_virtio_net_io_wake(n);
}

/* ---- Transmit: chains of header + frame, in the vCPU thread ---- */

static void transmit(struct vs_virtio_net *n, const struct vs_vq_chain *c)
{
    static const uint8_t hdr[VS_VIRTIO_NET_HDR];   /* nothing offloaded, whatever the guest says */
    uint64_t len = c->read_bytes;
    if (len < VS_VIRTIO_NET_HDR + VS_ETH_HLEN || len > VS_VIRTIO_NET_HDR + VS_VIRTIO_NET_MAX_FRAME) {
        n->n.tx_dropped++;
        return;
    }
    size_t frame = (size_t)len - VS_VIRTIO_NET_HDR;
    vs_vq_chain_read(c, VS_VIRTIO_NET_HDR, n->tx_frame, frame);
    /* An address from the spec stays; one learned from the guest follows its traffic. */
    if ((!n->ip_known || n->ip_learned) && vs_net_learn_ip(n->tx_frame, frame, n->mac, n->ip))
        n->ip_known = n->ip_learned = true;
    size_t out = n->vlan ? vs_net_vlan_tag(n->tx_frame, frame, n->vlan) : frame;
    if (vs_tap_write(n->fd, hdr, sizeof(hdr), n->tx_frame, out) < 0) {
        n->n.tx_dropped++;
        return;
    }
    n->n.tx_frames++;
    n->n.tx_bytes += frame;
}

/* Transmit what the driver made available, as far as the rate allows: the rest stays on
 * the ring until tx_retry_ns (the I/O thread's timer). */
static void transmit_all(struct vs_virtio_net *n, struct vs_virtqueue *vq, uint64_t now_ns)
{
    for (;;) {
        uint64_t wait = vs_tb_wait(&n->tx_tb, now_ns);
        if (wait) {
            if (!n->tx_retry_ns && vs_vq_pending(vq) > 0) {
                n->tx_retry_ns = now_ns + wait;
                n->n.tx_throttled++;
                vs_virtio_net_io_wake(n);
            }
            break;
        }
        if (vs_vq_pop(vq, n->chain) <= 0)
            break;
        uint64_t before = n->n.tx_bytes;
        transmit(n, n->chain);
        vs_tb_charge(&n->tx_tb, n->n.tx_bytes - before);
        if (vs_vq_push(vq, n->chain->head, 0) < 0)
            return;
    }
    vs_vq_notify_driver(vq);
}

/* ---- The control queue ---- */

static uint8_t control(struct vs_virtio_net *n, uint8_t class, uint8_t cmd)
{
    if (class == VS_VIRTIO_NET_CTRL_ANNOUNCE && cmd == VS_VIRTIO_NET_CTRL_ANNOUNCE_ACK &&
        (negotiated(n) & VS_VIRTIO_NET_F_GUEST_ANNOUNCE)) {
        n->status &= (uint16_t)~VS_VIRTIO_NET_S_ANNOUNCE;
        n->n.announce_acks++;
        return VS_VIRTIO_NET_OK;
    }
    return VS_VIRTIO_NET_ERR;   /* receive modes, MAC tables, VLANs, MQ: not offered */
}

static void control_all(struct vs_virtio_net *n, struct vs_virtqueue *vq)
{
    while (vs_vq_pop(vq, n->chain) > 0) {
        const struct vs_vq_chain *c = n->chain;
        if (c->write_bytes == 0) {
            vs_vq_break(vq, "control request %u has no room for its status byte", c->head);
            return;
        }
        uint8_t req[2] = { 0xff, 0xff };
        uint8_t ack = c->read_bytes >= 2 && vs_vq_chain_read(c, 0, req, 2) == 2
                          ? control(n, req[0], req[1]) : VS_VIRTIO_NET_ERR;
        /* The status byte is the last writable one (virtio 1.2, 5.1.6.5). */
        vs_vq_chain_write(vq, c, c->write_bytes - 1, &ack, 1);
        if (vs_vq_push(vq, c->head, 1) < 0)
            return;
    }
    vs_vq_notify_driver(vq);
}

static void net_queue_notify(void *dev, struct vs_virtio_mmio *t, struct vs_virtqueue *vq)
{
    struct vs_virtio_net *n = dev;
    (void)t;
    switch (vq->index) {
    case VS_VIRTIO_NET_RXQ:
        n->rx_wait = false;
        vs_virtio_net_io_wake(n);
        break;
    case VS_VIRTIO_NET_TXQ:
        if (!n->tx_retry_ns)   /* else the I/O thread goes on when the rate allows */
            transmit_all(n, vq, vs_clock_ns());
        break;
    case VS_VIRTIO_NET_CTRLQ:
        if (negotiated(n) & VS_VIRTIO_NET_F_CTRL_VQ)
            control_all(n, vq);
        break;
    default: break;
    }
}

/* ---- Receive: backend -> guest, in the I/O thread ---- */

/* Take chains for the frame in rx_frame and write it; 1 when done (the chains are
 * returned), 0 when the guest lacks chains (none kept), -1 when the frame was dropped. */
static int deliver(struct vs_virtio_net *n, struct vs_virtqueue *vq)
{
    bool merge = negotiated(n) & VS_VIRTIO_NET_F_MRG_RXBUF;
    uint16_t limit = vq->size < VS_VIRTIO_NET_QUEUE_MAX ? vq->size : VS_VIRTIO_NET_QUEUE_MAX;
    size_t done = 0;
    uint16_t used = 0;
    while (done < n->rx_len) {
        if (used == limit) {   /* even a full queue of these chains cannot hold it */
            vs_vq_unpop(vq, used);
            return -1;
        }
        int rc = vs_vq_pop(vq, used ? n->chain : n->first);
        if (rc <= 0) {
            vs_vq_unpop(vq, used);
            return rc < 0 ? -1 : 0;
        }
        const struct vs_vq_chain *c = used ? n->chain : n->first;
        if (c->write_bytes < VS_VIRTIO_NET_HDR) {
            vs_vq_break(vq, "receive chain %u has %llu writable bytes, less than the %d-byte "
                        "header", c->head, (unsigned long long)c->write_bytes, VS_VIRTIO_NET_HDR);
            return -1;
        }
        if (!merge && c->write_bytes < n->rx_len) {
            vs_vq_unpop(vq, 1);   /* too small for any frame this long: keep it for others */
            return -1;
        }
        size_t w = vs_vq_chain_write(vq, c, 0, n->rx_frame + done, n->rx_len - done);
        n->rx_heads[used] = c->head;
        n->rx_lens[used++] = (uint32_t)w;
        done += w;
    }
    uint16_t nb = htole16(used);
    vs_vq_chain_write(vq, n->first, NUM_BUFFERS_OFF, &nb, 2);
    for (uint16_t i = 0; i < used; i++)
        if (vs_vq_push(vq, n->rx_heads[i], n->rx_lens[i]) < 0)
            return -1;
    return 1;
}

/* The frame just read (header + frame, got bytes) as the guest gets it: its length, or 0
 * when it is not for the guest (too short; with a VLAN, untagged or another VLAN's). */
static size_t accept_frame(struct vs_virtio_net *n, size_t got)
{
    if (got < VS_VIRTIO_NET_HDR + VS_ETH_HLEN) {
        n->n.rx_dropped++;
        return 0;
    }
    if (!n->vlan)
        return got;
    size_t frame = vs_net_vlan_untag(n->rx_frame + VS_VIRTIO_NET_HDR, got - VS_VIRTIO_NET_HDR,
                                     n->vlan);
    if (frame < VS_ETH_HLEN) {
        n->n.rx_filtered++;
        return 0;
    }
    return frame + VS_VIRTIO_NET_HDR;
}

/* Read the next frame for the guest into rx_frame (header zeroed but num_buffers = 1): 1,
 * 0 if none is queued (or a batch of others was dropped), -1 if the backend fails. */
static int read_frame(struct vs_virtio_net *n)
{
    for (unsigned tries = 0; tries < RX_BATCH; tries++) {
        ssize_t got = vs_tap_read(n->fd, n->rx_frame, VS_VIRTIO_NET_HDR + VS_VIRTIO_NET_MAX_FRAME);
        if (got < 0) {
            vs_warn("%s: reading a frame from %s: %s; receiving stops until the driver posts "
                    "buffers again", n->transport->name, n->backend, strerror((int)-got));
            return -1;
        }
        if (got == 0)
            return 0;
        size_t len = accept_frame(n, (size_t)got);
        if (!len)
            continue;
        memset(n->rx_frame, 0, VS_VIRTIO_NET_HDR);
        n->rx_frame[NUM_BUFFERS_OFF] = 1;
        n->rx_len = len;
        n->rx_held = true;
        return 1;
    }
    return 0;
}

enum vs_net_rx vs_virtio_net_rx_pump(struct vs_virtio_net *n)
{
    struct vs_virtqueue *vq = &n->transport->vq[VS_VIRTIO_NET_RXQ];
    n->rx_retry_ns = 0;   /* set again below if the rate still holds frames back */
    if (!n->running || n->rx_wait || !driver_ok(n) || !vs_vq_usable(vq))
        return VS_NET_RX_WAIT;
    unsigned moved = 0;
    enum vs_net_rx result = VS_NET_RX_MORE;
    uint64_t now = n->rx_tb.rate ? vs_clock_ns() : 0, wait;
    while (moved < RX_BATCH) {
        if (__atomic_load_n(&n->stop_requested, __ATOMIC_ACQUIRE)) {
            result = VS_NET_RX_WAIT;
            break;
        }
        int rc = n->rx_held ? 1 : read_frame(n);
        if (rc <= 0) {
            result = rc == 0 ? VS_NET_RX_IDLE : VS_NET_RX_WAIT;
            n->rx_wait = rc < 0;
            break;
        }
        if ((wait = vs_tb_wait(&n->rx_tb, now))) {   /* it waits, the rest in the TAP's queue */
            n->rx_retry_ns = now + wait;
            n->n.rx_throttled++;
            result = VS_NET_RX_WAIT;
            break;
        }
        rc = deliver(n, vq);
        if (rc == 0) {
            n->rx_wait = true;
            result = VS_NET_RX_WAIT;
            break;
        }
        n->rx_held = false;
        if (rc < 0) {
            n->n.rx_dropped++;
            continue;
        }
        n->n.rx_frames++;
        n->n.rx_bytes += n->rx_len - VS_VIRTIO_NET_HDR;
        vs_tb_charge(&n->rx_tb, n->rx_len - VS_VIRTIO_NET_HDR);
        moved++;
    }
    if (moved)
        vs_vq_notify_driver(vq);
    return result;
}

/* ---- Running, arriving, announcing ---- */

static void discard_queued(struct vs_virtio_net *n)
{
    n->rx_held = false;
    for (unsigned i = 0; i < DRAIN_MAX && vs_tap_read(n->fd, n->rx_frame, VS_VIRTIO_NET_HDR +
                                                      VS_VIRTIO_NET_MAX_FRAME) > 0; i++)
        n->n.rx_discarded++;
}

void vs_virtio_net_set_running(struct vs_virtio_net *n, bool running)
{
    vs_virtio_mmio_lock(n->transport);
    __atomic_store_n(&n->stop_requested, !running, __ATOMIC_RELEASE);
    if (running && !n->running) {
        n->running = true;
        if (n->arrived) {
            n->arrived = false;
            discard_queued(n);
            n->ann_active = n->spec.announce.rounds > 0;
            n->ann_round = 0;
            n->ann_start_ns = n->ann_next_ns = vs_clock_ns();
            n->nr_events = 0;
        }
        /* Chains the driver made available whose notify the source consumed. */
        struct vs_virtqueue *tx = &n->transport->vq[VS_VIRTIO_NET_TXQ];
        if (driver_ok(n) && vs_vq_usable(tx) && !n->tx_retry_ns)
            transmit_all(n, tx, vs_clock_ns());
        n->rx_wait = false;
    } else if (!running) {
        n->running = false;
    }
    vs_virtio_mmio_unlock(n->transport);
    vs_virtio_net_io_wake(n);
}

void vs_virtio_net_request_stop(struct vs_virtio_net *n)
{
    __atomic_store_n(&n->stop_requested, true, __ATOMIC_RELEASE);
    vs_virtio_net_io_wake(n);
}

/* An announcement frame into the backend, in the NIC's VLAN. */
static bool send_frame(struct vs_virtio_net *n, uint8_t *frame, size_t len)
{
    static const uint8_t hdr[VS_VIRTIO_NET_HDR];
    if (n->vlan)
        len = vs_net_vlan_tag(frame, len, n->vlan);
    return vs_tap_write(n->fd, hdr, sizeof(hdr), frame, len) == 0;
}

static void announce_round(struct vs_virtio_net *n, uint64_t now_ns)
{
    uint8_t frame[VS_ETH_MIN_FRAME + VS_VLAN_HLEN];
    struct vs_net_announce_event e = { .round = n->ann_round,
                                       .at_us = (now_ns - n->ann_start_ns) / 1000 };
    e.rarp = send_frame(n, frame, vs_net_rarp_frame(frame, n->mac));
    if (n->ip_known)
        e.garp = send_frame(n, frame, vs_net_garp_frame(frame, n->mac, n->ip));
    if ((negotiated(n) & VS_VIRTIO_NET_F_GUEST_ANNOUNCE) && driver_ok(n)) {
        n->status |= VS_VIRTIO_NET_S_ANNOUNCE;
        vs_virtio_mmio_config_changed(n->transport);
        e.guest = true;
    }
    if (n->nr_events < VS_VIRTIO_NET_MAX_EVENTS)
        n->events[n->nr_events++] = e;
    vs_info("%s (%s): announce %u/%u at +%.1f ms after resume:%s%s%s", n->transport->name,
            n->backend, e.round + 1, n->spec.announce.rounds, (double)e.at_us / 1000,
            e.rarp ? " RARP" : "", e.garp ? " gratuitous-ARP" : "", e.guest ? " guest-asked" : "");
    if (++n->ann_round >= n->spec.announce.rounds)
        n->ann_active = false;
    else
        n->ann_next_ns = now_ns + (uint64_t)vs_net_announce_delay_ms(&n->spec.announce,
                                                                    n->ann_round) * 1000000;
}

/* The earliest of the timers set, or 0. */
static uint64_t next_timer(const struct vs_virtio_net *n)
{
    uint64_t t[3] = { n->ann_active ? n->ann_next_ns : 0, n->tx_retry_ns, n->rx_retry_ns }, next = 0;
    for (int i = 0; i < 3; i++)
        if (t[i] && (!next || t[i] < next))
            next = t[i];
    return next;
}

int64_t vs_virtio_net_timers(struct vs_virtio_net *n, uint64_t now_ns)
{
    if (!n->running || __atomic_load_n(&n->stop_requested, __ATOMIC_ACQUIRE))
        return -1;
    struct vs_virtqueue *tx = &n->transport->vq[VS_VIRTIO_NET_TXQ];
    if (n->tx_retry_ns && now_ns >= n->tx_retry_ns) {
        n->tx_retry_ns = 0;
        if (driver_ok(n) && vs_vq_usable(tx))
            transmit_all(n, tx, now_ns);
    }
    if (n->ann_active && now_ns >= n->ann_next_ns)
        announce_round(n, now_ns);
    uint64_t next = next_timer(n);
    return next ? (int64_t)(next > now_ns ? next - now_ns : 0) : -1;
}

void vs_virtio_net_view(struct vs_virtio_net *n, struct vs_virtio_net_view *out)
{
    memset(out, 0, sizeof(*out));
    vs_virtio_mmio_lock(n->transport);
    snprintf(out->name, sizeof(out->name), "%s", n->transport->name);
    snprintf(out->tap, sizeof(out->tap), "%s", n->backend);
    snprintf(out->bridge, sizeof(out->bridge), "%s", n->tap.bridge);
    memcpy(out->mac, n->mac, 6);
    memcpy(out->ip, n->ip, 4);
    out->ip_known = n->ip_known;
    out->vlan = n->vlan;
    out->rate = n->tx_tb.rate;
    out->n = n->n;
    memcpy(out->events, n->events, n->nr_events * sizeof(out->events[0]));
    out->nr_events = n->nr_events;
    vs_virtio_mmio_unlock(n->transport);
}

const struct vs_virtio_device_ops vs_virtio_net_ops = {
    .name = "virtio-net",
    .device_id = VS_VIRTIO_ID_NET,
    .features = FEATURES,
    .nr_queues = 3,
    .queue_max = VS_VIRTIO_NET_QUEUE_MAX,
    .config_size = CONFIG_SIZE,
    .config_read = net_config_read,
    .features_ok = net_features_ok,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .vmstate = &vs_virtio_net_vmstate,
};

/* ---- The device alone ---- */

int vs_virtio_net_new(struct vs_virtio_net **out, const struct vs_net_spec *spec, int fd,
                      const char *backend)
{
    *out = NULL;
    struct vs_virtio_net *n = calloc(1, sizeof(*n));
    if (n) {
        n->rx_frame = malloc(VS_VIRTIO_NET_HDR + VS_VIRTIO_NET_MAX_FRAME);
        n->tx_frame = malloc(VS_VIRTIO_NET_MAX_FRAME + VS_VLAN_HLEN);
        n->chain = malloc(sizeof(*n->chain));
        n->first = malloc(sizeof(*n->first));
    }
    if (!n || !n->rx_frame || !n->tx_frame || !n->chain || !n->first) {
        vs_virtio_net_delete(n);
        close(fd);
        return vs_fail(ENOMEM, "out of memory for virtio-net");
    }
    n->spec = *spec;
    n->tap.fd = -1;
    n->fd = fd;
    n->wake_fd = -1;
    snprintf(n->backend, sizeof(n->backend), "%s", backend);
    memcpy(n->mac, spec->mac, 6);
    memcpy(n->ip, spec->ip, 4);
    n->ip_known = spec->has_ip;
    n->vlan = spec->vlan;
    vs_tb_init(&n->rx_tb, spec->rate, vs_clock_ns());
    vs_tb_init(&n->tx_tb, spec->rate, vs_clock_ns());
    n->status = VS_VIRTIO_NET_S_LINK_UP;
    *out = n;
    return 0;
}

void vs_virtio_net_delete(struct vs_virtio_net *n)
{
    if (!n)
        return;
    if (n->tap.fd >= 0)
        vs_tap_close(&n->tap);
    else if (n->fd >= 0)
        close(n->fd);
    free(n->rx_frame);
    free(n->tx_frame);
    free(n->chain);
    free(n->first);
    free(n);
}
