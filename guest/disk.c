#include "disk.h"
#include "guest.h"
#include "io.h"
#include "serial.h"
#include "telemetry.h"
#include "timing.h"
#include "virtio_blk.h"
#include "vmshift/disk_format.h"

#define BATCH 8                       /* blocks per request */
#define SECTORS_PER_BLOCK (VS_DISK_BLOCK_BYTES / 512)
#define BELL_US 50000u
#define RATE_WINDOW_US 1000000u
#define MAX_REPORTS 8

static uint64_t wbuf[BATCH * VS_DISK_BLOCK_WORDS] __attribute__((aligned(4096)));
static uint64_t rbuf[BATCH * VS_DISK_BLOCK_WORDS] __attribute__((aligned(4096)));

static struct {
    struct vs_blk_info info;
    uint64_t blocks, seed;
    struct vs_cpu_counters c;
    volatile struct vs_cpu_counters *pub;
    uint32_t last_bell_us, window_us;
    uint64_t window_bytes;
    unsigned reports;
} disk;

static const char *const check_names[] = { "ok", "empty", "not-a-block", "wrong-block",
                                           "bad-sum", "bad-data", "stale" };

/* Counters to the telemetry page; the doorbell makes the monitor take them (after every
 * request's blocks, and at each pass's start: the monitor never sees a block of a pass
 * before the pass itself). */
static void publish(int bell)
{
    volatile struct vs_cpu_counters *p = disk.pub;

    p->passes = disk.c.passes;
    p->pages_written = disk.c.pages_written;
    p->pages_checked = disk.c.pages_checked;
    p->errors = disk.c.errors;
    p->generation = disk.c.generation;
    p->first_bad_addr = disk.c.first_bad_addr;
    p->max_gap_us = disk.c.max_gap_us;
    p->rng_bytes = disk.c.rng_bytes;
    if (bell || vs_now_us() - disk.last_bell_us >= BELL_US) {
        vs_telemetry_doorbell(0);
        disk.last_bell_us = vs_now_us();
    }
}

static int may_report(void)
{
    return disk.reports++ < MAX_REPORTS;
}

/* The driver broke down: say so, count it, and stop here. */
static __attribute__((noreturn)) void broken(const char *why)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: disk: error: ");
    vs_line_str(&l, why);
    vs_line_str(&l, "; the disk workload stops");
    vs_line_end(&l);
    disk.c.errors++;
    publish(1);
    halt_forever();
}

static void bad_status(const char *what, uint64_t block, int status)
{
    struct vs_line l;

    if (!disk.c.errors)
        disk.c.first_bad_addr = block * VS_DISK_BLOCK_BYTES;
    disk.c.errors++;
    if (!may_report())
        return;
    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: disk: error: ");
    vs_line_str(&l, what);
    vs_line_str(&l, " at block ");
    vs_line_dec(&l, block);
    vs_line_str(&l, " returned status ");
    vs_line_dec(&l, (uint64_t)status);
    vs_line_end(&l);
}

/* One request of n blocks from `block` on; its status. */
static int io(uint32_t type, uint64_t block, uint64_t *buf, unsigned n)
{
    const char *why = "";
    uint32_t us = 0, now;
    int status = vs_blk_request(type, block * SECTORS_PER_BLOCK, buf, n * VS_DISK_BLOCK_BYTES,
                                &us, &why);

    if (status < 0)
        broken(why);
    if (us > disk.c.max_gap_us)
        disk.c.max_gap_us = us;
    disk.window_bytes += n * VS_DISK_BLOCK_BYTES;
    now = vs_now_us();
    if (now - disk.window_us >= RATE_WINDOW_US) {
        disk.c.rng_bytes = (uint32_t)(disk.window_bytes * 1000000 / 1024 / (now - disk.window_us));
        disk.window_bytes = 0;
        disk.window_us = now;
    }
    return status;
}

static void check_blocks(uint64_t first, unsigned n, uint64_t seq)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t found, block = first + i;
        int r = vs_disk_block_check(rbuf + i * VS_DISK_BLOCK_WORDS, disk.seed, block, seq, &found);

        disk.c.pages_checked++;
        if (r == VS_DISK_OK)
            continue;
        if (!disk.c.errors)
            disk.c.first_bad_addr = block * VS_DISK_BLOCK_BYTES;
        disk.c.errors++;
        if (may_report()) {
            struct vs_line l;

            vs_line_start(&l);
            vs_line_str(&l, "vmshift-guest: disk: block ");
            vs_line_dec(&l, block);
            vs_line_str(&l, " expected pass ");
            vs_line_dec(&l, seq);
            vs_line_str(&l, ": ");
            vs_line_str(&l, check_names[r]);
            vs_line_str(&l, " (found pass ");
            vs_line_dec(&l, found);
            vs_line_str(&l, ")");
            vs_line_end(&l);
        }
    }
}

