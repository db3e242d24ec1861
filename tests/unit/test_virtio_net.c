/* Unit tests: virtio-net (src/vmm/virtio/virtio_net.c) driven through its transport as a
 * guest driver would, with a real backend (one end of a SOCK_SEQPACKET socket pair: one
 * frame per read, as a TAP with IFF_VNET_HDR gives them) and the I/O thread's work done
 * by calling vs_virtio_net_rx_pump() directly. Frames both ways, merged receive buffers,
 * waiting for buffers without losing the frame, nothing written while paused, the control
 * queue's ANNOUNCE_ACK; descriptors a hostile guest writes (too short, outside RAM,
 * looping, read-only receive buffers) break a queue and never the host; the "virtio-net"
 * section saved and loaded into a fresh device, which discards what its backend queued
 * before it runs and then announces. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/blob.h"
#include "common/error.h"
#include "virtio_guest.h"
#include "vmm/virtio/net_announce.h"
#include "vmm/virtio/virtio_net.h"

#define QSIZE 8
#define QBASE(q) (0x1000u + (q) * 0x3000u)     /* desc; avail +0x1000; used +0x2000 */
#define BUF(i) (0x20000u + (i) * 0x1000u)       /* buffer i: 4 KiB each */
#define HDR VS_VIRTIO_NET_HDR
#define BASE_FEATURES (VS_VIRTIO_F_VERSION_1 | VS_VIRTIO_NET_F_MAC | VS_VIRTIO_NET_F_STATUS)
#define ANNOUNCE_FEATURES (VS_VIRTIO_NET_F_CTRL_VQ | VS_VIRTIO_NET_F_GUEST_ANNOUNCE)

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct line {
    bool level;
    unsigned raises;
};

static void line_set(void *ctx, uint32_t gsi, bool level)
{
    struct line *l = ctx;
    (void)gsi;
    l->raises += level && !l->level;
    l->level = level;
}

struct nic {
    struct vs_virtio_net *n;
    int peer;                       /* the "wire" side of the backend */
    struct vs_vmstate_registry reg;
    struct line line;
};

struct fixture {
    struct guest g;
    uint16_t avail[3];              /* the driver's next available index per queue */
    struct nic a;
};

static void nic_make_spec(struct fixture *f, struct nic *x, const char *text)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
    struct vs_net_spec spec;
    assert_int_equal(vs_net_spec_parse(text, &spec), 0);
    assert_int_equal(vs_virtio_net_new(&x->n, &spec, sv[0], "test0"), 0);
    x->peer = sv[1];
    vs_vmstate_init(&x->reg);
    struct vs_virtio_mmio_params p = { .mem = &f->g.mem, .vmstate = &x->reg, .instance = 1,
                                       .irq = { .set = line_set, .ctx = &x->line, .gsi = 9 } };
    assert_int_equal(vs_virtio_mmio_create(&x->n->transport, &p, &vs_virtio_net_ops, x->n), 0);
}

static void nic_make(struct fixture *f, struct nic *x)
{
    nic_make_spec(f, x, "tap=t0,mac=52:54:00:12:34:56");
}

static void nic_free(struct nic *x)
{
    vs_virtio_net_free(x->n);
    close(x->peer);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    nic_make(f, &f->a);
    *state = f;
    return 0;
}

static int setup_vlan(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    nic_make_spec(f, &f->a, "tap=t0,mac=52:54:00:12:34:56,vlan=10");
    *state = f;
    return 0;
}

static int setup_rate(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    nic_make_spec(f, &f->a, "tap=t0,mac=52:54:00:12:34:56,rate=8000");   /* bytes/s */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nic_free(&f->a);
    guest_free(&f->g);
    free(f);
    return 0;
}

static uint32_t rd(struct vs_virtio_mmio *t, uint64_t off)
{
    uint32_t v = 0;
    struct vs_bus_io io = { .offset = off, .data = (uint8_t *)&v, .size = 4 };
    vs_virtio_mmio_io(t, &io);
    return v;
}

