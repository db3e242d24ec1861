#include "virtio_rng.h"
#include "guest.h"
#include "io.h"
#include "irq.h"
#include "platform.h"
#include "serial.h"
#include "virtio_mmio.h"
#include "virtq.h"

#define VIRTIO_ID_RNG      4
#define F_VERSION_1_HIGH   1u       /* VIRTIO_F_VERSION_1 is bit 32: bit 0 of word 1 */
#define RNG_QUEUE          0
#define RNG_BUFFERS        8
#define RNG_BUFFER_BYTES   32
#define KICK_EVERY_TICKS   4        /* at hz=25: about 6 notifications a second */
#define MAX_ERROR_REPORTS  4

struct rng {
    uint64_t base;                  /* 0: no device running */
    struct vs_vq q;
    uint16_t kicked_idx;            /* avail index at the last notification */
    int broken;                     /* the device broke the ring: no more servicing */
    struct vs_rng_counts n;
};

static struct rng rng;
static struct vs_vq_rings rings;
static uint8_t buffers[RNG_BUFFERS][RNG_BUFFER_BYTES] __attribute__((aligned(64)));

static uint32_t reg_read(uint32_t off)
{
    return mmio_read32(rng.base + off);
}

static void reg_write(uint32_t off, uint32_t v)
{
    mmio_write32(rng.base + off, v);
}

static void report_error(const char *why)
{
    struct vs_line l;

    if (rng.n.errors++ >= MAX_ERROR_REPORTS)
        return;
    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: virtio-rng: error: ");
    vs_line_str(&l, why);
    vs_line_str(&l, " (requests so far ");
    vs_line_dec(&l, rng.n.requests);
    vs_line_str(&l, ")");
    vs_line_end(&l);
}

static void post(uint16_t id)
{
    vs_vq_post(&rng.q, id, (uint64_t)(uintptr_t)buffers[id], RNG_BUFFER_BYTES);
}

static void collect_used(void)
{
    const char *why = "";
    int n = vs_vq_used_new(&rng.q, &why);

    if (n < 0) {
        report_error(why);
        rng.broken = 1;
        return;
    }
    while (n-- > 0) {
        uint16_t id;
        uint32_t len;

        if (vs_vq_take_used(&rng.q, &id, &len, &why)) {
            report_error(why);
        } else {
            rng.n.requests++;
            rng.n.bytes += len;
        }
        if (id != VS_VQ_NO_ID)
            post(id);
    }
}

