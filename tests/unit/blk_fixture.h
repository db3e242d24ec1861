/* Shared by the virtio-blk unit tests: a disk on a real temporary file of 1 MiB, its
 * transport and I/O thread running, a driver that has set up the queue in a fake guest
 * RAM (virtio_guest.h), and requests laid out as a driver would. */
#ifndef VS_TEST_BLK_FIXTURE_H
#define VS_TEST_BLK_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "expect_error.h"
#include "virtio_guest.h"
#include "vmm/virtio/virtio_blk.h"

#define QSIZE 128
#define DISK_BYTES (1u << 20)
#define CAPACITY (DISK_BYTES / 512)
#define REQ_STRIDE 0x3000u       /* each request's buffers: header, status, then data */
#define HDR_OFF 0x0u
#define STATUS_OFF 0x20u
#define DATA_OFF 0x1000u

struct fixture {
    struct guest g;
    struct vs_virtio_blk *d;
    struct vs_virtio_mmio t;
    char path[64];
    uint16_t used_seen;
};

static inline void line_set(void *ctx, uint32_t gsi, bool level)
{
    (void)ctx, (void)gsi, (void)level;
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

static inline void start_driver(struct fixture *f)
{
    struct vs_virtio_mmio *t = &f->t;
    uint64_t features = VS_VIRTIO_F_VERSION_1 | VS_VIRTIO_F_INDIRECT_DESC |
                        (f->t.device_features & 0xffffffffu);
    wr(t, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE | VS_VIRTIO_STATUS_DRIVER);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)features);
    wr(t, VS_VMMIO_DRIVER_FEATURES_SEL, 1);
    wr(t, VS_VMMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    wr(t, VS_VMMIO_STATUS, rd(t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FEATURES_OK);
    assert_true(rd(t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_FEATURES_OK);
    wr(t, VS_VMMIO_QUEUE_SEL, 0);
    wr(t, VS_VMMIO_QUEUE_NUM, QSIZE);
    wr(t, VS_VMMIO_QUEUE_DESC_LOW, GUEST_DESC);
    wr(t, VS_VMMIO_QUEUE_DRIVER_LOW, GUEST_AVAIL);
    wr(t, VS_VMMIO_QUEUE_DEVICE_LOW, GUEST_USED);
    wr(t, VS_VMMIO_QUEUE_READY, 1);
    wr(t, VS_VMMIO_STATUS, rd(t, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_DRIVER_OK);
}

static inline int open_disk(void **state, const char *options)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    snprintf(f->path, sizeof(f->path), "/tmp/vs-blk-unit-XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK_BYTES), 0);
    close(fd);
    char spec[96];
    snprintf(spec, sizeof(spec), "%s%s", f->path, options);
    f->d = malloc(sizeof(*f->d));
    assert_int_equal(vs_virtio_blk_open(f->d, spec, false, &f->g.mem), 0);
    struct vs_irq_line irq = { .set = line_set };
    assert_int_equal(vs_virtio_mmio_init(&f->t, "virtio-blk0", &f->d->ops, f->d, &f->g.mem, irq), 0);
    assert_int_equal(vs_virtio_blk_start(f->d, &f->t), 0);
    start_driver(f);
    *state = f;
    return 0;
}

static inline int setup_rw(void **state) { return open_disk(state, ""); }
static inline int setup_ro(void **state) { return open_disk(state, ",ro"); }

static inline int teardown(void **state)
{
    struct fixture *f = *state;
    vs_virtio_blk_close(f->d);
    vs_virtio_mmio_destroy(&f->t);
    unlink(f->path);
    free(f->d);
    guest_free(&f->g);
    free(f);
    return 0;
}

/* ---- Requests as a driver lays them out: slot i's buffers at GUEST_BUF + i * stride ---- */

static inline uint64_t buf(unsigned slot, uint32_t off) { return GUEST_BUF + slot * REQ_STRIDE + off; }

static inline void put_header(struct fixture *f, unsigned slot, uint32_t type, uint64_t sector)
{
    uint8_t *h = guest_ptr(&f->g, buf(slot, HDR_OFF));
    memset(h, 0, 16);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    *guest_ptr(&f->g, buf(slot, STATUS_OFF)) = 0xee;   /* the device must overwrite it */
}

/* Header, one data buffer of len bytes (none if 0), status: descriptors 3*slot.. */
static inline uint16_t queue_request(struct fixture *f, unsigned slot, uint32_t type, uint64_t sector,
                              uint32_t len, bool data_writable)
{
    uint16_t d0 = (uint16_t)(3 * slot);
    put_header(f, slot, type, sector);
    uint16_t next = len ? (uint16_t)(d0 + 1) : (uint16_t)(d0 + 2);
    guest_desc(&f->g, d0, buf(slot, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, next);
    if (len)
        guest_desc(&f->g, d0 + 1, buf(slot, DATA_OFF), len,
                   VS_VQ_DESC_F_NEXT | (data_writable ? VS_VQ_DESC_F_WRITE : 0), d0 + 2);
    guest_desc(&f->g, d0 + 2, buf(slot, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, d0);
    return d0;
}

static inline void notify(struct fixture *f) { wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0); }

/* Wait until the device returned `n` more chains (fails after 5 s). */
static inline void wait_used(struct fixture *f, unsigned n)
{
    uint16_t want = (uint16_t)(f->used_seen + n);
    const uint16_t *used_idx = (const uint16_t *)(const void *)guest_ptr(&f->g, GUEST_USED + 2);
    for (int i = 0; i < 5000 && __atomic_load_n(used_idx, __ATOMIC_ACQUIRE) != want; i++)
        usleep(1000);
    assert_int_equal(guest_used_idx(&f->g), want);
    f->used_seen = want;
}

/* One request, waited for: its status byte. */
static inline uint8_t run_request(struct fixture *f, uint32_t type, uint64_t sector, uint32_t len,
                           bool data_writable)
{
    uint16_t head = queue_request(f, 0, type, sector, len, data_writable);
    notify(f);
    wait_used(f, 1);
    assert_int_equal(guest_used_id(&f->g, (uint16_t)(f->used_seen - 1)), head);
    return *guest_ptr(&f->g, buf(0, STATUS_OFF));
}

static inline void file_read(struct fixture *f, uint64_t off, void *out, size_t len)
{
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, out, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static inline bool file_all_zero(struct fixture *f)
{
    static uint8_t data[DISK_BYTES];
    file_read(f, 0, data, sizeof(data));
    for (size_t i = 0; i < sizeof(data); i++)
        if (data[i])
            return false;
    return true;
}

static inline bool queue_broken(struct fixture *f)
{
    return rd(&f->t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET;
}

static inline void put_range(struct fixture *f, unsigned i, uint64_t sector, uint32_t nr,
                             uint32_t flags)
{
    uint8_t *p = guest_ptr(&f->g, buf(0, DATA_OFF) + 16u * i);
    memcpy(p, &sector, 8);
    memcpy(p + 8, &nr, 4);
    memcpy(p + 12, &flags, 4);
}

#endif