/* Read n blocks and check them against seq (0: any pass). */
static void read_and_check(uint64_t first, unsigned n, uint64_t seq)
{
    int status = io(VS_BLK_T_IN, first, rbuf, n);

    if (status != VS_BLK_S_OK)
        bad_status("read", first, status);
    else
        check_blocks(first, n, seq);
}

static void batch(uint64_t first, unsigned n, uint64_t pass)
{
    int status;

    if (pass > 1)
        read_and_check(first, n, pass - 1);   /* still what the last pass wrote */
    for (unsigned i = 0; i < n; i++)
        vs_disk_block_fill(wbuf + i * VS_DISK_BLOCK_WORDS, disk.seed, first + i, pass);
    status = io(VS_BLK_T_OUT, first, wbuf, n);
    if (status != VS_BLK_S_OK) {
        bad_status("write", first, status);
        return;
    }
    disk.c.pages_written += n;
    read_and_check(first, n, pass);
}

static void report_pass(uint32_t pass_us)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "cpu0 disk pass ");
    vs_line_dec(&l, disk.c.passes);
    vs_line_str(&l, " written=");
    vs_line_dec(&l, disk.c.pages_written);
    vs_line_str(&l, " checked=");
    vs_line_dec(&l, disk.c.pages_checked);
    vs_line_str(&l, " errors=");
    vs_line_dec(&l, disk.c.errors);
    vs_line_str(&l, " KiB/s=");
    vs_line_dec(&l, disk.c.rng_bytes);
    vs_line_str(&l, " max_stall_us=");
    vs_line_dec(&l, disk.c.max_gap_us);
    vs_line_str(&l, " pass_ms=");
    vs_line_dec(&l, pass_us / 1000);
    vs_line_end(&l);
}

/* A read-only disk must refuse a write; the passes then only read. */
static void probe_read_only(void)
{
    int status;

    vs_disk_block_fill(wbuf, disk.seed, 0, 1);
    status = io(VS_BLK_T_OUT, 0, wbuf, 1);
    if (status == VS_BLK_S_OK) {
        bad_status("a write to the read-only disk succeeded:", 0, status);
        return;
    }
    struct vs_line l;
    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: disk: read-only: a write was refused (status ");
    vs_line_dec(&l, (uint64_t)status);
    vs_line_str(&l, ")");
    vs_line_end(&l);
}

void vs_disk_run(unsigned cpu)
{
    disk.pub = vs_telemetry_cpu(cpu);
    disk.window_us = disk.last_bell_us = vs_now_us();
    vs_telemetry_set_state(cpu, VS_GUEST_RUNNING);
    if (disk.info.ro)
        probe_read_only();
    for (;;) {
        uint32_t t0 = vs_now_us();
        uint64_t pass = disk.c.passes + 1;

        disk.c.generation = disk.info.ro ? 0 : pass;
        publish(1);
        for (uint64_t b = 0; b < disk.blocks; b += BATCH) {
            unsigned n = disk.blocks - b < BATCH ? (unsigned)(disk.blocks - b) : BATCH;

            if (disk.info.ro)
                read_and_check(b, n, 0);
            else
                batch(b, n, pass);
            publish(1);
        }
        if (!disk.info.ro) {
            int status = io(VS_BLK_T_FLUSH, 0, 0, 0);

            if (status != VS_BLK_S_OK)
                bad_status("flush", 0, status);
        }
        disk.c.passes++;
        publish(1);
        if (!vs_guest.params.quiet && !(disk.c.passes & (disk.c.passes - 1)))
            report_pass(vs_now_us() - t0);
    }
}

static void print_started(void)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: disk: virtio-blk at ");
    vs_line_hex(&l, disk.info.base);
    vs_line_str(&l, ": ");
    vs_line_dec(&l, disk.info.capacity);
    vs_line_str(&l, " sectors, id '");
    vs_line_str(&l, disk.info.id);
    vs_line_str(&l, disk.info.ro ? "', read-only; " : "', read-write; ");
    vs_line_dec(&l, disk.blocks);
    vs_line_str(&l, " blocks of 4 KiB in use");
    vs_line_end(&l);
}

int vs_disk_start(const struct vs_guest_params *p, char *err, unsigned errlen)
{
    struct vs_buf e;
    int rc = vs_blk_start(&disk.info, err, errlen);
    uint64_t on_disk;

    vs_buf_init(&e, err, errlen);
    if (rc > 0) {
        vs_buf_puts(&e, "workload=disk needs a virtio-blk disk (vmshift run --disk FILE)");
        return -1;
    }
    if (rc < 0)
        return -1;
    on_disk = disk.info.capacity / SECTORS_PER_BLOCK;
    if (on_disk == 0) {
        vs_buf_puts(&e, "the disk is smaller than one 4 KiB block");
        return -1;
    }
    disk.blocks = p->disk_blocks ? p->disk_blocks : VS_DISK_DEFAULT_BLOCKS;
    if (disk.blocks > on_disk)
        disk.blocks = on_disk;
    disk.seed = p->seed;
    print_started();
    return 0;
}
