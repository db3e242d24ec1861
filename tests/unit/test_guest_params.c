/* Unit tests for the guest's command-line parser (guest/params.c), built hosted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "params.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static struct vs_guest_params parse_ok(const char *cmdline)
{
    struct vs_guest_params p;
    char err[128] = "";

    assert_int_equal(vs_params_parse(cmdline, &p, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    return p;
}

/* Parsing must fail with a message that mentions `needle`. */
static void parse_bad(const char *cmdline, const char *needle)
{
    struct vs_guest_params p;
    char err[128] = "";

    assert_int_equal(vs_params_parse(cmdline, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, needle));
}

static void assert_defaults(const struct vs_guest_params *p)
{
    assert_int_equal(p->workload, VS_WORKLOAD_IDLE);
    assert_int_equal(p->fill, VS_FILL_NONE);
    assert_int_equal(p->start, VS_WORK_DEFAULT_START);
    assert_int_equal(p->size, 0);
    assert_int_equal(p->mem, 0);
    assert_int_equal(p->rate, 0);
    assert_int_equal(p->seed, 1);
    assert_int_equal(p->cpus, 1);
    assert_int_equal(p->quiet, 0);
    assert_int_equal(p->hz, 50);
    assert_int_equal(p->timer, VS_TIMER_PIT);
    assert_int_equal(p->nr_virtio, 0);
    assert_int_equal(p->nr_warnings, 0);
}

static void test_defaults(void **state)
{
    (void)state;
    struct vs_guest_params p;

    p = parse_ok(NULL);
    assert_defaults(&p);
    p = parse_ok("");
    assert_defaults(&p);
    p = parse_ok("  \t \n ");
    assert_defaults(&p);
}

static void test_workloads_and_fills(void **state)
{
    (void)state;
    static const char *const workloads[] = { "idle", "once", "continuous", "verify", "timer",
                                             "disk", "net" };
    static const char *const fills[] = { "none", "pattern", "random" };
    char cmd[64];

    for (unsigned i = 0; i < 6; i++) {
        snprintf(cmd, sizeof(cmd), "workload=%s", workloads[i]);
        assert_int_equal(parse_ok(cmd).workload, i);
        assert_string_equal(vs_params_workload_name(i), workloads[i]);
    }
    for (unsigned i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "fill=%s", fills[i]);
        assert_int_equal(parse_ok(cmd).fill, i);
        assert_string_equal(vs_params_fill_name(i), fills[i]);
    }
    assert_string_equal(vs_params_workload_name(99), "?");
    assert_string_equal(vs_params_fill_name(99), "?");
}

static void test_every_key(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok(
        "workload=verify start=0x800000 size=16M rate=12345 fill=random seed=0xdeadbeef "
        "cpus=4 mem=1G quiet=1");

    assert_int_equal(p.workload, VS_WORKLOAD_VERIFY);
    assert_int_equal(p.start, 0x800000);
    assert_int_equal(p.size, 16 * MiB);
    assert_int_equal(p.rate, 12345);
    assert_int_equal(p.fill, VS_FILL_RANDOM);
    assert_int_equal(p.seed, 0xdeadbeef);
    assert_int_equal(p.cpus, 4);
    assert_int_equal(p.mem, GiB);
    assert_int_equal(p.quiet, 1);
    assert_int_equal(p.nr_warnings, 0);
}

static void test_numbers_and_suffixes(void **state)
{
    (void)state;

    assert_int_equal(parse_ok("size=4096").size, 4096);
    assert_int_equal(parse_ok("size=0x2000").size, 0x2000);
    assert_int_equal(parse_ok("size=0X2000").size, 0x2000);
    assert_int_equal(parse_ok("size=0xABC000").size, 0xabc000);
    assert_int_equal(parse_ok("size=8K").size, 8192);
    assert_int_equal(parse_ok("size=8k").size, 8192);
    assert_int_equal(parse_ok("size=3M").size, 3 * MiB);
    assert_int_equal(parse_ok("size=3m").size, 3 * MiB);
    assert_int_equal(parse_ok("size=2G").size, 2 * GiB);
    assert_int_equal(parse_ok("size=0x10M").size, 16 * MiB);
    assert_int_equal(parse_ok("start=4M").start, 4 * MiB);
    assert_int_equal(parse_ok("start=0x280000").start, VS_WORK_MIN_START);
    assert_int_equal(parse_ok("mem=64M").mem, 64 * MiB);
    assert_int_equal(parse_ok("seed=18446744073709551615").seed, UINT64_MAX);
    assert_int_equal(parse_ok("seed=0").seed, 0);
    assert_int_equal(parse_ok("rate=0").rate, 0);
    assert_int_equal(parse_ok("rate=0x100").rate, 256);
    assert_int_equal(parse_ok("quiet=0").quiet, 0);
}

