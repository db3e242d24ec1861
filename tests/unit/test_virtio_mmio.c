/* Unit tests: the virtio-mmio transport (src/vmm/virtio/virtio_mmio.c) driven through its
 * bus handler as a guest driver would: identity, feature negotiation and FEATURES_OK,
 * queue setup, notifications reaching the device, InterruptStatus/ACK driving the line,
 * reset, configuration generation; virtio-rng end to end; and the migration record saved
 * mid-flight and loaded into a fresh device that continues with the same next request. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/log.h"
#include "expect_error.h"
#include "virtio_guest.h"
#include "vmm/virtio/virtio_mmio.h"
#include "vmm/virtio/virtio_rng.h"

#define QSIZE 8

/* ---- A test device: 2 queues, 8 bytes of config; serves ONE chain per notify, writing
 * the chain's first readable byte + 100 into its first writable byte. ---- */
struct test_dev {
    struct vs_vq_chain chain;
    unsigned notifies, resets;
    uint8_t config[8];
    int refuse_features;
};

static void td_config_read(void *dev, uint32_t off, uint8_t *data, unsigned size)
{
    memcpy(data, ((struct test_dev *)dev)->config + off, size);
}

static void td_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned size)
{
    memcpy(((struct test_dev *)dev)->config + off, data, size);
}

static int td_features_ok(void *dev, uint64_t features)
{
    (void)features;
    return ((struct test_dev *)dev)->refuse_features ? -EINVAL : 0;
}

static void td_notify(void *dev, struct vs_virtio_mmio *t, struct vs_virtqueue *vq)
{
    struct test_dev *d = dev;
    (void)t;
    d->notifies++;
    if (vs_vq_pop(vq, &d->chain) <= 0)
        return;
    uint8_t in = 0, out;
    vs_vq_chain_read(&d->chain, 0, &in, 1);
    out = (uint8_t)(in + 100);
    uint32_t n = (uint32_t)vs_vq_chain_write(vq, &d->chain, 0, &out, 1);
    if (vs_vq_push(vq, d->chain.head, n) == 0)
        vs_vq_notify_driver(vq);
}

static void td_reset(void *dev)
{
    ((struct test_dev *)dev)->resets++;
}

#define TD_FEATURE (1ull << 3)
static const struct vs_virtio_device_ops test_ops = {
    .name = "virtio-test", .device_id = 42, .features = TD_FEATURE, .nr_queues = 2,
    .queue_max = QSIZE, .config_size = 8, .config_read = td_config_read,
    .config_write = td_config_write, .features_ok = td_features_ok, .queue_notify = td_notify,
    .reset = td_reset,
};

/* ---- The interrupt line, as a recorder. ---- */
struct line {
    bool level;
    unsigned changes;
};

static void line_set(void *ctx, uint32_t gsi, bool level)
{
    struct line *l = ctx;
    assert_int_equal(gsi, 5);
    l->level = level;
    l->changes++;
}