static void wr(struct vs_virtio_mmio *t, uint64_t off, uint32_t v)
{
    struct vs_bus_io io = { .offset = off, .data = (uint8_t *)&v, .size = 4, .is_write = true };
    vs_virtio_mmio_io(t, &io);
}

static bool negotiate(struct vs_virtio_mmio *t, uint64_t features)
{
    wr(t, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE | VS_VIRTIO_STATUS_DRIVER);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)features);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 1);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    wr(t, VS_VMMIO_STATUS, rd(t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FEATURES_OK);
    return rd(t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_FEATURES_OK;
}

static void start(struct fixture *f, uint64_t features)
{
    struct vs_virtio_mmio *t = f->a.n->transport;
    assert_true(negotiate(t, features));
    for (uint32_t q = 0; q < 3; q++) {
        wr(t, VS_VMMIO_QUEUE_SEL, q);
        wr(t, VS_VMMIO_QUEUE_NUM, QSIZE);
        wr(t, VS_VMMIO_QUEUE_DESC_LOW, QBASE(q));
        wr(t, VS_VMMIO_QUEUE_DRIVER_LOW, QBASE(q) + 0x1000);
        wr(t, VS_VMMIO_QUEUE_DEVICE_LOW, QBASE(q) + 0x2000);
        wr(t, VS_VMMIO_QUEUE_READY, 1);
    }
    wr(t, VS_VMMIO_STATUS, rd(t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_DRIVER_OK);
    vs_virtio_net_set_running(f->a.n, true);
}

static void desc(struct fixture *f, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next)
{
    guest_desc_at(&f->g, QBASE(q), i, addr, len, flags, next);
}

static void offer(struct fixture *f, unsigned q, uint16_t head)
{
    guest_put16(&f->g, QBASE(q) + 0x1000 + 4 + 2u * (f->avail[q] % QSIZE), head);
    guest_put16(&f->g, QBASE(q) + 0x1000 + 2, ++f->avail[q]);
}

static void notify(struct fixture *f, unsigned q)
{
    wr(f->a.n->transport, VS_VMMIO_QUEUE_NOTIFY, q);
}

static uint16_t used_idx(struct fixture *f, unsigned q)
{
    return guest_get16(&f->g, QBASE(q) + 0x2000 + 2);
}

static uint32_t used_len(struct fixture *f, unsigned q, uint16_t i)
{
    return guest_get32(&f->g, QBASE(q) + 0x2000 + 4 + 8u * (i % QSIZE) + 4);
}

static uint32_t used_id(struct fixture *f, unsigned q, uint16_t i)
{
    return guest_get32(&f->g, QBASE(q) + 0x2000 + 4 + 8u * (i % QSIZE));
}

static bool broken(struct fixture *f, unsigned q)
{
    return f->a.n->transport->vq[q].broken &&
           (rd(f->a.n->transport, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET);
}

/* A frame of len bytes from `src` (an ARP request from 198.18.0.10 when len allows). */
static void make_frame(uint8_t *b, size_t len, const uint8_t src[6])
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 7 + 3);
    memset(b, 0xff, 6);
    memcpy(b + 6, src, 6);
    b[12] = 0x08, b[13] = 0x06;
    static const uint8_t arp[28] = { 0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56,
                                     198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 198, 18, 0, 1 };
    if (len >= 42)
        memcpy(b + 14, arp, sizeof(arp));
}

/* The wire sends a frame (with a header whose fields the device must not pass on). */
static void wire_send(struct nic *x, const uint8_t *frame, size_t len)
{
    uint8_t buf[HDR + 2048];
    memset(buf, 0xee, HDR);
    memcpy(buf + HDR, frame, len);
    assert_int_equal(send(x->peer, buf, HDR + len, 0), (ssize_t)(HDR + len));
}

static ssize_t wire_recv(struct nic *x, uint8_t *buf, size_t len)
{
    ssize_t n = recv(x->peer, buf, len, MSG_DONTWAIT);
    return n < 0 ? -errno : n;
}

static void post_rx(struct fixture *f, uint16_t id, uint32_t len)
{
    memset(guest_ptr(&f->g, BUF(id)), 0xcc, len);
    desc(f, 0, id, BUF(id), len, VS_VQ_DESC_F_WRITE, 0);
    offer(f, 0, id);
}

static void transmit_zeroes_header_and_learns_ip(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[60];
    make_frame(frame, sizeof(frame), mac);
    memset(guest_ptr(&f->g, BUF(0)), 0x5a, HDR);   /* GSO and checksum fields set: ignored */
    memcpy(guest_ptr(&f->g, BUF(1)), frame, sizeof(frame));
    desc(f, 1, 0, BUF(0), HDR, VS_VQ_DESC_F_NEXT, 1);
    desc(f, 1, 1, BUF(1), sizeof(frame), 0, 0);
    offer(f, 1, 0);
    notify(f, 1);
    uint8_t got[256];
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), HDR + sizeof(frame));
    static const uint8_t zero[HDR];
    assert_memory_equal(got, zero, HDR);
    assert_memory_equal(got + HDR, frame, sizeof(frame));
    assert_int_equal(used_idx(f, 1), 1);
    assert_int_equal(used_len(f, 1, 0), 0);
    assert_true(f->a.line.level);
    assert_int_equal(f->a.n->n.tx_frames, 1);
    assert_true(f->a.n->ip_known && f->a.n->ip_learned);
    assert_int_equal(f->a.n->ip[0], 198);
    assert_int_equal(f->a.n->ip[3], 10);
}