static void test_cpus(void **state)
{
    (void)state;

    assert_int_equal(parse_ok("cpus=1").cpus, 1);
    assert_int_equal(parse_ok("cpus=32").cpus, VS_MAX_VCPUS);
    assert_int_equal(parse_ok("cpus=100").cpus, VS_MAX_VCPUS);
    parse_bad("cpus=0", "cpus");
    parse_bad("cpus=two", "cpus");
}

static void test_last_value_wins_and_spacing(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("  rate=5\tworkload=once   rate=7 \n");

    assert_int_equal(p.rate, 7);
    assert_int_equal(p.workload, VS_WORKLOAD_ONCE);
}

static void test_bad_values(void **state)
{
    (void)state;

    parse_bad("workload=foo", "workload");
    parse_bad("workload=", "workload");
    parse_bad("workload=Verify", "workload");
    parse_bad("fill=zero", "fill");
    parse_bad("start=12345", "not 4 KiB aligned");
    parse_bad("start=0x1000", "boot stacks");
    parse_bad("start=0x27f000", "boot stacks");
    parse_bad("start=", "start");
    parse_bad("size=0", "size");
    parse_bad("size=0x0", "size");
    parse_bad("size=100", "size");
    parse_bad("size=4097", "size");
    parse_bad("size=0x", "size");
    parse_bad("size=M", "size");
    parse_bad("size=4T", "size");
    parse_bad("size=1MM", "size");
    parse_bad("rate=abc", "rate");
    parse_bad("rate=", "rate");
    parse_bad("rate=1K", "rate");        /* suffixes are for sizes only */
    parse_bad("rate=-1", "rate");
    parse_bad("rate=12abc", "rate");
    parse_bad("seed=0x", "seed");
    parse_bad("seed=0xg", "seed");
    parse_bad("mem=0", "mem");
    parse_bad("quiet=yes", "quiet");
    /* overflow */
    parse_bad("seed=18446744073709551616", "seed");
    parse_bad("size=0x10000000000000000", "size");
    parse_bad("size=17179869184G", "size");
    parse_bad("start=0xfffffffffffff000 size=0x2000", "overflows");
}

static void test_error_message_names_token(void **state)
{
    (void)state;
    struct vs_guest_params p;
    char err[128];

    assert_int_equal(vs_params_parse("quiet=1 workload=foo", &p, err, sizeof(err)), -1);
    assert_string_equal(err, "bad value for workload: 'foo' (idle, once, continuous, verify, timer, "
                             "disk, net or net-stream)");
}

static void test_error_buffer_edge_cases(void **state)
{
    (void)state;
    struct vs_guest_params p;
    char tiny[8];

    assert_int_equal(vs_params_parse("rate=abc", &p, NULL, 0), -1);
    assert_int_equal(vs_params_parse("rate=abc", &p, NULL, 100), -1);
    memset(tiny, 'x', sizeof(tiny));
    assert_int_equal(vs_params_parse("rate=abc", &p, tiny, sizeof(tiny)), -1);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    assert_memory_equal(tiny, "bad val", 8);
}

static void test_failed_parse_leaves_output_alone(void **state)
{
    (void)state;
    struct vs_guest_params p;
    char err[64];

    memset(&p, 0xab, sizeof(p));
    assert_int_equal(vs_params_parse("rate=5 size=0", &p, err, sizeof(err)), -1);
    assert_int_equal(p.rate, 0xababababababababULL);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    const char *cmd = "console=ttyS0 workload=once noapic foo= =bar";
    struct vs_guest_params p = parse_ok(cmd);

    assert_int_equal(p.workload, VS_WORKLOAD_ONCE);
    assert_int_equal(p.nr_warnings, 4);
    assert_int_equal(p.warnings[0].len, strlen("console=ttyS0"));
    assert_memory_equal(p.warnings[0].token, "console=ttyS0", p.warnings[0].len);
    assert_ptr_equal(p.warnings[0].token, cmd);
    assert_memory_equal(p.warnings[1].token, "noapic", p.warnings[1].len);
    assert_int_equal(p.warnings[1].len, 6);
    assert_memory_equal(p.warnings[2].token, "foo=", p.warnings[2].len);
    assert_memory_equal(p.warnings[3].token, "=bar", p.warnings[3].len);
}