struct fixture {
    struct guest g;
    struct line line;
    struct test_dev dev;
    struct vs_virtio_mmio t;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    struct vs_irq_line irq = { .set = line_set, .ctx = &f->line, .gsi = 5 };
    assert_int_equal(vs_virtio_mmio_init(&f->t, "virtio-test0", &test_ops, &f->dev, &f->g.mem, irq), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    vs_virtio_mmio_destroy(&f->t);
    guest_free(&f->g);
    free(f);
    return 0;
}

static uint32_t rd(struct vs_virtio_mmio *t, uint64_t off)
{
    uint32_t v = 0xdeadbeef;
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
    wr(t, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE);
    wr(t, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE | VS_VIRTIO_STATUS_DRIVER);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)features);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 1);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    wr(t, VS_VMMIO_STATUS, rd(t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FEATURES_OK);
    return rd(t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_FEATURES_OK;
}

static void setup_queue(struct vs_virtio_mmio *t, uint32_t q, uint32_t size)
{
    wr(t, VS_VMMIO_QUEUE_SEL, q);
    assert_int_equal(rd(t, VS_VMMIO_QUEUE_READY), 0);
    wr(t, VS_VMMIO_QUEUE_NUM, size);
    wr(t, VS_VMMIO_QUEUE_DESC_LOW, GUEST_DESC);
    wr(t, VS_VMMIO_QUEUE_DESC_HIGH, 0);
    wr(t, VS_VMMIO_QUEUE_DRIVER_LOW, GUEST_AVAIL);
    wr(t, VS_VMMIO_QUEUE_DRIVER_HIGH, 0);
    wr(t, VS_VMMIO_QUEUE_DEVICE_LOW, GUEST_USED);
    wr(t, VS_VMMIO_QUEUE_DEVICE_HIGH, 0);
    wr(t, VS_VMMIO_QUEUE_READY, 1);
}

/* The whole driver start-up: features, queue 0, DRIVER_OK. */
static void start_driver(struct vs_virtio_mmio *t, uint64_t features)
{
    assert_true(negotiate(t, features));
    setup_queue(t, 0, QSIZE);
    wr(t, VS_VMMIO_STATUS, rd(t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_DRIVER_OK);
}

static void identity_registers(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rd(&f->t, VS_VMMIO_MAGIC), 0x74726976);
    assert_int_equal(rd(&f->t, VS_VMMIO_VERSION), 2);
    assert_int_equal(rd(&f->t, VS_VMMIO_DEVICE_ID), 42);
    assert_int_equal(rd(&f->t, VS_VMMIO_VENDOR_ID), VS_VIRTIO_VENDOR_ID);
    assert_int_equal(rd(&f->t, VS_VMMIO_SHM_LEN_LOW), 0xffffffffu);   /* no such region */
    /* Registers take aligned 32-bit accesses only: others read 0 and are counted. */
    uint16_t half = 0xbeef;
    struct vs_bus_io io = { .offset = VS_VMMIO_MAGIC, .data = (uint8_t *)&half, .size = 2 };
    vs_virtio_mmio_io(&f->t, &io);
    assert_int_equal(half, 0);
    assert_int_equal(rd(&f->t, VS_VMMIO_MAGIC + 2), 0);
    assert_int_equal(f->t.bad_accesses, 2);
}

static void feature_negotiation(void **state)
{
    struct fixture *f = *state;
    wr(&f->t, VS_VMMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t low = rd(&f->t, VS_VMMIO_DEVICE_FEATURES);
    wr(&f->t, VS_VMMIO_DEVICE_FEATURES_SEL, 1);
    uint32_t high = rd(&f->t, VS_VMMIO_DEVICE_FEATURES);
    wr(&f->t, VS_VMMIO_DEVICE_FEATURES_SEL, 2);
    assert_int_equal(rd(&f->t, VS_VMMIO_DEVICE_FEATURES), 0);
    assert_int_equal(low, (uint32_t)(TD_FEATURE | VS_VIRTIO_F_INDIRECT_DESC | VS_VIRTIO_F_EVENT_IDX));
    assert_int_equal(high, 1);   /* VIRTIO_F_VERSION_1 */

    uint64_t want = VS_VIRTIO_F_VERSION_1 | VS_VIRTIO_F_EVENT_IDX | TD_FEATURE;
    assert_true(negotiate(&f->t, want));
    assert_int_equal(vs_virtio_mmio_features(&f->t), want);
    /* Fixed once FEATURES_OK is set. */
    wr(&f->t, VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    wr(&f->t, VS_VMMIO_DRIVER_FEATURES, 0);
    assert_int_equal(vs_virtio_mmio_features(&f->t), want);
    setup_queue(&f->t, 0, QSIZE);
    assert_true(f->t.vq[0].event_idx);
    assert_false(f->t.vq[0].indirect);
}

static void features_ok_refused(void **state)
{
    struct fixture *f = *state;
    /* A feature the device does not offer. */
    assert_false(negotiate(&f->t, VS_VIRTIO_F_VERSION_1 | (1ull << 5)));
    /* No VERSION_1: this transport has no legacy interface. */
    wr(&f->t, VS_VMMIO_STATUS, 0);
    assert_false(negotiate(&f->t, TD_FEATURE));
    /* The device's own veto. */
    wr(&f->t, VS_VMMIO_STATUS, 0);
    f->dev.refuse_features = 1;
    assert_false(negotiate(&f->t, VS_VIRTIO_F_VERSION_1));
    f->dev.refuse_features = 0;
    wr(&f->t, VS_VMMIO_STATUS, 0);
    assert_true(negotiate(&f->t, VS_VIRTIO_F_VERSION_1));
}

static void queue_setup(void **state)
{
    struct fixture *f = *state;
    assert_true(negotiate(&f->t, VS_VIRTIO_F_VERSION_1));
    wr(&f->t, VS_VMMIO_QUEUE_SEL, 0);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_NUM_MAX), QSIZE);
    wr(&f->t, VS_VMMIO_QUEUE_SEL, 2);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_NUM_MAX), 0);   /* no third queue */
    wr(&f->t, VS_VMMIO_QUEUE_READY, 1);                        /* ignored */
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_READY), 0);

    setup_queue(&f->t, 1, 4);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_READY), 1);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_NUM), 4);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_DRIVER_LOW), GUEST_AVAIL);
    /* Setup registers do not change while the queue is ready. */
    wr(&f->t, VS_VMMIO_QUEUE_NUM, 2);
    wr(&f->t, VS_VMMIO_QUEUE_DESC_HIGH, 7);
    assert_int_equal(f->t.vq[1].size, 4);
    assert_int_equal(f->t.vq[1].desc_gpa, GUEST_DESC);
    assert_false(f->t.vq[1].broken);
    assert_int_equal(rd(&f->t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET, 0);
    /* Stopping it. */
    wr(&f->t, VS_VMMIO_QUEUE_READY, 0);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_READY), 0);
}

