/* Unit tests: virtio-blk (src/vmm/virtio/virtio_blk.c, blk_request.c, blk_backend.c) on a
 * real file, driven through the virtio-mmio transport as a guest driver would, with its I/O
 * thread running. Reads and writes reach the file and come back; then hostile requests:
 * sectors past the end, sector * 512 overflowing, data that is not whole sectors, writes
 * to a read-only disk, unknown types, bad DISCARD / WRITE_ZEROES segments: each answered
 * with IOERR or UNSUPP and the file untouched. Chains that cannot carry a request (header
 * too short, no writable status byte, a loop) stop the queue instead. Every chain taken is
 * returned exactly once; a reset drops what is in flight; the migration record refuses a
 * disk of another size. */
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

static void line_set(void *ctx, uint32_t gsi, bool level)
{
    (void)ctx, (void)gsi, (void)level;
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

static void start_driver(struct fixture *f)
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

static int open_disk(void **state, const char *options)
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

static int setup_rw(void **state) { return open_disk(state, ""); }
static int setup_ro(void **state) { return open_disk(state, ",ro"); }

static int teardown(void **state)
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

static uint64_t buf(unsigned slot, uint32_t off) { return GUEST_BUF + slot * REQ_STRIDE + off; }

static void put_header(struct fixture *f, unsigned slot, uint32_t type, uint64_t sector)
{
    uint8_t *h = guest_ptr(&f->g, buf(slot, HDR_OFF));
    memset(h, 0, 16);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    *guest_ptr(&f->g, buf(slot, STATUS_OFF)) = 0xee;   /* the device must overwrite it */
}

/* Header, one data buffer of len bytes (none if 0), status: descriptors 3*slot.. */
static uint16_t queue_request(struct fixture *f, unsigned slot, uint32_t type, uint64_t sector,
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

static void notify(struct fixture *f) { wr(&f->t, VS_VMMIO_QUEUE_NOTIFY, 0); }

/* Wait until the device returned `n` more chains (fails after 5 s). */
static void wait_used(struct fixture *f, unsigned n)
{
    uint16_t want = (uint16_t)(f->used_seen + n);
    const uint16_t *used_idx = (const uint16_t *)(const void *)guest_ptr(&f->g, GUEST_USED + 2);
    for (int i = 0; i < 5000 && __atomic_load_n(used_idx, __ATOMIC_ACQUIRE) != want; i++)
        usleep(1000);
    assert_int_equal(guest_used_idx(&f->g), want);
    f->used_seen = want;
}

/* One request, waited for: its status byte. */
static uint8_t run_request(struct fixture *f, uint32_t type, uint64_t sector, uint32_t len,
                           bool data_writable)
{
    uint16_t head = queue_request(f, 0, type, sector, len, data_writable);
    notify(f);
    wait_used(f, 1);
    assert_int_equal(guest_used_id(&f->g, (uint16_t)(f->used_seen - 1)), head);
    return *guest_ptr(&f->g, buf(0, STATUS_OFF));
}

static void file_read(struct fixture *f, uint64_t off, void *out, size_t len)
{
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, out, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static bool file_all_zero(struct fixture *f)
{
    static uint8_t data[DISK_BYTES];
    file_read(f, 0, data, sizeof(data));
    for (size_t i = 0; i < sizeof(data); i++)
        if (data[i])
            return false;
    return true;
}

static bool queue_broken(struct fixture *f)
{
    return rd(&f->t, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET;
}

/* ---- Tests ---- */

static void config_space(void **state)
{
    struct fixture *f = *state;
    uint64_t cap = 0;
    uint32_t seg_max = 0, blk_size = 0;
    for (unsigned i = 0; i < 8; i++)   /* byte by byte, as some drivers read */
        cap |= (uint64_t)(uint8_t)rd(&f->t, VS_VIRTIO_MMIO_CONFIG + i) << (8 * i);
    seg_max = rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CFG_SEG_MAX);
    blk_size = rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CFG_BLK_SIZE);
    assert_int_equal(cap, CAPACITY);
    assert_int_equal(seg_max, VS_VIRTIO_BLK_QUEUE_MAX - 2);
    assert_int_equal(blk_size, 512);
    assert_int_equal(rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CFG_MAX_DISCARD_SEG),
                     VS_BLK_MAX_RANGES);
    wr(&f->t, VS_VMMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t features = rd(&f->t, VS_VMMIO_DEVICE_FEATURES);
    assert_true(features & VS_VIRTIO_BLK_F_FLUSH);
    assert_true(features & VS_VIRTIO_BLK_F_DISCARD);
    assert_true(features & VS_VIRTIO_BLK_F_WRITE_ZEROES);
    assert_false(features & VS_VIRTIO_BLK_F_RO);
    /* Past the configuration space: reads 0, counted. */
    uint64_t bad = f->t.bad_accesses;
    assert_int_equal(rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CONFIG_BYTES), 0);
    assert_int_equal(f->t.bad_accesses, bad + 1);
}

static void write_then_read(void **state)
{
    struct fixture *f = *state;
    uint8_t *data = guest_ptr(&f->g, buf(0, DATA_OFF));
    for (unsigned i = 0; i < 4096; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 10, 4096, false), VS_BLK_S_OK);
    assert_int_equal(guest_used_len(&f->g, (uint16_t)(f->used_seen - 1)), 1);
    uint8_t back[4096];
    file_read(f, 10 * 512, back, sizeof(back));
    assert_memory_equal(back, data, sizeof(back));

    memset(data, 0, 4096);
    assert_int_equal(run_request(f, VS_BLK_T_IN, 10, 4096, true), VS_BLK_S_OK);
    assert_int_equal(guest_used_len(&f->g, (uint16_t)(f->used_seen - 1)), 4097);
    assert_memory_equal(back, data, sizeof(back));
    /* The device's write into guest RAM is noted for migration. */
    uint64_t bits[GUEST_PAGE_WORDS];
    guest_collect_writes(&f->g, bits);
    assert_true(page_noted(bits, buf(0, DATA_OFF)));

    assert_int_equal(run_request(f, VS_BLK_T_FLUSH, 0, 0, false), VS_BLK_S_OK);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.writes, 1);
    assert_int_equal(st.reads, 1);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(st.bytes_written, 4096);
    assert_int_equal(st.refused, 0);
}