static void test_many_unknown_keys(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("a b c d e f g h i j k rate=3 l");

    assert_int_equal(p.rate, 3);
    assert_int_equal(p.nr_warnings, 12);
    assert_memory_equal(p.warnings[VS_PARAMS_MAX_WARNINGS - 1].token, "h", 1);
}

static void test_cmdline_is_bounded(void **state)
{
    (void)state;
    static char cmd[VS_BOOT_CMDLINE_MAX + 64];
    struct vs_guest_params p;

    /* Padding up to the limit, then a key the parser must not reach. */
    memset(cmd, ' ', sizeof(cmd) - 1);
    memcpy(cmd + VS_BOOT_CMDLINE_MAX, "rate=9", 6);
    cmd[sizeof(cmd) - 1] = '\0';
    p = parse_ok(cmd);
    assert_int_equal(p.rate, 0);
}

static void test_timer_keys(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("workload=timer hz=100 timer=lapic");

    assert_int_equal(p.workload, VS_WORKLOAD_TIMER);
    assert_int_equal(p.hz, 100);
    assert_int_equal(p.timer, VS_TIMER_LAPIC);
    assert_string_equal(vs_params_timer_name(VS_TIMER_LAPIC), "lapic");
    assert_string_equal(vs_params_timer_name(VS_TIMER_PIT), "pit");
    assert_string_equal(vs_params_timer_name(7), "?");
    assert_int_equal(parse_ok("hz=19").hz, 19);
    assert_int_equal(parse_ok("hz=1000").hz, 1000);
    assert_int_equal(parse_ok("timer=lapic hz=1").hz, 1);
    assert_int_equal(parse_ok("hz=1 timer=lapic").hz, 1);   /* order does not matter */
    assert_int_equal(parse_ok("workload=disk disk_blocks=4096").disk_blocks, 4096);
    assert_int_equal(parse_ok("workload=disk").disk_blocks, 0);
    parse_bad("disk_blocks=0", "disk_blocks");
    parse_bad("disk_blocks=many", "disk_blocks");
    parse_bad("hz=0", "hz");
    parse_bad("hz=1001", "hz");
    parse_bad("hz=fast", "hz");
    parse_bad("hz=18", "timer=lapic");                      /* the PIT cannot go that slow */
    parse_bad("timer=hpet", "pit or lapic");
}

static void test_ip(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("workload=net ip=198.18.0.10");
    assert_int_equal(p.workload, VS_WORKLOAD_NET);
    assert_true(p.has_ip);
    const uint8_t want[4] = { 198, 18, 0, 10 };
    assert_memory_equal(p.ip, want, 4);
    p = parse_ok("ip=0.0.0.255");
    assert_int_equal(p.ip[3], 255);
    assert_false(parse_ok("workload=net").has_ip);
    /* The second NIC's address. */
    p = parse_ok("workload=net ip=198.18.0.10 ip2=198.18.2.10");
    const uint8_t want2[4] = { 198, 18, 2, 10 };
    assert_true(p.has_ip && p.has_ip2);
    assert_memory_equal(p.ip2, want2, 4);
    assert_memory_equal(p.ip, want, 4);
    assert_false(parse_ok("workload=net ip=198.18.0.10").has_ip2);
    parse_bad("ip2=198.18.2", "IPv4 address");
    static const char *const bad[] = { "ip=198.18.0", "ip=198.18.0.256", "ip=1.2.3.4.5", "ip=1..2.3",
                                       "ip=", "ip=a.b.c.d", "ip=0x1.2.3.4", "ip=1.2.3.4.",
                                       "ip=1234.1.1.1" };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i], "IPv4");
}

static void test_peer(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("workload=net-stream ip=198.18.0.10 peer=198.18.0.100:9000 rate=300");
    assert_int_equal(p.workload, VS_WORKLOAD_NET_STREAM);
    const uint8_t want[4] = { 198, 18, 0, 100 };
    assert_true(p.has_peer);
    assert_memory_equal(p.peer_ip, want, 4);
    assert_int_equal(p.peer_port, 9000);
    assert_int_equal(p.rate, 300);
    assert_false(parse_ok("workload=net-stream").has_peer);
    assert_int_equal(parse_ok("peer=1.2.3.4:65535").peer_port, 65535);
    static const char *const bad[] = { "peer=198.18.0.100", "peer=198.18.0.100:", "peer=:9000",
                                       "peer=198.18.0.100:0", "peer=198.18.0.100:65536",
                                       "peer=198.18.0:9000", "peer=198.18.0.100:x" };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i], "UDP port");
}