static void bad_queue_setup_needs_reset(void **state)
{
    struct fixture *f = *state;
    assert_true(negotiate(&f->t, VS_VIRTIO_F_VERSION_1));
    setup_queue(&f->t, 0, 3);   /* not a power of two */
    assert_true(f->t.vq[0].broken);
    assert_true(rd(&f->t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(rd(&f->t, VS_VMMIO_INTERRUPT_STATUS), 0);   /* no DRIVER_OK yet */

    wr(&f->t, VS_VMMIO_STATUS, 0);
    assert_true(negotiate(&f->t, VS_VIRTIO_F_VERSION_1));
    wr(&f->t, VS_VMMIO_QUEUE_SEL, 0);
    wr(&f->t, VS_VMMIO_QUEUE_NUM, QSIZE);
    wr(&f->t, VS_VMMIO_QUEUE_DEVICE_LOW, GUEST_RAM - 16);   /* used ring past RAM */
    wr(&f->t, VS_VMMIO_QUEUE_READY, 1);
    assert_true(rd(&f->t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET);
}

static void notify_reaches_device_and_interrupt_drives_line(void **state)
{
    struct fixture *f = *state;
    assert_true(negotiate(&f->t, VS_VIRTIO_F_VERSION_1));
    setup_queue(&f->t, 0, QSIZE);
    guest_ptr(&f->g, GUEST_BUF)[0] = 7;
    guest_desc(&f->g, 0, GUEST_BUF, 1, 0 | VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, GUEST_BUF + 1, 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0);
    assert_int_equal(f->dev.notifies, 0);   /* not before DRIVER_OK */
    wr(&f->t, VS_VMMIO_STATUS, rd(&f->t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_DRIVER_OK);
    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 1);    /* queue 1 is not ready */
    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 9);    /* no such queue */
    assert_int_equal(f->dev.notifies, 0);
    assert_false(f->line.level);

    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0);
    assert_int_equal(f->dev.notifies, 1);
    assert_int_equal(guest_used_idx(&f->g), 1);
    assert_int_equal(guest_ptr(&f->g, GUEST_BUF + 1)[0], 107);
    assert_int_equal(rd(&f->t, VS_VMMIO_INTERRUPT_STATUS), VS_VIRTIO_INT_VRING);
    assert_true(f->line.level);
    wr(&f->t, VS_VMMIO_INTERRUPT_ACK, VS_VIRTIO_INT_CONFIG);   /* not the pending bit */
    assert_true(f->line.level);
    wr(&f->t, VS_VMMIO_INTERRUPT_ACK, VS_VIRTIO_INT_VRING);
    assert_int_equal(rd(&f->t, VS_VMMIO_INTERRUPT_STATUS), 0);
    assert_false(f->line.level);
    assert_int_equal(f->line.changes, 2);
}

static void broken_queue_raises_config_interrupt_and_reset_clears(void **state)
{
    struct fixture *f = *state;
    start_driver(&f->t, VS_VIRTIO_F_VERSION_1);
    guest_desc(&f->g, 0, GUEST_BUF, 8, VS_VQ_DESC_F_NEXT, 0);   /* a loop */
    guest_offer(&f->g, 0);
    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0);
    assert_true(rd(&f->t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(rd(&f->t, VS_VMMIO_INTERRUPT_STATUS), VS_VIRTIO_INT_CONFIG);
    assert_true(f->line.level);
    /* The queue does nothing more; the device is not even called. */
    unsigned before = f->dev.notifies;
    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0);
    assert_int_equal(f->dev.notifies, before);
    assert_int_equal(guest_used_idx(&f->g), 0);
    /* The driver cannot clear NEEDS_RESET but by a reset. */
    wr(&f->t, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_DRIVER_OK);
    assert_true(rd(&f->t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET);

    wr(&f->t, VS_VMMIO_STATUS, 0);
    assert_int_equal(f->dev.resets, 1);
    assert_int_equal(rd(&f->t, VS_VMMIO_STATUS), 0);
    assert_int_equal(rd(&f->t, VS_VMMIO_INTERRUPT_STATUS), 0);
    assert_false(f->line.level);
    assert_int_equal(vs_virtio_mmio_features(&f->t), 0);
    wr(&f->t, VS_VMMIO_QUEUE_SEL, 0);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_READY), 0);
    assert_int_equal(rd(&f->t, VS_VMMIO_QUEUE_NUM), 0);
    assert_false(f->t.vq[0].broken);
    assert_int_equal(f->t.vq[0].last_avail_idx, 0);

    /* And the device works again after a fresh start with fresh rings. */
    memset(guest_ptr(&f->g, GUEST_AVAIL), 0, 0x2000);
    f->g.avail_idx = 0;
    start_driver(&f->t, VS_VIRTIO_F_VERSION_1);
    guest_desc(&f->g, 0, GUEST_BUF, 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0);
    assert_int_equal(guest_used_idx(&f->g), 1);
}