static void transmit_hostile_chains(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    desc(f, 1, 0, BUF(0), HDR + 4, 0, 0);   /* too short to be a frame: dropped, returned */
    offer(f, 1, 0);
    notify(f, 1);
    uint8_t got[64];
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), -EAGAIN);
    assert_int_equal(used_idx(f, 1), 1);
    assert_int_equal(f->a.n->n.tx_dropped, 1);
    desc(f, 1, 1, GUEST_RAM - 16, 64, 0, 0);   /* runs past the end of RAM */
    offer(f, 1, 1);
    notify(f, 1);
    assert_true(broken(f, 1));
    assert_int_equal(used_idx(f, 1), 1);
    /* A reset makes the device usable again; then a loop of descriptors breaks it. */
    wr(f->a.n->transport, VS_VMMIO_STATUS, 0);
    f->avail[1] = 0;
    guest_put16(&f->g, QBASE(1) + 0x1000 + 2, 0);
    memset(guest_ptr(&f->g, QBASE(1) + 0x2000), 0, 8);
    start(f, BASE_FEATURES);
    assert_false(f->a.n->transport->vq[1].broken);
    desc(f, 1, 2, BUF(2), 64, VS_VQ_DESC_F_NEXT, 3);
    desc(f, 1, 3, BUF(3), 64, VS_VQ_DESC_F_NEXT, 2);
    offer(f, 1, 2);
    notify(f, 1);
    assert_true(broken(f, 1));
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), -EAGAIN);
}

static void receive_frame(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    post_rx(f, 0, 2048);
    post_rx(f, 1, 2048);
    notify(f, 0);
    uint8_t frame[100];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_id(f, 0, 0), 0);
    assert_int_equal(used_len(f, 0, 0), HDR + sizeof(frame));
    const uint8_t *b = guest_ptr(&f->g, BUF(0));
    static const uint8_t hdr[HDR] = { [10] = 1 };   /* zero but num_buffers = 1 */
    assert_memory_equal(b, hdr, HDR);
    assert_memory_equal(b + HDR, frame, sizeof(frame));
    assert_int_equal(b[HDR + sizeof(frame)], 0xcc);   /* nothing beyond */
    assert_int_equal(f->a.n->n.rx_frames, 1);
    assert_true(f->a.line.level);
}