static void test_virtio_mmio_slots(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok(
        "virtio_mmio.device=512@0xfeb00000:12 virtio_mmio.device=4K@0xfeb01000:13:5 "
        "virtio_mmio.device=0x200@4273999872:5");

    assert_int_equal(p.nr_virtio, 3);
    assert_int_equal(p.virtio[0].size, 512);
    assert_int_equal(p.virtio[0].base, 0xfeb00000);
    assert_int_equal(p.virtio[0].irq, 12);
    assert_int_equal(p.virtio[1].size, 4096);
    assert_int_equal(p.virtio[1].base, 0xfeb01000);
    assert_int_equal(p.virtio[1].irq, 13);
    assert_int_equal(p.virtio[2].size, 0x200);
    assert_int_equal(p.virtio[2].base, 4273999872ULL);
    assert_int_equal(p.virtio[2].irq, 5);
    assert_int_equal(p.nr_warnings, 0);

    parse_bad("virtio_mmio.device=", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=512", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=512@0xfeb00000", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=512@0xfeb00000:", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=0@0xfeb00000:12", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=512@:12", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=512@0xfeb00000:256", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=512@0xfeb00000:12:", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=512@0xfeb00000:x", "SIZE@BASE:IRQ");
    parse_bad("virtio_mmio.device=4K@0xfffffffffffff000:1", "SIZE@BASE:IRQ");

    char cmd[600] = "";
    for (int i = 0; i < VS_VIRTIO_MMIO_MAX; i++)
        snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd),
                 "virtio_mmio.device=512@0x%x:%d ", 0xfeb00000 + i * 0x200, 12 + i);
    p = parse_ok(cmd);
    assert_int_equal(p.nr_virtio, VS_VIRTIO_MMIO_MAX);
    assert_int_equal(p.virtio[7].base, 0xfeb00e00);
    strcat(cmd, "virtio_mmio.device=512@0xfeb01000:20");
    parse_bad(cmd, "more than 8");
}

/* ---- vs_params_resolve_range ---- */

static const struct hvm_memmap_table_entry ram_64m[] = {
    { .addr = 0, .size = 0x9fc00, .type = VS_E820_RAM },
    { .addr = 0x9fc00, .size = 0x400, .type = 2 },
    { .addr = 0xf0000, .size = 0x10000, .type = 2 },
    { .addr = 0x100000, .size = 64 * MiB - 0x100000, .type = VS_E820_RAM },
    { .addr = 0xfffc0000, .size = 0x40000, .type = 2 },
};
#define N_RAM_64M ((uint32_t)(sizeof(ram_64m) / sizeof(ram_64m[0])))

static void resolve_ok(struct vs_guest_params *p, const struct hvm_memmap_table_entry *map,
                       uint32_t n)
{
    char err[128] = "";

    assert_int_equal(vs_params_resolve_range(p, map, n, err, sizeof(err)), 0);
    assert_string_equal(err, "");
}

static void resolve_bad(struct vs_guest_params *p, const struct hvm_memmap_table_entry *map,
                        uint32_t n, const char *needle)
{
    char err[128] = "";

    assert_int_equal(vs_params_resolve_range(p, map, n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, needle));
}

static void test_resolve_default_size(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("workload=verify");

    resolve_ok(&p, ram_64m, N_RAM_64M);
    assert_int_equal(p.start, 4 * MiB);
    assert_int_equal(p.size, 60 * MiB);
}

static void test_resolve_explicit_size(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("start=8M size=56M");

    resolve_ok(&p, ram_64m, N_RAM_64M);
    assert_int_equal(p.size, 56 * MiB);

    p = parse_ok("start=8M size=56M mem=1G");   /* mem= only matters without a map */
    resolve_ok(&p, ram_64m, N_RAM_64M);

    p = parse_ok("start=8M size=0x3801000");
    resolve_bad(&p, ram_64m, N_RAM_64M, "not inside RAM");
}