static void config_space_and_generation(void **state)
{
    struct fixture *f = *state;
    memcpy(f->dev.config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
    uint8_t b = 0;
    struct vs_bus_io io = { .offset = VS_VIRTIO_MMIO_CONFIG + 2, .data = &b, .size = 1 };
    vs_virtio_mmio_io(&f->t, &io);
    assert_int_equal(b, 0x33);
    assert_int_equal(rd(&f->t, VS_VIRTIO_MMIO_CONFIG + 4), 0x88776655);
    assert_int_equal(rd(&f->t, VS_VIRTIO_MMIO_CONFIG + 6), 0);     /* runs past the 8 bytes */
    assert_int_equal(rd(&f->t, VS_VIRTIO_MMIO_CONFIG + 0x40), 0);
    wr(&f->t, VS_VIRTIO_MMIO_CONFIG, 0x01020304);
    assert_int_equal(f->dev.config[0], 0x04);

    uint32_t gen = rd(&f->t, VS_VMMIO_CONFIG_GENERATION);
    vs_virtio_mmio_config_changed(&f->t);          /* before DRIVER_OK: no interrupt */
    assert_int_equal(rd(&f->t, VS_VMMIO_CONFIG_GENERATION), gen + 1);
    assert_false(f->line.level);
    start_driver(&f->t, VS_VIRTIO_F_VERSION_1);
    vs_virtio_mmio_config_changed(&f->t);
    assert_int_equal(rd(&f->t, VS_VMMIO_CONFIG_GENERATION), gen + 2);
    assert_int_equal(rd(&f->t, VS_VMMIO_INTERRUPT_STATUS), VS_VIRTIO_INT_CONFIG);
    assert_true(f->line.level);
}

static void rng_fills_buffers_end_to_end(void **state)
{
    struct fixture *f = *state;
    struct vs_virtio_rng *rng = calloc(1, sizeof(*rng));
    struct vs_virtio_mmio t;
    struct vs_irq_line irq = { .set = line_set, .ctx = &f->line, .gsi = 5 };
    assert_int_equal(vs_virtio_mmio_init(&t, "virtio-rng0", &vs_virtio_rng_ops, rng, &f->g.mem, irq), 0);
    rng->transport = &t;
    assert_int_equal(rd(&t, VS_VMMIO_DEVICE_ID), VS_VIRTIO_ID_RNG);
    start_driver(&t, VS_VIRTIO_F_VERSION_1 | VS_VIRTIO_F_EVENT_IDX | VS_VIRTIO_F_INDIRECT_DESC);
    /* Two requests: 64 bytes in one buffer, and 8 KiB over an indirect table (capped). */
    guest_desc(&f->g, 0, GUEST_BUF, 64, VS_VQ_DESC_F_WRITE, 0);
    guest_desc_at(&f->g, 0x8000, 0, GUEST_BUF + 0x1000, 0x1000, VS_VQ_DESC_F_WRITE | VS_VQ_DESC_F_NEXT, 1);
    guest_desc_at(&f->g, 0x8000, 1, GUEST_BUF + 0x2000, 0x1000, VS_VQ_DESC_F_WRITE, 0);
    guest_desc(&f->g, 1, 0x8000, 32, VS_VQ_DESC_F_INDIRECT, 0);
    guest_offer(&f->g, 0);
    guest_offer(&f->g, 1);
    uint64_t bits[GUEST_PAGE_WORDS];
    guest_collect_writes(&f->g, bits);
    wr(&t, VS_VMMIO_QUEUE_NOTIFY, 0);
    assert_int_equal(guest_used_idx(&f->g), 2);
    assert_int_equal(guest_used_id(&f->g, 0), 0);
    assert_int_equal(guest_used_len(&f->g, 0), 64);
    assert_int_equal(guest_used_id(&f->g, 1), 1);
    assert_int_equal(guest_used_len(&f->g, 1), VS_VIRTIO_RNG_MAX_REQUEST);
    static const uint8_t zero[64];
    assert_memory_not_equal(guest_ptr(&f->g, GUEST_BUF), zero, 64);
    assert_memory_equal(guest_ptr(&f->g, GUEST_BUF + 0x2000), zero, 64);   /* past the cap */
    assert_int_equal(rng->requests, 2);
    assert_int_equal(guest_avail_event(&f->g), 2);
    assert_true(f->line.level);
    guest_collect_writes(&f->g, bits);
    assert_true(page_noted(bits, GUEST_BUF));
    assert_true(page_noted(bits, GUEST_BUF + 0x1000));
    assert_true(page_noted(bits, GUEST_USED));
    vs_virtio_mmio_destroy(&t);
    free(rng);
}

/* ---- Migration: what the registry does with a section, done by hand. ---- */
static size_t save_section(const struct vs_vmstate *d, void *opaque, uint8_t *out)
{
    assert_int_equal(d->pre_save(opaque), 0);
    const uint8_t *rec = d->record(opaque);
    size_t n = 0;
    for (unsigned i = 0; i < d->nr_fields; i++) {
        memcpy(out + n, rec + d->fields[i].offset, d->fields[i].size);
        n += d->fields[i].size;
    }
    return n;
}

static int load_section(const struct vs_vmstate *d, void *opaque, const uint8_t *in)
{
    uint8_t *rec = d->record(opaque);
    size_t n = 0;
    for (unsigned i = 0; i < d->nr_fields; i++) {
        memcpy(rec + d->fields[i].offset, in + n, d->fields[i].size);
        n += d->fields[i].size;
    }
    return d->post_load(opaque, d->version);
}

/* Serve `count` notifies and list the used ring from `from`. */
static void run_and_collect(struct fixture *f, struct vs_virtio_mmio *t, int count, uint16_t from,
                            uint32_t *ids, uint8_t *vals)
{
    for (int i = 0; i < count; i++)
        wr(t, VS_VMMIO_QUEUE_NOTIFY, 0);
    for (uint16_t n = from; n != guest_used_idx(&f->g); n++) {
        ids[n - from] = guest_used_id(&f->g, n);
        vals[n - from] = guest_ptr(&f->g, GUEST_BUF + 0x100 + guest_used_id(&f->g, n))[0];
    }
}

static void save_and_restore_mid_flight(void **state)
{
    struct fixture *f = *state;
    start_driver(&f->t, VS_VIRTIO_F_VERSION_1 | VS_VIRTIO_F_EVENT_IDX);
    /* Four requests: chain h reads byte h, writes one byte at BUF+0x100+h. */
    for (uint16_t h = 0; h < 8; h += 2) {
        guest_ptr(&f->g, GUEST_BUF + h)[0] = (uint8_t)h;
        guest_desc(&f->g, h, GUEST_BUF + h, 1, VS_VQ_DESC_F_NEXT, h + 1);
        guest_desc(&f->g, h + 1, GUEST_BUF + 0x100 + h, 1, VS_VQ_DESC_F_WRITE, 0);
    }
    guest_offer(&f->g, 4);
    guest_offer(&f->g, 0);
    guest_offer(&f->g, 6);
    guest_offer(&f->g, 2);
    wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0);     /* serves chain 4 only */
    assert_int_equal(guest_used_idx(&f->g), 1);

    uint8_t blob[sizeof(struct vs_virtio_mmio_record)];
    size_t len = save_section(&vs_virtio_mmio_vmstate, &f->t, blob);
    assert_true(len <= sizeof(blob));
    uint8_t *ram = malloc(GUEST_RAM);
    memcpy(ram, f->g.mem.base, GUEST_RAM);

    /* The source continues: the reference outcome. */
    uint32_t ids_a[8] = { 0 }, ids_b[8] = { 0 };
    uint8_t vals_a[8] = { 0 }, vals_b[8] = { 0 };
    run_and_collect(f, &f->t, 3, 1, ids_a, vals_a);
    assert_int_equal(guest_used_idx(&f->g), 4);
    assert_int_equal(ids_a[0], 0);
    assert_int_equal(ids_a[1], 6);
    assert_int_equal(ids_a[2], 2);
    assert_int_equal(vals_a[1], 106);

    /* A fresh device on the saved RAM, loaded from the record, continues the same way. */
    memcpy(f->g.mem.base, ram, GUEST_RAM);
    struct test_dev dev2 = { 0 };
    struct line line2 = { 0 };
    struct vs_virtio_mmio t2;
    struct vs_irq_line irq = { .set = line_set, .ctx = &line2, .gsi = 5 };
    assert_int_equal(vs_virtio_mmio_init(&t2, "virtio-test0", &test_ops, &dev2, &f->g.mem, irq), 0);
    assert_int_equal(load_section(&vs_virtio_mmio_vmstate, &t2, blob), 0);
    assert_true(line2.level);                 /* the pending interrupt is asserted again */
    assert_int_equal(rd(&t2, VS_VMMIO_INTERRUPT_STATUS), VS_VIRTIO_INT_VRING);
    assert_int_equal(rd(&t2, VS_VMMIO_STATUS), rd(&f->t, VS_VMMIO_STATUS));
    assert_true(t2.vq[0].event_idx);
    run_and_collect(f, &t2, 3, 1, ids_b, vals_b);
    assert_int_equal(guest_used_idx(&f->g), 4);   /* nothing repeated, nothing lost */
    assert_memory_equal(ids_a, ids_b, sizeof(ids_a));
    assert_memory_equal(vals_a, vals_b, sizeof(vals_a));
    assert_int_equal(dev2.notifies, 3);
    vs_virtio_mmio_destroy(&t2);
    free(ram);
}

