#include "virtio_blk.h"
#include "fmt.h"
#include "io.h"
#include "timing.h"
#include "virtio_mmio.h"
#include "virtq.h"

#define VIRTIO_ID_BLOCK     2
#define F_SEG_MAX           (1u << 2)
#define F_RO                (1u << 5)
#define F_BLK_SIZE          (1u << 6)
#define F_FLUSH             (1u << 9)
#define F_VERSION_1_HIGH    1u      /* VIRTIO_F_VERSION_1 is bit 32: bit 0 of word 1 */
#define CONFIG              0x100   /* the configuration space in the register window */
#define BLK_QUEUE           0
#define REQUEST_TIMEOUT_US  60000000u
#define POLLS_PER_STATUS    4096    /* status register reads (exits) while polling */

struct blk_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static struct {
    uint64_t base;
    struct vs_vq q;
    int broken;
} blk;
static struct vs_vq_rings rings;
static struct blk_header header __attribute__((aligned(16)));
static volatile uint8_t status __attribute__((aligned(16)));

static uint32_t reg_read(uint32_t off) { return mmio_read32(blk.base + off); }
static void reg_write(uint32_t off, uint32_t v) { mmio_write32(blk.base + off, v); }

static int fail(char *err, unsigned errlen, const char *what)
{
    struct vs_buf e;

    if (blk.base)
        reg_write(VS_VMMIO_STATUS, reg_read(VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FAILED);
    blk.base = 0;
    vs_buf_init(&e, err, errlen);
    vs_buf_puts(&e, "virtio-blk: ");
    vs_buf_puts(&e, what);
    return -1;
}

/* Reset, acknowledge, agree on VERSION_1 and the block features this driver knows. */
static int negotiate(uint32_t *features, char *err, unsigned errlen)
{
    reg_write(VS_VMMIO_STATUS, 0);
    if (reg_read(VS_VMMIO_STATUS) != 0)
        return fail(err, errlen, "the device does not reset (status stays non-zero)");
    reg_write(VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE);
    reg_write(VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE | VS_VIRTIO_STATUS_DRIVER);
    reg_write(VS_VMMIO_DEVICE_FEATURES_SEL, 1);
    if (!(reg_read(VS_VMMIO_DEVICE_FEATURES) & F_VERSION_1_HIGH))
        return fail(err, errlen, "the device does not offer VIRTIO_F_VERSION_1");
    reg_write(VS_VMMIO_DEVICE_FEATURES_SEL, 0);
    *features = reg_read(VS_VMMIO_DEVICE_FEATURES) & (F_SEG_MAX | F_RO | F_BLK_SIZE | F_FLUSH);
    reg_write(VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(VS_VMMIO_DRIVER_FEATURES, *features);
    reg_write(VS_VMMIO_DRIVER_FEATURES_SEL, 1);
    reg_write(VS_VMMIO_DRIVER_FEATURES, F_VERSION_1_HIGH);
    reg_write(VS_VMMIO_STATUS, reg_read(VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FEATURES_OK);
    if (!(reg_read(VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_FEATURES_OK))
        return fail(err, errlen, "the device refused FEATURES_OK");
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

    reg_write(VS_VMMIO_QUEUE_SEL, BLK_QUEUE);
    if (reg_read(VS_VMMIO_QUEUE_READY))
        return fail(err, errlen, "queue 0 is ready before the driver set it up");
    max = reg_read(VS_VMMIO_QUEUE_NUM_MAX);
    if (max < 4)
        return fail(err, errlen, "queue 0 is missing or too small (fewer than 4 entries)");
    while (size > max)
        size /= 2;
    vs_vq_init(&blk.q, &rings, size);
    rings.avail.flags = VS_VQ_AVAIL_F_NO_INTERRUPT;   /* the driver polls */
    reg_write(VS_VMMIO_QUEUE_NUM, size);
    write_addr(VS_VMMIO_QUEUE_DESC_LOW, VS_VMMIO_QUEUE_DESC_HIGH, (uint64_t)(uintptr_t)rings.desc);
    write_addr(VS_VMMIO_QUEUE_DRIVER_LOW, VS_VMMIO_QUEUE_DRIVER_HIGH,
               (uint64_t)(uintptr_t)&rings.avail);
    write_addr(VS_VMMIO_QUEUE_DEVICE_LOW, VS_VMMIO_QUEUE_DEVICE_HIGH,
               (uint64_t)(uintptr_t)&rings.used);
    reg_write(VS_VMMIO_QUEUE_READY, 1);
    return 0;
}

static void read_id(struct vs_blk_info *info)
{
    const char *why;
    uint32_t us;

    for (unsigned i = 0; i <= VS_BLK_ID_BYTES; i++)
        info->id[i] = 0;
    if (vs_blk_request(VS_BLK_T_GET_ID, 0, info->id, VS_BLK_ID_BYTES, &us, &why) != VS_BLK_S_OK)
        info->id[0] = 0;
    for (unsigned i = 0; i < VS_BLK_ID_BYTES; i++)
        if (info->id[i] && (info->id[i] < 0x20 || info->id[i] > 0x7e))
            info->id[i] = '?';
}

int vs_blk_start(struct vs_blk_info *info, char *err, unsigned errlen)
{
    const struct vs_virtio_mmio_slot *s = vs_virtio_mmio_find(VIRTIO_ID_BLOCK);
    uint32_t features = 0;

    if (!s)
        return 1;
    blk.base = s->base;
    if (negotiate(&features, err, errlen) || setup_queue(err, errlen))
        return -1;
    reg_write(VS_VMMIO_STATUS, reg_read(VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_DRIVER_OK);
    info->base = s->base;
    info->capacity = (uint64_t)reg_read(CONFIG) | (uint64_t)reg_read(CONFIG + 4) << 32;
    info->ro = (features & F_RO) != 0;
    read_id(info);
    return 0;
}

/* Poll the used ring for the one request out; 0, or -1 with *why. */
static int wait_used(uint32_t t0, const char **why)
{
    for (unsigned polls = 1;; polls++) {
        int n = vs_vq_used_new(&blk.q, why);
        uint16_t id;
        uint32_t len;

        if (n < 0)
            return -1;
        if (n > 0)
            return vs_vq_take_used(&blk.q, &id, &len, why) ? -1 : 0;
        if (polls % POLLS_PER_STATUS == 0) {
            if (reg_read(VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET) {
                *why = "the device needs a reset (it found the queue unusable)";
                return -1;
            }
            if (vs_now_us() - t0 > REQUEST_TIMEOUT_US) {
                *why = "no answer to a request within 60 s";
                return -1;
            }
        }
        cpu_relax();
    }
}

int vs_blk_request(uint32_t type, uint64_t sector, void *buf, uint32_t len, uint32_t *us,
                   const char **why)
{
    struct vs_vq_desc d[3];
    unsigned n = 0;
    uint32_t t0;

    if (!blk.base || blk.broken) {
        *why = "the device is not running";
        return -1;
    }
    header.type = type;
    header.reserved = 0;
    header.sector = sector;
    status = 0xff;
    d[n++] = (struct vs_vq_desc){ .addr = (uint64_t)(uintptr_t)&header, .len = sizeof(header) };
    if (len)
        d[n++] = (struct vs_vq_desc){ .addr = (uint64_t)(uintptr_t)buf, .len = len,
                                      .flags = type == VS_BLK_T_OUT ? 0 : VS_VQ_DESC_F_WRITE };
    d[n++] = (struct vs_vq_desc){ .addr = (uint64_t)(uintptr_t)&status, .len = 1,
                                  .flags = VS_VQ_DESC_F_WRITE };
    t0 = vs_now_us();
    vs_vq_post_chain(&blk.q, 0, d, n);
    reg_write(VS_VMMIO_QUEUE_NOTIFY, BLK_QUEUE);
    if (wait_used(t0, why)) {
        blk.broken = 1;
        return -1;
    }
    *us = vs_now_us() - t0;
    if (status > VS_BLK_S_UNSUPP) {
        *why = "the device returned the request with no valid status";
        blk.broken = 1;
        return -1;
    }
    return status;
}