static void on_interrupt(const struct vs_irq_frame *f)
{
    uint32_t isr;

    (void)f;
    rng.n.interrupts++;
    if (!rng.base || rng.broken)
        return;
    /* Acknowledge first: what the device adds after this raises the line again. */
    isr = reg_read(VS_VMMIO_INTERRUPT_STATUS);
    if (isr)
        reg_write(VS_VMMIO_INTERRUPT_ACK, isr);
    if ((isr & VS_VIRTIO_INT_CONFIG) && (reg_read(VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET)) {
        report_error("the device needs a reset (it found the queue unusable)");
        rng.broken = 1;
        return;
    }
    collect_used();
}

static int fail(char *err, unsigned errlen, const char *what)
{
    struct vs_buf e;

    if (rng.base)
        reg_write(VS_VMMIO_STATUS, reg_read(VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FAILED);
    rng.base = 0;
    vs_buf_init(&e, err, errlen);
    vs_buf_puts(&e, "virtio-rng: ");
    vs_buf_puts(&e, what);
    return -1;
}

/* Reset, acknowledge, and agree on VERSION_1 alone (virtio 1.2, 3.1.1). */
static int negotiate(char *err, unsigned errlen)
{
    reg_write(VS_VMMIO_STATUS, 0);
    if (reg_read(VS_VMMIO_STATUS) != 0)
        return fail(err, errlen, "the device does not reset (status stays non-zero)");
    reg_write(VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE);
    reg_write(VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE | VS_VIRTIO_STATUS_DRIVER);
    reg_write(VS_VMMIO_DEVICE_FEATURES_SEL, 1);
    if (!(reg_read(VS_VMMIO_DEVICE_FEATURES) & F_VERSION_1_HIGH))
        return fail(err, errlen, "the device does not offer VIRTIO_F_VERSION_1");
    reg_write(VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(VS_VMMIO_DRIVER_FEATURES, 0);
    reg_write(VS_VMMIO_DRIVER_FEATURES_SEL, 1);
    reg_write(VS_VMMIO_DRIVER_FEATURES, F_VERSION_1_HIGH);
    reg_write(VS_VMMIO_STATUS, reg_read(VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FEATURES_OK);
    if (!(reg_read(VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_FEATURES_OK))
        return fail(err, errlen, "the device refused FEATURES_OK for VERSION_1 alone");
    return 0;
}

static void write_addr(uint32_t low, uint32_t high, uint64_t addr)
{
    reg_write(low, (uint32_t)addr);
    reg_write(high, (uint32_t)(addr >> 32));
}

static int setup_queue(char *err, unsigned errlen)
{
    uint32_t max;
    uint16_t size = VS_VQ_MAX;

    reg_write(VS_VMMIO_QUEUE_SEL, RNG_QUEUE);
    if (reg_read(VS_VMMIO_QUEUE_READY))
        return fail(err, errlen, "queue 0 is ready before the driver set it up");
    max = reg_read(VS_VMMIO_QUEUE_NUM_MAX);
    if (max == 0)
        return fail(err, errlen, "the device has no queue 0");
    while (size > max)
        size /= 2;
    vs_vq_init(&rng.q, &rings, size);
    reg_write(VS_VMMIO_QUEUE_NUM, size);
    write_addr(VS_VMMIO_QUEUE_DESC_LOW, VS_VMMIO_QUEUE_DESC_HIGH,
               (uint64_t)(uintptr_t)rings.desc);
    write_addr(VS_VMMIO_QUEUE_DRIVER_LOW, VS_VMMIO_QUEUE_DRIVER_HIGH,
               (uint64_t)(uintptr_t)&rings.avail);
    write_addr(VS_VMMIO_QUEUE_DEVICE_LOW, VS_VMMIO_QUEUE_DEVICE_HIGH,
               (uint64_t)(uintptr_t)&rings.used);
    reg_write(VS_VMMIO_QUEUE_READY, 1);
    for (uint16_t id = 0; id < RNG_BUFFERS && id < size; id++)
        post(id);
    return 0;
}

static void print_started(const struct vs_virtio_mmio_slot *s)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: virtio-rng at ");
    vs_line_hex(&l, s->base);
    vs_line_str(&l, " irq ");
    vs_line_dec(&l, s->irq);
    vs_line_str(&l, ": queue of ");
    vs_line_dec(&l, rng.q.size);
    vs_line_str(&l, ", ");
    vs_line_dec(&l, rng.q.outstanding);
    vs_line_str(&l, " buffers of ");
    vs_line_dec(&l, RNG_BUFFER_BYTES);
    vs_line_str(&l, " bytes posted");
    vs_line_end(&l);
}

int vs_rng_start(char *err, unsigned errlen)
{
    const struct vs_virtio_mmio_slot *s = vs_virtio_mmio_find(VIRTIO_ID_RNG);
    uint8_t vector;

    if (!s)
        return 1;
    if (s->irq >= 0x100 - VS_VEC_ISA_BASE - 0x20)
        return fail(err, errlen, "its interrupt number is too high for this guest's vectors");
    vector = (uint8_t)(VS_VEC_ISA_BASE + s->irq);
    vs_irq_set_handler(vector, on_interrupt);
    if (vs_platform_route_gsi(s->irq, vector, err, errlen))
        return -1;
    rng.base = s->base;
    if (negotiate(err, errlen) || setup_queue(err, errlen))
        return -1;
    reg_write(VS_VMMIO_STATUS, reg_read(VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_DRIVER_OK);
    print_started(s);
    return 0;
}

void vs_rng_tick(uint64_t tick)
{
    if (!rng.base || rng.broken || tick % KICK_EVERY_TICKS)
        return;
    if (rng.q.avail_idx == rng.kicked_idx)
        return;
    rng.kicked_idx = rng.q.avail_idx;
    reg_write(VS_VMMIO_QUEUE_NOTIFY, RNG_QUEUE);
}

void vs_rng_counts(struct vs_rng_counts *out)
{
    *out = rng.n;
}