static void load_refuses_inconsistent_records(void **state)
{
    struct fixture *f = *state;
    start_driver(&f->t, VS_VIRTIO_F_VERSION_1 | TD_FEATURE);
    uint8_t blob[sizeof(struct vs_virtio_mmio_record)];
    save_section(&vs_virtio_mmio_vmstate, &f->t, blob);
    const struct vs_virtio_mmio_record good = f->t.rec;
    struct vs_virtio_mmio_record *r = &f->t.rec;
    const struct vs_vmstate *d = &vs_virtio_mmio_vmstate;

    r->device_id = 2;
    expect_msg(d->post_load(&f->t, 1), "virtio device 2", "same devices");
    *r = good;
    r->driver_features |= 1ull << 40;
    expect_msg(d->post_load(&f->t, 1), "does not offer", NULL);
    *r = good;
    r->queue_num[0] = 6;
    expect_msg(d->post_load(&f->t, 1), "queue 0", "power of two");
    *r = good;
    r->queue_device[0] = UINT64_MAX & ~15ull;
    expect_msg(d->post_load(&f->t, 1), "queue 0", "guest RAM");
    *r = good;
    r->queue_last_avail_idx[0] = 100;
    expect_msg(d->post_load(&f->t, 1), "queue 0", "taken 100");
    *r = good;
    r->interrupt_status = 0x80;
    expect_msg(d->post_load(&f->t, 1), "interrupt status", NULL);
    /* A queue stopped before migration loads as stopped, whatever its rings. */
    *r = good;
    r->queue_broken[0] = 1;
    r->queue_device[0] = UINT64_MAX & ~15ull;
    assert_int_equal(d->post_load(&f->t, 1), 0);
    assert_true(f->t.vq[0].broken);
    assert_int_equal(vs_vq_pop(&f->t.vq[0], &f->dev.chain), -EIO);
}