static void receive_waits_for_buffers(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[80];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);   /* until a notify */
    post_rx(f, 3, 1600);
    notify(f, 0);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_id(f, 0, 0), 3);
    assert_memory_equal(guest_ptr(&f->g, BUF(3)) + HDR, frame, sizeof(frame));
    assert_int_equal(f->a.n->n.rx_dropped, 0);
}

static void receive_merged_buffers(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES | VS_VIRTIO_NET_F_MRG_RXBUF);
    post_rx(f, 0, 64);
    notify(f, 0);
    uint8_t frame[150];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    /* One buffer of 64 bytes is not enough: nothing is taken for good, the frame waits. */
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(used_idx(f, 0), 0);
    assert_int_equal(f->a.n->transport->vq[0].last_avail_idx, 0);
    post_rx(f, 1, 64);
    post_rx(f, 2, 64);
    notify(f, 0);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 3);
    assert_int_equal(used_len(f, 0, 0), 64);
    assert_int_equal(used_len(f, 0, 1), 64);
    assert_int_equal(used_len(f, 0, 2), HDR + sizeof(frame) - 128);
    assert_int_equal(guest_get16(&f->g, BUF(0) + 10), 3);   /* num_buffers */
    uint8_t back[sizeof(frame)];
    memcpy(back, guest_ptr(&f->g, BUF(0)) + HDR, 64 - HDR);
    memcpy(back + 64 - HDR, guest_ptr(&f->g, BUF(1)), 64);
    memcpy(back + 128 - HDR, guest_ptr(&f->g, BUF(2)), sizeof(frame) - (128 - HDR));
    assert_memory_equal(back, frame, sizeof(frame));
}

static void receive_small_buffer_without_merging(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    post_rx(f, 0, 100);
    notify(f, 0);
    uint8_t big[150], small[60];
    make_frame(big, sizeof(big), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    make_frame(small, sizeof(small), (const uint8_t[6]){ 2, 0, 0, 0, 0, 8 });
    wire_send(&f->a, big, sizeof(big));
    wire_send(&f->a, small, sizeof(small));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    /* The big frame is dropped; the buffer it did not fit holds the next one. */
    assert_int_equal(f->a.n->n.rx_dropped, 1);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_len(f, 0, 0), HDR + sizeof(small));
    assert_memory_equal(guest_ptr(&f->g, BUF(0)) + HDR, small, sizeof(small));
}

static void receive_hostile_chains(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[60];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    desc(f, 0, 0, BUF(0), 1500, 0, 0);   /* device-readable: nothing to write into */
    offer(f, 0, 0);
    notify(f, 0);
    wire_send(&f->a, frame, sizeof(frame));
    vs_virtio_net_rx_pump(f->a.n);
    assert_true(broken(f, 0));
    assert_int_equal(used_idx(f, 0), 0);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);   /* stays stopped */
    /* After a reset: a writable buffer smaller than the header breaks the queue too. */
    wr(f->a.n->transport, VS_VMMIO_STATUS, 0);
    f->avail[0] = 0;
    guest_put16(&f->g, QBASE(0) + 0x1000 + 2, 0);
    start(f, BASE_FEATURES | VS_VIRTIO_NET_F_MRG_RXBUF);
    post_rx(f, 1, 8);
    notify(f, 0);
    wire_send(&f->a, frame, sizeof(frame));
    vs_virtio_net_rx_pump(f->a.n);
    assert_true(broken(f, 0));
    assert_int_equal(guest_ptr(&f->g, BUF(1))[0], 0xcc);
}

static void nothing_enters_the_guest_while_paused(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    post_rx(f, 0, 2048);
    notify(f, 0);
    vs_virtio_net_set_running(f->a.n, false);
    uint8_t frame[64];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(used_idx(f, 0), 0);
    assert_int_equal(guest_ptr(&f->g, BUF(0))[0], 0xcc);
    vs_virtio_net_set_running(f->a.n, true);   /* resumed here: the frame is delivered */
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 1);
}