/* Data split over many small buffers, the status byte sharing the last one. */
static void scattered_buffers(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 100);
    uint8_t *data = guest_ptr(&f->g, buf(0, DATA_OFF));
    for (unsigned i = 0; i < 2048; i++)
        data[i] = (uint8_t)(i ^ 0x5a);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    for (uint16_t i = 0; i < 16; i++)   /* 16 x 128 bytes */
        guest_desc(&f->g, 1 + i, buf(0, DATA_OFF) + 128u * i, 128, VS_VQ_DESC_F_NEXT, 2 + i);
    guest_desc(&f->g, 17, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    notify(f);
    wait_used(f, 1);
    assert_int_equal(*guest_ptr(&f->g, buf(0, STATUS_OFF)), VS_BLK_S_OK);
    /* Read it back into one writable buffer of 2049 bytes: data, then the status. */
    put_header(f, 1, VS_BLK_T_IN, 100);
    uint64_t in = buf(1, DATA_OFF);
    memset(guest_ptr(&f->g, in), 0xcc, 2049);
    guest_desc(&f->g, 20, buf(1, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 21);
    guest_desc(&f->g, 21, in, 2049, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 20);
    notify(f);
    wait_used(f, 1);
    assert_memory_equal(guest_ptr(&f->g, in), data, 2048);
    assert_int_equal(*guest_ptr(&f->g, in + 2048), VS_BLK_S_OK);
}

static void get_id(void **state)
{
    struct fixture *f = *state;
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0xff, 64);
    assert_int_equal(run_request(f, VS_BLK_T_GET_ID, 0, 20, true), VS_BLK_S_OK);
    const char *name = strrchr(f->path, '/') + 1;
    assert_memory_equal(guest_ptr(&f->g, buf(0, DATA_OFF)), name, strlen(name));
    assert_int_equal(*guest_ptr(&f->g, buf(0, DATA_OFF) + strlen(name)), 0);
    assert_int_equal(guest_used_len(&f->g, (uint16_t)(f->used_seen - 1)), 21);
}