static void describes_every_field_once(void **state)
{
    (void)state;
    const struct vs_vmstate *d = &vs_virtio_mmio_vmstate;
    assert_true(strlen(d->name) <= 23);
    size_t total = 0;
    for (unsigned i = 0; i < d->nr_fields; i++) {
        assert_true(d->fields[i].offset + d->fields[i].size <= sizeof(struct vs_virtio_mmio_record));
        assert_int_equal(d->fields[i].since, 1);
        total += d->fields[i].size;
        for (unsigned j = 0; j < i; j++)
            assert_true(d->fields[j].offset + d->fields[j].size <= d->fields[i].offset ||
                        d->fields[i].offset + d->fields[i].size <= d->fields[j].offset);
    }
    /* Every byte of the record but padding is described. */
    assert_true(total >= sizeof(struct vs_virtio_mmio_record) - 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(identity_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(feature_negotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(features_ok_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(queue_setup, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_queue_setup_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(notify_reaches_device_and_interrupt_drives_line, setup, teardown),
        cmocka_unit_test_setup_teardown(broken_queue_raises_config_interrupt_and_reset_clears, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(config_space_and_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(rng_fills_buffers_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(save_and_restore_mid_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(load_refuses_inconsistent_records, setup, teardown),
        cmocka_unit_test(describes_every_field_once),
    };
    vs_log_set_level(VS_LOG_ERROR);   /* broken queues log warnings on purpose */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