/* A control request: class, command, then the device-writable status byte. */
static uint8_t control(struct fixture *f, uint16_t head, uint8_t class, uint8_t cmd)
{
    uint8_t *req = guest_ptr(&f->g, BUF(6) + 16u * head);
    req[0] = class, req[1] = cmd, req[8] = 0x77;
    desc(f, 2, head, BUF(6) + 16u * head, 2, VS_VQ_DESC_F_NEXT, (uint16_t)(head + 1));
    desc(f, 2, (uint16_t)(head + 1), BUF(6) + 16u * head + 8, 1, VS_VQ_DESC_F_WRITE, 0);
    offer(f, 2, head);
    notify(f, 2);
    return req[8];
}

static void control_queue(void **state)
{
    struct fixture *f = *state;
    struct vs_virtio_mmio *t = f->a.n->transport;
    /* GUEST_ANNOUNCE needs the control queue to be acknowledged on. */
    assert_false(negotiate(t, BASE_FEATURES | VS_VIRTIO_NET_F_GUEST_ANNOUNCE));
    wr(t, VS_VMMIO_STATUS, 0);
    start(f, BASE_FEATURES | ANNOUNCE_FEATURES);
    f->a.n->status |= VS_VIRTIO_NET_S_ANNOUNCE;
    assert_int_equal(control(f, 0, 0, 0), VS_VIRTIO_NET_ERR);   /* receive modes: not offered */
    assert_int_equal(f->a.n->status, VS_VIRTIO_NET_S_LINK_UP | VS_VIRTIO_NET_S_ANNOUNCE);
    assert_int_equal(control(f, 2, VS_VIRTIO_NET_CTRL_ANNOUNCE, VS_VIRTIO_NET_CTRL_ANNOUNCE_ACK),
                     VS_VIRTIO_NET_OK);
    assert_int_equal(f->a.n->status, VS_VIRTIO_NET_S_LINK_UP);
    assert_int_equal(f->a.n->n.announce_acks, 1);
    assert_int_equal(used_idx(f, 2), 2);
    /* Configuration space: the MAC, then the status. */
    struct vs_bus_io io = { .offset = VS_VIRTIO_MMIO_CONFIG, .size = 8 };
    uint8_t cfg[8];
    io.data = cfg;
    vs_virtio_mmio_io(t, &io);
    assert_memory_equal(cfg, mac, 6);
    assert_int_equal(cfg[6], VS_VIRTIO_NET_S_LINK_UP);
    /* A request with no byte for the status breaks the queue. */
    desc(f, 2, 4, BUF(7), 2, 0, 0);
    offer(f, 2, 4);
    notify(f, 2);
    assert_true(broken(f, 2));
}

static void save(struct nic *x, struct vs_blob *b)
{
    assert_int_equal(vs_vmstate_save_all(&x->reg, b), 0);
}