static void out_of_range_sectors(void **state)
{
    struct fixture *f = *state;
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x77, 4096);
    /* The last sector is fine; one past it, or a request running past it, is not. */
    assert_int_equal(run_request(f, VS_BLK_T_IN, CAPACITY - 1, 512, true), VS_BLK_S_OK);
    assert_int_equal(run_request(f, VS_BLK_T_IN, CAPACITY, 512, true), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, CAPACITY - 1, 1024, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, CAPACITY + 1000, 512, false), VS_BLK_S_IOERR);
    /* sector * 512 overflows 64 bits (a naive end check would wrap to a small offset). */
    assert_int_equal(run_request(f, VS_BLK_T_OUT, (UINT64_MAX / 512) + 1, 512, false),
                     VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, UINT64_MAX, 4096, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, UINT64_MAX - 7, 4096, false), VS_BLK_S_IOERR);
    /* Not a whole number of sectors. */
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 0, 100, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_IN, 0, 513, true), VS_BLK_S_IOERR);
    assert_true(file_all_zero(f));
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.refused, 8);
    assert_int_equal(st.writes, 0);
    assert_false(queue_broken(f));
}

static void unknown_type(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_request(f, 3, 0, 512, false), VS_BLK_S_UNSUPP);
    assert_int_equal(run_request(f, VS_BLK_T_SECURE_ERASE, 0, 16, false), VS_BLK_S_UNSUPP);
    assert_int_equal(run_request(f, 0xffffffffu, 0, 0, false), VS_BLK_S_UNSUPP);
    assert_true(file_all_zero(f));
    assert_false(queue_broken(f));
}

static void put_range(struct fixture *f, unsigned i, uint64_t sector, uint32_t nr, uint32_t flags)
{
    uint8_t *p = guest_ptr(&f->g, buf(0, DATA_OFF) + 16u * i);
    memcpy(p, &sector, 8);
    memcpy(p + 8, &nr, 4);
    memcpy(p + 12, &flags, 4);
}

static void discard_and_write_zeroes(void **state)
{
    struct fixture *f = *state;
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0xab, 8192);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 64, 8192, false), VS_BLK_S_OK);
    /* Zero sectors 64..71 (keep them allocated), punch 72..79. */
    put_range(f, 0, 64, 8, 0);
    put_range(f, 1, 72, 8, VS_BLK_WZ_F_UNMAP);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 32, false), VS_BLK_S_OK);
    assert_true(file_all_zero(f));
    /* DISCARD takes no flags; segments must be whole, inside the disk, not too many. */
    put_range(f, 0, 0, 8, VS_BLK_WZ_F_UNMAP);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_UNSUPP);
    put_range(f, 0, CAPACITY - 4, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_IOERR);
    put_range(f, 0, UINT64_MAX - 2, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 16, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 15, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16 * (VS_BLK_MAX_RANGES + 1), false),
                     VS_BLK_S_IOERR);
    put_range(f, 0, 0, 8, 0x80);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 16, false), VS_BLK_S_UNSUPP);
    put_range(f, 0, 0, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_OK);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.write_zeroes, 1);
    assert_int_equal(st.discards, 1);
    assert_int_equal(st.refused, 6);
}

static void read_only_disk(void **state)
{
    struct fixture *f = *state;
    wr(&f->t, VS_VMMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t features = rd(&f->t, VS_VMMIO_DEVICE_FEATURES);
    assert_true(features & VS_VIRTIO_BLK_F_RO);
    assert_false(features & (VS_VIRTIO_BLK_F_DISCARD | VS_VIRTIO_BLK_F_WRITE_ZEROES));
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x11, 4096);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 0, 4096, false), VS_BLK_S_IOERR);
    put_range(f, 0, 0, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 16, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_IN, 0, 4096, true), VS_BLK_S_OK);
    assert_int_equal(run_request(f, VS_BLK_T_FLUSH, 0, 0, false), VS_BLK_S_OK);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_false(st.writable);
    assert_int_equal(st.refused, 3);
}

/* Chains that cannot carry a request stop the queue, without an answer. */
static void assert_breaks(struct fixture *f)
{
    notify(f);
    usleep(20000);
    assert_true(queue_broken(f));
    assert_int_equal(guest_used_idx(&f->g), f->used_seen);
    assert_true(file_all_zero(f));
}