static void test_resolve_start_outside_ram(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("start=64M");

    resolve_bad(&p, ram_64m, N_RAM_64M, "not in RAM");
    p = parse_ok("start=0xfffc0000");
    resolve_bad(&p, ram_64m, N_RAM_64M, "not in RAM");
}

static void test_resolve_unaligned_ram_end(void **state)
{
    (void)state;
    const struct hvm_memmap_table_entry map[] = {
        { .addr = 0, .size = 8 * MiB + 0x123, .type = VS_E820_RAM },
    };
    struct vs_guest_params p = parse_ok("");

    resolve_ok(&p, map, 1);
    assert_int_equal(p.size, 4 * MiB);
}

static void test_resolve_merges_adjacent_entries(void **state)
{
    (void)state;
    /* Unsorted and split: RAM is [0, 32M) in three pieces, then a hole, then more. */
    const struct hvm_memmap_table_entry map[] = {
        { .addr = 16 * MiB, .size = 16 * MiB, .type = VS_E820_RAM },
        { .addr = 64 * MiB, .size = 64 * MiB, .type = VS_E820_RAM },
        { .addr = 0, .size = 6 * MiB, .type = VS_E820_RAM },
        { .addr = 6 * MiB, .size = 10 * MiB, .type = VS_E820_RAM },
    };
    struct vs_guest_params p = parse_ok("");

    /* All RAM from start on: [4M, 32M) and, past the hole, [64M, 128M). */
    resolve_ok(&p, map, 4);
    assert_int_equal(p.size, 92 * MiB);
    assert_int_equal(p.nr_extents, 2);
    assert_int_equal(p.extents[0].start, 4 * MiB);
    assert_int_equal(p.extents[0].pages, 28 * MiB / 4096);
    assert_int_equal(p.extents[1].start, 64 * MiB);
    assert_int_equal(p.extents[1].pages, 64 * MiB / 4096);

    p = parse_ok("size=40M");
    resolve_ok(&p, map, 4);
    assert_int_equal(p.nr_extents, 2);
    assert_int_equal(p.extents[1].pages, 12 * MiB / 4096);
    assert_int_equal(vs_params_range_end(&p), 76 * MiB);

    p = parse_ok("size=93M");
    resolve_bad(&p, map, 4, "not inside RAM");

    p = parse_ok("start=64M");
    resolve_ok(&p, map, 4);
    assert_int_equal(p.size, 64 * MiB);
    assert_int_equal(p.nr_extents, 1);
}

/* The pc layout of a 5 GiB VM: RAM below the 3 GiB MMIO gap and from 4 GiB. */
static const struct hvm_memmap_table_entry ram_pc_5g[] = {
    { .addr = 0, .size = 0xa0000, .type = VS_E820_RAM },
    { .addr = 0x100000, .size = 3 * GiB - 0x100000, .type = VS_E820_RAM },
    { .addr = 4 * GiB, .size = 2 * GiB, .type = VS_E820_RAM },
};

static void test_resolve_skips_the_mmio_gap(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("start=0xbf000000 size=32M cpus=2");

    resolve_ok(&p, ram_pc_5g, 3);
    assert_int_equal(p.nr_extents, 2);
    assert_int_equal(p.extents[0].start, 0xbf000000);
    assert_int_equal(p.extents[0].pages, 16 * MiB / 4096);
    assert_int_equal(p.extents[1].start, 4 * GiB);
    assert_int_equal(p.extents[1].pages, 16 * MiB / 4096);

    /* Page by page: the 4096th page is the first above the gap. */
    uint64_t run;
    assert_int_equal(vs_params_page_addr(&p, 0, &run), 0xbf000000);
    assert_int_equal(run, 4096);
    assert_int_equal(vs_params_page_addr(&p, 4095, &run), 3 * GiB - 4096);
    assert_int_equal(run, 1);
    assert_int_equal(vs_params_page_addr(&p, 4096, &run), 4 * GiB);
    assert_int_equal(run, 4096);
    vs_params_page_addr(&p, 8192, &run);
    assert_int_equal(run, 0);

    /* Default size: everything from start, gap excluded. */
    p = parse_ok("");
    resolve_ok(&p, ram_pc_5g, 3);
    assert_int_equal(p.size, 5 * GiB - 4 * MiB);
    assert_int_equal(vs_params_range_end(&p), 6 * GiB);

    /* Starting in the gap, or asking for more than there is, fails. */
    p = parse_ok("start=0xc0000000");
    resolve_bad(&p, ram_pc_5g, 3, "not in RAM");
    p = parse_ok("start=5G size=2G");
    resolve_bad(&p, ram_pc_5g, 3, "not inside RAM");
}

