/* The fixture of virtio-net's unit tests (test_virtio_net.c, test_virtio_net_state.c): a
 * device on a guest RAM with its transport driven as a guest driver would, a real backend
 * (one end of a SOCK_SEQPACKET socket pair: one frame per read, as a TAP with IFF_VNET_HDR
 * gives them), and the queue helpers. */
#ifndef VS_TEST_VIRTIO_NET_FIXTURE_H
#define VS_TEST_VIRTIO_NET_FIXTURE_H

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

static inline void line_set(void *ctx, uint32_t gsi, bool level)
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

static inline void nic_make_spec(struct fixture *f, struct nic *x, const char *text)
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

static inline void nic_make(struct fixture *f, struct nic *x)
{
    nic_make_spec(f, x, "tap=t0,mac=52:54:00:12:34:56");
}

static inline void nic_free(struct nic *x)
{
    vs_virtio_net_free(x->n);
    close(x->peer);
}

static inline int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    nic_make(f, &f->a);
    *state = f;
    return 0;
}

static inline int setup_vlan(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    nic_make_spec(f, &f->a, "tap=t0,mac=52:54:00:12:34:56,vlan=10");
    *state = f;
    return 0;
}

static inline int setup_rate(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    nic_make_spec(f, &f->a, "tap=t0,mac=52:54:00:12:34:56,rate=8000");   /* bytes/s */
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fixture *f = *state;
    nic_free(&f->a);
    guest_free(&f->g);
    free(f);
    return 0;
}

static inline uint32_t rd(struct vs_virtio_mmio *t, uint64_t off)
{
    uint32_t v = 0;
    struct vs_bus_io io = { .offset = off, .data = (uint8_t *)&v, .size = 4 };
    vs_virtio_mmio_io(t, &io);
    return v;
}

static inline void wr(struct vs_virtio_mmio *t, uint64_t off, uint32_t v)
{
    struct vs_bus_io io = { .offset = off, .data = (uint8_t *)&v, .size = 4, .is_write = true };
    vs_virtio_mmio_io(t, &io);
}

static inline bool negotiate(struct vs_virtio_mmio *t, uint64_t features)
{
    wr(t, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE | VS_VIRTIO_STATUS_DRIVER);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)features);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 1);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    wr(t, VS_VMMIO_STATUS, rd(t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FEATURES_OK);
    return rd(t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_FEATURES_OK;
}

static inline void start(struct fixture *f, uint64_t features)
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

static inline void desc(struct fixture *f, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next)
{
    guest_desc_at(&f->g, QBASE(q), i, addr, len, flags, next);
}

static inline void offer(struct fixture *f, unsigned q, uint16_t head)
{
    guest_put16(&f->g, QBASE(q) + 0x1000 + 4 + 2u * (f->avail[q] % QSIZE), head);
    guest_put16(&f->g, QBASE(q) + 0x1000 + 2, ++f->avail[q]);
}

static inline void notify(struct fixture *f, unsigned q)
{
    wr(f->a.n->transport, VS_VMMIO_QUEUE_NOTIFY, q);
}

static inline uint16_t used_idx(struct fixture *f, unsigned q)
{
    return guest_get16(&f->g, QBASE(q) + 0x2000 + 2);
}

static inline uint32_t used_len(struct fixture *f, unsigned q, uint16_t i)
{
    return guest_get32(&f->g, QBASE(q) + 0x2000 + 4 + 8u * (i % QSIZE) + 4);
}

static inline uint32_t used_id(struct fixture *f, unsigned q, uint16_t i)
{
    return guest_get32(&f->g, QBASE(q) + 0x2000 + 4 + 8u * (i % QSIZE));
}

static inline bool broken(struct fixture *f, unsigned q)
{
    return f->a.n->transport->vq[q].broken &&
           (rd(f->a.n->transport, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET);
}

/* A frame of len bytes from `src` (an ARP request from 198.18.0.10 when len allows). */
static inline void make_frame(uint8_t *b, size_t len, const uint8_t src[6])
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
static inline void wire_send(struct nic *x, const uint8_t *frame, size_t len)
{
    uint8_t buf[HDR + 2048];
    memset(buf, 0xee, HDR);
    memcpy(buf + HDR, frame, len);
    assert_int_equal(send(x->peer, buf, HDR + len, 0), (ssize_t)(HDR + len));
}

static inline ssize_t wire_recv(struct nic *x, uint8_t *buf, size_t len)
{
    ssize_t n = recv(x->peer, buf, len, MSG_DONTWAIT);
    return n < 0 ? -errno : n;
}

static inline void post_rx(struct fixture *f, uint16_t id, uint32_t len)
{
    memset(guest_ptr(&f->g, BUF(id)), 0xcc, len);
    desc(f, 0, id, BUF(id), len, VS_VQ_DESC_F_WRITE, 0);
    offer(f, 0, id);
}

#endif