static void state_moves_and_the_arrival_is_announced(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES | ANNOUNCE_FEATURES);
    post_rx(f, 0, 2048);
    notify(f, 0);
    uint8_t frame[60];
    make_frame(frame, sizeof(frame), mac);   /* the guest sends: its IP is learned */
    memcpy(guest_ptr(&f->g, BUF(5)), frame, sizeof(frame));
    desc(f, 1, 0, BUF(4), HDR, VS_VQ_DESC_F_NEXT, 1);
    desc(f, 1, 1, BUF(5), sizeof(frame), 0, 0);
    offer(f, 1, 0);
    notify(f, 1);
    vs_virtio_net_set_running(f->a.n, false);   /* the source pauses, then saves */
    struct vs_blob b = { 0 };
    save(&f->a, &b);

    struct nic d = { 0 };
    nic_make(f, &d);
    wire_send(&d, frame, sizeof(frame));   /* queued for the VM before it runs here */
    assert_int_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_memory_equal(d.n->mac, mac, 6);
    assert_true(d.n->ip_known);
    assert_int_equal(d.n->n.tx_frames, 1);
    assert_int_equal(d.n->transport->vq[0].last_avail_idx, 0);
    vs_virtio_net_set_running(d.n, true);
    assert_int_equal(d.n->n.rx_discarded, 1);
    uint64_t t0 = d.n->ann_start_ns;
    /* Round 1 at once: RARP and gratuitous ARP on the wire, the guest asked. */
    assert_int_equal(vs_virtio_net_timers(d.n, t0), 50 * 1000000LL);
    uint8_t got[128];
    assert_int_equal(wire_recv(&d, got, sizeof(got)), HDR + VS_ETH_MIN_FRAME);
    assert_int_equal(got[HDR + 12] << 8 | got[HDR + 13], VS_ETH_P_RARP);
    assert_memory_equal(got + HDR + 6, mac, 6);
    assert_int_equal(wire_recv(&d, got, sizeof(got)), HDR + VS_ETH_MIN_FRAME);
    assert_int_equal(got[HDR + 12] << 8 | got[HDR + 13], VS_ETH_P_ARP);
    assert_int_equal(got[HDR + 14 + 17], 10);   /* sender IP 198.18.0.10 */
    assert_true(d.n->status & VS_VIRTIO_NET_S_ANNOUNCE);
    assert_true(d.n->transport->interrupt_status & VS_VIRTIO_INT_CONFIG);
    /* The rest on QEMU's schedule: +50, +150, +250, +350 ms. */
    assert_int_equal(vs_virtio_net_timers(d.n, t0 + 49000000), 1000000);
    assert_int_equal(wire_recv(&d, got, sizeof(got)), -EAGAIN);
    uint64_t at = t0 + 50000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), 150000000);
    at += 150000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), 250000000);
    at += 250000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), 350000000);
    at += 350000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), -1);
    assert_int_equal(d.n->nr_events, 5);
    assert_int_equal(d.n->events[4].at_us, 800000);
    unsigned frames = 0;
    while (wire_recv(&d, got, sizeof(got)) > 0)
        frames++;
    assert_int_equal(frames, 8);   /* rounds 2..5, RARP and GARP each */
    vs_blob_free(&b);
    nic_free(&d);
}

static void load_refuses_bad_records(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    vs_virtio_net_set_running(f->a.n, false);
    struct vs_blob b = { 0 };
    save(&f->a, &b);
    struct nic d = { 0 };
    nic_make(f, &d);
    /* The section's fields come last in the blob: mac, status, ip, flags, counters. */
    uint8_t *rec = b.data + b.len - sizeof(struct vs_virtio_net_record);
    rec[0] |= 1;   /* a multicast MAC */
    assert_int_not_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "unicast"));
    rec[0] &= (uint8_t)~1;
    rec[6] = 0x80;   /* an unknown status bit */
    assert_int_not_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "status"));
    rec[6] = 1;
    rec[offsetof(struct vs_virtio_net_record, vlan)] = 0xff;   /* VLAN 4095 */
    rec[offsetof(struct vs_virtio_net_record, vlan) + 1] = 0x0f;
    assert_int_not_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "VLAN"));
    /* A VLAN moves with the VM, whatever the destination's spec says. */
    rec[offsetof(struct vs_virtio_net_record, vlan) + 1] = 0;
    rec[offsetof(struct vs_virtio_net_record, vlan)] = 20;
    assert_int_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_int_equal(d.n->vlan, 20);
    vs_blob_free(&b);
    nic_free(&d);
}

/* The frame with an 802.1Q tag for vid after its addresses. */
static size_t tagged(uint8_t *out, const uint8_t *frame, size_t len, uint16_t vid)
{
    memcpy(out, frame, 12);
    out[12] = 0x81, out[13] = 0x00, out[14] = (uint8_t)(vid >> 8), out[15] = (uint8_t)vid;
    memcpy(out + 16, frame + 12, len - 12);
    return len + 4;
}