static void test_resolve_limits_pieces(void **state)
{
    (void)state;
    struct hvm_memmap_table_entry map[VS_RANGE_MAX_EXTENTS + 1];

    for (unsigned i = 0; i < VS_RANGE_MAX_EXTENTS + 1; i++)
        map[i] = (struct hvm_memmap_table_entry){ .addr = 4 * MiB + i * 2 * MiB,
                                                  .size = MiB, .type = VS_E820_RAM };
    struct vs_guest_params p = parse_ok("");

    resolve_bad(&p, map, VS_RANGE_MAX_EXTENTS + 1, "pieces of RAM");
    p = parse_ok("size=8M");
    resolve_ok(&p, map, VS_RANGE_MAX_EXTENTS + 1);
    assert_int_equal(p.nr_extents, VS_RANGE_MAX_EXTENTS);
}

static void test_resolve_ignores_non_ram(void **state)
{
    (void)state;
    const struct hvm_memmap_table_entry map[] = {
        { .addr = 0, .size = 8 * MiB, .type = VS_E820_RAM },
        { .addr = 8 * MiB, .size = 8 * MiB, .type = 2 },
    };
    struct vs_guest_params p = parse_ok("size=8M");

    resolve_bad(&p, map, 2, "not inside RAM");
}

static void test_resolve_without_memmap(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("workload=continuous");

    resolve_bad(&p, NULL, 0, "mem=");

    p = parse_ok("mem=64M");
    resolve_ok(&p, NULL, 0);
    assert_int_equal(p.size, 60 * MiB);

    p = parse_ok("mem=4M");
    resolve_bad(&p, NULL, 0, "no RAM above");

    p = parse_ok("mem=16M size=16M");
    resolve_bad(&p, NULL, 0, "not inside RAM");
}

static void test_resolve_too_few_pages_for_cpus(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("size=12K cpus=4");

    resolve_bad(&p, ram_64m, N_RAM_64M, "fewer pages than cpus=4");
    p = parse_ok("size=16K cpus=4");
    resolve_ok(&p, ram_64m, N_RAM_64M);
}

static void test_resolve_rejects_huge_map(void **state)
{
    (void)state;
    struct vs_guest_params p = parse_ok("");

    /* The count is checked before any entry is read. */
    resolve_bad(&p, ram_64m, VS_MEMMAP_MAX + 1, "too many entries");
}

static void test_resolve_entry_end_overflow(void **state)
{
    (void)state;
    const struct hvm_memmap_table_entry map[] = {
        { .addr = 0, .size = UINT64_MAX, .type = VS_E820_RAM },
        { .addr = 0x1000, .size = UINT64_MAX, .type = VS_E820_RAM },
    };
    struct vs_guest_params p = parse_ok("size=1G");

    resolve_ok(&p, map, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_workloads_and_fills),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_numbers_and_suffixes),
        cmocka_unit_test(test_cpus),
        cmocka_unit_test(test_last_value_wins_and_spacing),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_error_message_names_token),
        cmocka_unit_test(test_error_buffer_edge_cases),
        cmocka_unit_test(test_failed_parse_leaves_output_alone),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_many_unknown_keys),
        cmocka_unit_test(test_cmdline_is_bounded),
        cmocka_unit_test(test_timer_keys),
        cmocka_unit_test(test_virtio_mmio_slots),
        cmocka_unit_test(test_ip),
        cmocka_unit_test(test_peer),
        cmocka_unit_test(test_resolve_default_size),
        cmocka_unit_test(test_resolve_explicit_size),
        cmocka_unit_test(test_resolve_start_outside_ram),
        cmocka_unit_test(test_resolve_unaligned_ram_end),
        cmocka_unit_test(test_resolve_merges_adjacent_entries),
        cmocka_unit_test(test_resolve_skips_the_mmio_gap),
        cmocka_unit_test(test_resolve_limits_pieces),
        cmocka_unit_test(test_resolve_ignores_non_ram),
        cmocka_unit_test(test_resolve_without_memmap),
        cmocka_unit_test(test_resolve_too_few_pages_for_cpus),
        cmocka_unit_test(test_resolve_rejects_huge_map),
        cmocka_unit_test(test_resolve_entry_end_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