static void header_too_short(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 8, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

static void header_in_writable_buffer(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_IN, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_WRITE | VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

static void status_read_only(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 0);
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x42, 512);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, DATA_OFF), 512, VS_VQ_DESC_F_NEXT, 2);
    guest_desc(&f->g, 2, buf(0, STATUS_OFF), 1, 0, 0);   /* not writable */
    guest_offer(&f->g, 0);
    assert_breaks(f);
    assert_int_equal(*guest_ptr(&f->g, buf(0, STATUS_OFF)), 0xee);
}

static void chain_loops(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, DATA_OFF), 512, VS_VQ_DESC_F_NEXT, 0);   /* back to 0 */
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

static void buffer_outside_ram(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_IN, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, GUEST_RAM - 256, 512, VS_VQ_DESC_F_WRITE | VS_VQ_DESC_F_NEXT, 2);
    guest_desc(&f->g, 2, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

/* More requests than the device keeps in flight, in one notification: each comes back
 * exactly once, in some order, and each wrote its own sectors. */
static void every_request_once(void **state)
{
    struct fixture *f = *state;
    enum { N = 40 };   /* 120 descriptors of the queue's 128; the device keeps 32 in flight */
    for (unsigned i = 0; i < N; i++) {
        memset(guest_ptr(&f->g, buf(i, DATA_OFF)), (int)(i + 1), 1024);
        queue_request(f, i, VS_BLK_T_OUT, 2u * i, 1024, false);
    }
    notify(f);
    wait_used(f, N);
    unsigned seen[N] = { 0 };
    for (uint16_t n = 0; n < N; n++) {
        uint32_t id = guest_used_id(&f->g, n);
        assert_true(id % 3 == 0 && id / 3 < N);
        seen[id / 3]++;
    }
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);
        assert_int_equal(*guest_ptr(&f->g, buf(i, STATUS_OFF)), VS_BLK_S_OK);
        uint8_t s[1024];
        file_read(f, i * 1024u, s, sizeof(s));
        assert_int_equal(s[0], i + 1);
        assert_int_equal(s[1023], i + 1);
    }
    usleep(20000);
    assert_int_equal(guest_used_idx(&f->g), N);   /* nothing returned twice */
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.writes, N);
    assert_int_equal(st.in_flight, 0);
}

/* A reset with requests queued: afterwards nothing is in flight and nothing more comes
 * back on the old ring; the device works again once the driver sets it up. */
static void reset_in_flight(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0; i < 12; i++)
        queue_request(f, i, VS_BLK_T_IN, i, 4096, true);
    notify(f);
    wr(&f->t, VS_VMMIO_STATUS, 0);
    uint16_t returned = guest_used_idx(&f->g);
    usleep(50000);
    assert_int_equal(guest_used_idx(&f->g), returned);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.in_flight, 0);
    memset(guest_ptr(&f->g, GUEST_USED), 0, 0x1000);
    memset(guest_ptr(&f->g, GUEST_AVAIL), 0, 0x1000);
    f->g.avail_idx = 0;
    f->used_seen = 0;
    start_driver(f);
    assert_int_equal(run_request(f, VS_BLK_T_FLUSH, 0, 0, false), VS_BLK_S_OK);
}

/* Paused: nothing is taken, and the state saves; resumed: what waited is served. */
static void quiesce_and_state(void **state)
{
    struct fixture *f = *state;
    vs_virtio_blk_quiesce(f->d);
    queue_request(f, 0, VS_BLK_T_FLUSH, 0, 0, false);
    notify(f);
    usleep(20000);
    assert_int_equal(guest_used_idx(&f->g), 0);
    assert_int_equal(vs_virtio_blk_vmstate.pre_save(f->d), 0);
    assert_int_equal(f->d->rec.capacity, CAPACITY);
    assert_int_equal(f->d->rec.in_flight, 0);
    assert_int_equal(vs_virtio_blk_activate(f->d), 0);
    wait_used(f, 1);

    /* A source's record of a disk of another size, or read-only, is refused. */
    f->d->rec.capacity = CAPACITY + 8;
    expect_msg(vs_virtio_blk_vmstate.post_load(f->d, 1), "sectors", "same disk");
    f->d->rec.capacity = CAPACITY;
    f->d->rec.ro = 1;
    expect_msg(vs_virtio_blk_vmstate.post_load(f->d, 1), "(ro)", NULL);
    f->d->rec.ro = 0;
    f->d->rec.in_flight = 2;
    expect_msg(vs_virtio_blk_vmstate.post_load(f->d, 1), "in flight", NULL);
    f->d->rec.in_flight = 0;
    memcpy(f->d->rec.id, "source-disk-id", 15);
    assert_int_equal(vs_virtio_blk_vmstate.post_load(f->d, 1), 0);
    assert_int_equal(run_request(f, VS_BLK_T_GET_ID, 0, 20, true), VS_BLK_S_OK);
    assert_string_equal((char *)guest_ptr(&f->g, buf(0, DATA_OFF)), "source-disk-id");
}