static void vlan_tags_what_the_guest_sends_and_filters_what_it_gets(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES | VS_VIRTIO_NET_F_MRG_RXBUF);
    uint8_t frame[60], want[64], got[128];
    make_frame(frame, sizeof(frame), mac);
    memcpy(guest_ptr(&f->g, BUF(1)), frame, sizeof(frame));
    desc(f, 1, 0, BUF(0), HDR, VS_VQ_DESC_F_NEXT, 1);
    desc(f, 1, 1, BUF(1), sizeof(frame), 0, 0);
    offer(f, 1, 0);
    notify(f, 1);
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), HDR + sizeof(frame) + 4);
    assert_memory_equal(got + HDR, want, tagged(want, frame, sizeof(frame), 10));
    assert_true(f->a.n->ip_known);   /* learned from the untagged frame */
    /* In: VLAN 10 untagged for the guest; VLAN 20 and untagged frames never reach it. */
    post_rx(f, 0, 2048);
    notify(f, 0);
    uint8_t other[60], in[64];
    make_frame(other, sizeof(other), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, in, tagged(in, other, sizeof(other), 20));
    wire_send(&f->a, other, sizeof(other));
    wire_send(&f->a, in, tagged(in, other, sizeof(other), 10));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(f->a.n->n.rx_filtered, 2);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_len(f, 0, 0), HDR + sizeof(other));
    assert_memory_equal(guest_ptr(&f->g, BUF(0)) + HDR, other, sizeof(other));
}

/* Six frames of 1000 bytes to send at 8000 bytes/s with a bucket of 3072: four go at
 * once, the rest when the I/O thread's timer says; chains wait on the ring meanwhile. */
static void rate_holds_frames_back(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[1000];
    make_frame(frame, sizeof(frame), mac);
    memcpy(guest_ptr(&f->g, BUF(1)), frame, sizeof(frame));
    for (uint16_t i = 0; i < 6; i++) {
        desc(f, 1, i, BUF(1) - HDR, HDR + sizeof(frame), 0, 0);
        offer(f, 1, i);
    }
    notify(f, 1);
    assert_int_equal(used_idx(f, 1), 4);
    assert_int_equal(f->a.n->n.tx_throttled, 1);
    uint64_t retry = f->a.n->tx_retry_ns;
    assert_true(retry > 0);
    notify(f, 1);                                   /* the driver's notify changes nothing */
    assert_int_equal(used_idx(f, 1), 4);
    assert_true(vs_virtio_net_timers(f->a.n, retry) > 0);
    assert_int_equal(used_idx(f, 1), 5);            /* the debt of the 4th was paid */
    assert_int_equal(vs_virtio_net_timers(f->a.n, f->a.n->tx_retry_ns + 1000000000), -1);
    assert_int_equal(used_idx(f, 1), 6);
    uint8_t got[HDR + 1100];
    unsigned frames = 0;
    while (wire_recv(&f->a, got, sizeof(got)) == HDR + (ssize_t)sizeof(frame))
        frames++;
    assert_int_equal(frames, 6);
    /* Receiving: frames wait in the backend's queue while the bucket is in debt. */
    for (uint16_t i = 0; i < 6; i++)
        post_rx(f, i, 2048);
    notify(f, 0);
    for (int i = 0; i < 5; i++)
        wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(used_idx(f, 0), 4);
    assert_int_equal(f->a.n->n.rx_throttled, 1);
    assert_true(f->a.n->rx_retry_ns > 0);
    f->a.n->rx_tb.tokens = 0;                       /* as if the time had passed */
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 5);
    assert_int_equal(f->a.n->n.rx_dropped, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(transmit_zeroes_header_and_learns_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(transmit_hostile_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_waits_for_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_merged_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_small_buffer_without_merging, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_hostile_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_enters_the_guest_while_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(control_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(state_moves_and_the_arrival_is_announced, setup, teardown),
        cmocka_unit_test_setup_teardown(load_refuses_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(vlan_tags_what_the_guest_sends_and_filters_what_it_gets,
                                        setup_vlan, teardown),
        cmocka_unit_test_setup_teardown(rate_holds_frames_back, setup_rate, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