/* Released (the VM was handed over): the file is closed; activated again, reopened. */
static void release_and_reopen(void **state)
{
    struct fixture *f = *state;
    vs_virtio_blk_release(f->d);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_false(st.open);
    assert_int_equal(vs_virtio_blk_activate(f->d), 0);
    vs_virtio_blk_stats(f->d, &st);
    assert_true(st.open && st.writable && st.running);
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x99, 512);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 3, 512, false), VS_BLK_S_OK);
}

/* A migration's destination: the file is open read-only and no chain is taken until the
 * VM is its own (activate), then the disk is writable and the waiting chain is served. */
static void incoming_read_only_until_activated(void **state)
{
    struct fixture *f = *state;
    vs_virtio_blk_close(f->d);
    vs_virtio_mmio_destroy(&f->t);
    assert_int_equal(vs_virtio_blk_open(f->d, f->path, true, &f->g.mem), 0);
    struct vs_irq_line irq = { .set = line_set };
    assert_int_equal(vs_virtio_mmio_init(&f->t, "virtio-blk0", &f->d->ops, f->d, &f->g.mem, irq), 0);
    assert_int_equal(vs_virtio_blk_start(f->d, &f->t), 0);
    memset(guest_ptr(&f->g, GUEST_USED), 0, 0x1000);
    memset(guest_ptr(&f->g, GUEST_AVAIL), 0, 0x1000);
    f->g.avail_idx = 0;
    start_driver(f);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_true(st.open);
    assert_false(st.writable);
    assert_false(st.running);
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x5a, 512);
    queue_request(f, 0, VS_BLK_T_OUT, 1, 512, false);
    notify(f);
    usleep(20000);
    assert_int_equal(guest_used_idx(&f->g), 0);
    assert_true(file_all_zero(f));
    assert_int_equal(vs_virtio_blk_activate(f->d), 0);
    wait_used(f, 1);
    assert_int_equal(*guest_ptr(&f->g, buf(0, STATUS_OFF)), VS_BLK_S_OK);
    vs_virtio_blk_stats(f->d, &st);
    assert_true(st.writable && st.running);
    uint8_t s[512];
    file_read(f, 512, s, sizeof(s));
    assert_int_equal(s[0], 0x5a);
}

static void spec_parsing(void **state)
{
    (void)state;
    struct vs_blk_spec s;
    assert_int_equal(vs_blk_spec_parse("/d/x.img", &s), 0);
    assert_string_equal(s.path, "/d/x.img");
    assert_false(s.shared || s.ro);
    assert_int_equal(vs_blk_spec_parse("x.img,shared,ro", &s), 0);
    assert_true(s.shared && s.ro);
    expect_msg(vs_blk_spec_parse("x.img,rw", &s), "unknown option 'rw'", "FILE[,shared][,ro]");
    expect_msg(vs_blk_spec_parse(",ro", &s), "no file", NULL);
    expect_msg(vs_blk_spec_parse("x.img,", &s), "unknown option ''", NULL);
    struct vs_virtio_blk *d = malloc(sizeof(*d));
    expect_msg(vs_virtio_blk_open(d, "/nonexistent/disk.img", false, NULL), "/nonexistent/disk.img",
               "create it");
    free(d);
}

int main(void)
{
    vs_log_set_level(VS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(config_space, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(write_then_read, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(scattered_buffers, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(get_id, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(out_of_range_sectors, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(unknown_type, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(discard_and_write_zeroes, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(read_only_disk, setup_ro, teardown),
        cmocka_unit_test_setup_teardown(header_too_short, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(header_in_writable_buffer, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(status_read_only, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(chain_loops, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(buffer_outside_ram, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(every_request_once, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(reset_in_flight, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(quiesce_and_state, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(release_and_reopen, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(incoming_read_only_until_activated, setup_rw, teardown),
        cmocka_unit_test(spec_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
