/* Unit tests: the pc memory layout (src/vmm/ram_layout.c) and what builds on it: region
 * math for RAM below, equal to and above 3 GiB; guest-physical lookups that must refuse
 * the MMIO gap, ranges across it and ranges beyond RAM; monitor writes, preloads and
 * fills landing at the right RAM offsets; the e820 map and the boot page tables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "vmm/boot.h"
#include "page_walk.h"
#include "vmm/devices/pvport.h"
#include "vmm/fill.h"
#include "vmm/memory.h"
#include "vmshift/guest_abi.h"
#include "vmshift/page_format.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void expect_region(const struct vs_ram_region *r, uint64_t gpa, uint64_t offset,
                          uint64_t size)
{
    assert_int_equal(r->gpa, gpa);
    assert_int_equal(r->offset, offset);
    assert_int_equal(r->size, size);
}

static void pc_regions_below_at_and_above_3g(void **state)
{
    (void)state;
    struct vs_ram_layout l;

    vs_ram_layout_init(&l, 2 * GiB, true);
    assert_int_equal(l.nr_regions, 1);
    expect_region(&l.regions[0], 0, 0, 2 * GiB);
    assert_int_equal(vs_ram_top(&l), 2 * GiB);

    vs_ram_layout_init(&l, 3 * GiB, true);
    assert_int_equal(l.nr_regions, 1);
    expect_region(&l.regions[0], 0, 0, 3 * GiB);
    assert_int_equal(vs_ram_top(&l), 3 * GiB);

    vs_ram_layout_init(&l, 3 * GiB + 2 * MiB, true);
    assert_int_equal(l.nr_regions, 2);
    expect_region(&l.regions[0], 0, 0, 3 * GiB);
    expect_region(&l.regions[1], 4 * GiB, 3 * GiB, 2 * MiB);

    vs_ram_layout_init(&l, 64 * GiB, true);
    assert_int_equal(l.nr_regions, 2);
    expect_region(&l.regions[1], 4 * GiB, 3 * GiB, 61 * GiB);
    assert_int_equal(vs_ram_top(&l), 65 * GiB);
}

static void flat_is_one_region_from_zero(void **state)
{
    (void)state;
    struct vs_ram_layout l;

    vs_ram_layout_init(&l, 5 * GiB, false);
    assert_int_equal(l.nr_regions, 1);
    expect_region(&l.regions[0], 0, 0, 5 * GiB);
    assert_int_equal(vs_ram_identity_map_top(&l), 5 * GiB);
    uint64_t off;
    assert_true(vs_ram_gpa_to_offset(&l, 3 * GiB, 4096, &off));
    assert_int_equal(off, 3 * GiB);
    vs_ram_layout_init(&l, 256 * MiB, false);
    assert_int_equal(vs_ram_identity_map_top(&l), 256 * MiB);
}

static void gpa_and_offset_translate_both_ways(void **state)
{
    (void)state;
    struct vs_ram_layout l;
    uint64_t off = 0;

    vs_ram_layout_init(&l, 5 * GiB, true);
    assert_true(vs_ram_gpa_to_offset(&l, 0, 4096, &off));
    assert_int_equal(off, 0);
    assert_true(vs_ram_gpa_to_offset(&l, 3 * GiB - 4096, 4096, &off));
    assert_int_equal(off, 3 * GiB - 4096);
    assert_true(vs_ram_gpa_to_offset(&l, 4 * GiB, 4096, &off));
    assert_int_equal(off, 3 * GiB);
    assert_true(vs_ram_gpa_to_offset(&l, 6 * GiB - 8, 8, &off));
    assert_int_equal(off, 5 * GiB - 8);

    /* the gap, a range across it, ranges leaving RAM */
    assert_false(vs_ram_gpa_to_offset(&l, 3 * GiB, 1, &off));
    assert_false(vs_ram_gpa_to_offset(&l, 0xFEE00000, 4096, &off));
    assert_false(vs_ram_gpa_to_offset(&l, 4 * GiB - 8, 8, &off));
    assert_false(vs_ram_gpa_to_offset(&l, 3 * GiB - 4096, 8192, &off));
    assert_false(vs_ram_gpa_to_offset(&l, 3 * GiB - 4096, 1 * GiB + 8192, &off));
    assert_false(vs_ram_gpa_to_offset(&l, 6 * GiB, 0, &off));
    assert_false(vs_ram_gpa_to_offset(&l, 6 * GiB - 8, 16, &off));
    assert_false(vs_ram_gpa_to_offset(&l, 4 * GiB, UINT64_MAX, &off));

    assert_int_equal(vs_ram_offset_to_gpa(&l, 0), 0);
    assert_int_equal(vs_ram_offset_to_gpa(&l, 3 * GiB - 1), 3 * GiB - 1);
    assert_int_equal(vs_ram_offset_to_gpa(&l, 3 * GiB), 4 * GiB);
    assert_int_equal(vs_ram_offset_to_gpa(&l, 5 * GiB - 1), 6 * GiB - 1);
    assert_int_equal(vs_ram_offset_to_gpa(&l, 5 * GiB), UINT64_MAX);

    assert_int_equal(vs_ram_bytes_from(&l, 4 * MiB), 5 * GiB - 4 * MiB);
    assert_int_equal(vs_ram_bytes_from(&l, 3 * GiB + 5), 2 * GiB);
    assert_int_equal(vs_ram_bytes_from(&l, 5 * GiB), 1 * GiB);
    assert_int_equal(vs_ram_bytes_from(&l, 6 * GiB), 0);
}

static void identity_map_covers_the_gap(void **state)
{
    (void)state;
    struct vs_ram_layout l;

    vs_ram_layout_init(&l, 256 * MiB, true);
    assert_int_equal(vs_ram_identity_map_top(&l), 4 * GiB);
    vs_ram_layout_init(&l, 3 * GiB, true);
    assert_int_equal(vs_ram_identity_map_top(&l), 4 * GiB);
    vs_ram_layout_init(&l, 5 * GiB, true);
    assert_int_equal(vs_ram_identity_map_top(&l), 6 * GiB);
}

static void e820_lists_every_ram_range(void **state)
{
    (void)state;
    struct vs_ram_layout l;
    struct hvm_memmap_table_entry map[VS_BOOT_MEMMAP_MAX];

    vs_ram_layout_init(&l, 2 * GiB, true);
    assert_int_equal(vs_boot_memmap(&l, map, VS_BOOT_MEMMAP_MAX), 2);
    assert_int_equal(map[0].addr, 0);
    assert_int_equal(map[0].size, 0xA0000);
    assert_int_equal(map[1].addr, 0x100000);
    assert_int_equal(map[1].size, 2 * GiB - 0x100000);

    vs_ram_layout_init(&l, 5 * GiB, true);
    assert_int_equal(vs_boot_memmap(&l, map, VS_BOOT_MEMMAP_MAX), 3);
    assert_int_equal(map[1].addr + map[1].size, 3 * GiB);
    assert_int_equal(map[2].addr, 4 * GiB);
    assert_int_equal(map[2].size, 2 * GiB);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(map[i].type, VS_E820_RAM);

    /* flat: as before the pc layout, RAM up to its size */
    vs_ram_layout_init(&l, 5 * GiB, false);
    assert_int_equal(vs_boot_memmap(&l, map, VS_BOOT_MEMMAP_MAX), 2);
    assert_int_equal(map[1].addr + map[1].size, 5 * GiB);
}


static void page_tables_reach_the_gap_and_the_top(void **state)
{
    (void)state;
    uint8_t *ram = calloc(1, VS_BOOT_PT_END);
    assert_non_null(ram);
    struct vs_ram_layout l;
    vs_ram_layout_init(&l, 5 * GiB, true);
    uint64_t cr3 = vs_boot_build_page_tables(ram, vs_ram_identity_map_top(&l));
    assert_int_equal(cr3, VS_BOOT_PT_ADDR);
    vs_boot_uncache_range(ram, cr3, VS_PC_MMIO_GAP_START, VS_PC_HIGH_RAM_START);
    const uint64_t ram_probes[] = { 0x1000, 3 * GiB - 8, 4 * GiB, 6 * GiB - 8 };
    const uint64_t mmio_probes[] = { 3 * GiB, 0xFEC00000, 0xFEE000B0, 4 * GiB - 8 };
    int ok;
    uint64_t pde;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(page_walk(ram, cr3, ram_probes[i], &ok, &pde), ram_probes[i]);
        assert_true(ok);
        assert_int_equal(pde & 0x18, 0);            /* RAM: cached */
        assert_int_equal(page_walk(ram, cr3, mmio_probes[i], &ok, &pde), mmio_probes[i]);
        assert_true(ok);
        assert_int_equal(pde & 0x18, 0x18);         /* MMIO: PCD and PWT */
    }
    page_walk(ram, cr3, 6 * GiB, &ok, &pde);         /* above the top of RAM */
    assert_false(ok);

    /* A small pc VM still maps the gap (its LAPIC and IOAPIC live there). */
    memset(ram, 0, VS_BOOT_PT_END);
    vs_ram_layout_init(&l, 256 * MiB, true);
    cr3 = vs_boot_build_page_tables(ram, vs_ram_identity_map_top(&l));
    assert_int_equal(page_walk(ram, cr3, 0xFEE00000, &ok, &pde), 0xFEE00000);
    assert_true(ok);
    page_walk(ram, cr3, 4 * GiB, &ok, &pde);
    assert_false(ok);
    free(ram);
}

/* ---- on a real pc memory of 3.5 GiB: [0, 3G) and [4G, 4.5G) ---- */

static int make_pc_memory(void **state)
{
    struct vs_memory *m = calloc(1, sizeof(*m));
    if (!m || vs_memory_create_layout(m, 3 * GiB + 512 * MiB, true, VS_RAM_BACKING_MEMFD)) {
        fprintf(stderr, "cannot create 3.5 GiB of sparse guest RAM: %s\n", vs_last_error());
        free(m);
        return -1;
    }
    *state = m;
    return 0;
}

static int free_pc_memory(void **state)
{
    vs_memory_destroy(*state);
    free(*state);
    return 0;
}

static uint64_t memfd_word(const struct vs_memory *m, uint64_t offset)
{
    uint64_t w = 0;
    assert_int_equal(pread(m->memfd, &w, 8, (off_t)offset), 8);
    return w;
}

static void gpa_ptr_refuses_gap_crossing_and_beyond(void **state)
{
    struct vs_memory *m = *state;
    assert_int_equal(m->layout.nr_regions, 2);
    assert_ptr_equal(vs_memory_gpa_ptr(m, 4 * GiB, 4096), m->base + 3 * GiB);
    assert_ptr_equal(vs_memory_gpa_ptr(m, 3 * GiB - 8, 8), m->base + 3 * GiB - 8);
    assert_ptr_equal(vs_memory_gpa_ptr(m, 4 * GiB + 512 * MiB - 8, 8),
                     m->base + 3 * GiB + 512 * MiB - 8);
    assert_null(vs_memory_gpa_ptr(m, 3 * GiB, 8));                /* the gap */
    assert_null(vs_memory_gpa_ptr(m, 0xFEC00000, 4));             /* the IOAPIC */
    assert_null(vs_memory_gpa_ptr(m, 3 * GiB - 8, 16));           /* across the gap's start */
    assert_null(vs_memory_gpa_ptr(m, 4 * GiB - 8, 16));           /* across its end */
    assert_null(vs_memory_gpa_ptr(m, 3 * GiB + 512 * MiB, 8));    /* RAM offset, not a GPA */
    assert_null(vs_memory_gpa_ptr(m, 4 * GiB + 512 * MiB, 8));    /* beyond RAM */
    assert_null(vs_memory_gpa_ptr(m, 4 * GiB + 512 * MiB - 8, 16));

    assert_int_equal(vs_memory_check_range(m, 4 * GiB, 4096, "probe"), 0);
    assert_true(vs_memory_check_range(m, 3 * GiB - 4096, 8192, "probe") < 0);
    assert_non_null(strstr(vs_last_error(), "outside guest RAM"));
    assert_non_null(strstr(vs_last_error(), "[0x100000000, 0x120000000)"));
}

static void writes_land_at_ram_offsets(void **state)
{
    struct vs_memory *m = *state;
    /* The loader's fill of guest-physical 4 GiB is at RAM offset 3 GiB. */
    assert_int_equal(vs_fill_range(m, 4 * GiB, 64 * 1024, VS_FILL_PATTERN, 1, 2), 0);
    assert_int_equal(memfd_word(m, 3 * GiB), vs_fill_word(VS_FILL_PATTERN, 1, 4 * GiB));
    assert_int_equal(memfd_word(m, 3 * GiB + 4096),
                     vs_fill_word(VS_FILL_PATTERN, 1, 4 * GiB + 4096));
    assert_true(vs_fill_range(m, 3 * GiB - 4096, 8192, VS_FILL_PATTERN, 1, 2) < 0);

    /* --preload at a GPA above the gap */
    char path[] = "/tmp/vmshift-layout-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint64_t words[512];
    for (unsigned i = 0; i < 512; i++)
        words[i] = 0x1234000000000000ULL + i;
    assert_int_equal(write(fd, words, sizeof(words)), sizeof(words));
    close(fd);
    assert_int_equal(vs_memory_preload(m, path, 4 * GiB + 8 * MiB), 0);
    assert_int_equal(memfd_word(m, 3 * GiB + 8 * MiB + 8), words[1]);
    assert_true(vs_memory_preload(m, path, 3 * GiB - 2048) < 0);   /* would cross the gap */
    assert_true(vs_memory_preload(m, path, 0xFEC00000) < 0);       /* in the gap */
    unlink(path);
}

static void monitor_writes_become_dirty_ram_offsets(void **state)
{
    struct vs_memory *m = *state;
    uint64_t words = (m->size / 4096 + 63) / 64, below = 3 * GiB / 4096;
    uint64_t *bm = calloc(words, sizeof(uint64_t));
    assert_non_null(bm);
    assert_int_equal(vs_memory_track_writes(m, true), 0);
    vs_memory_collect_writes(m, bm);
    memset(bm, 0, words * sizeof(uint64_t));

    vs_memory_note_write(m, 4 * GiB + 4096, 8);                 /* page 1 above the gap */
    vs_memory_note_write(m, 3 * GiB - 4096, 1 * GiB + 8192);    /* across the gap */
    vs_memory_note_write(m, 0xFEE00000, 4);                     /* the LAPIC: not RAM */
    vs_memory_note_write(m, 8 * GiB, 4096);                     /* beyond RAM */
    vs_memory_collect_writes(m, bm);
    uint64_t set = 0;
    for (uint64_t i = 0; i < words; i++)
        set += (uint64_t)__builtin_popcountll(bm[i]);
    assert_int_equal(set, 3);
    assert_true(bm[(below - 1) / 64] >> ((below - 1) % 64) & 1);   /* last page below */
    assert_true(bm[below / 64] >> (below % 64) & 1);                 /* first page above */
    assert_true(bm[(below + 1) / 64] >> ((below + 1) % 64) & 1);
    vs_memory_track_writes(m, false);
    free(bm);
}

/* The guest names its telemetry page by guest-physical address: a page in the gap, or
 * across its start, is refused; one below and one above the gap is fine. */
static void telemetry_page_must_be_ram(void **state)
{
    struct vs_memory *m = *state;
    struct vs_pvport p;
    uint64_t stall;
    vs_pvport_init(&p, m);
    const struct { uint32_t gpa; bool ok; } cases[] = {
        { 0x100000, true }, { 0xC0000000, false }, { 0xFEC00000, false },
        { 0xBFFFF000, true }, { 0xBFFFF800, false }, { 0xFFFFF000, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t v = cases[i].gpa;
        vs_pvport_io(&p, 0, VS_PVPORT_REGISTER, true, &v, &stall);
        assert_int_equal(p.registered, cases[i].ok);
        v = 0;
        vs_pvport_io(&p, 0, VS_PVPORT_DOORBELL, true, &v, &stall);  /* never faults */
    }
    vs_pvport_destroy(&p);
}

static void boot_info_describes_the_layout(void **state)
{
    struct vs_memory *m = *state;
    struct vs_boot_entry e = { VS_BOOT_LONG, VS_KERNEL_ADDR };
    assert_int_equal(vs_boot_write_info(m, &e, "workload=idle"), 0);
    const struct hvm_start_info *si = vs_memory_gpa_ptr(m, VS_BOOT_INFO_ADDR, sizeof(*si));
    assert_int_equal(si->memmap_entries, 3);
    const struct hvm_memmap_table_entry *map =
        vs_memory_gpa_ptr(m, si->memmap_paddr, 3 * sizeof(*map));
    assert_int_equal(map[2].addr, 4 * GiB);
    assert_int_equal(map[2].size, 512 * MiB);
    int ok;
    uint64_t pde;
    assert_int_equal(page_walk(m->base, VS_BOOT_PT_ADDR, 0xFEE00000, &ok, &pde), 0xFEE00000);
    assert_true(ok);
    assert_int_equal(page_walk(m->base, VS_BOOT_PT_ADDR, 4 * GiB + 512 * MiB - 8, &ok, &pde),
                     4 * GiB + 512 * MiB - 8);
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(pc_regions_below_at_and_above_3g),
        cmocka_unit_test(flat_is_one_region_from_zero),
        cmocka_unit_test(gpa_and_offset_translate_both_ways),
        cmocka_unit_test(identity_map_covers_the_gap),
        cmocka_unit_test(e820_lists_every_ram_range),
        cmocka_unit_test(page_tables_reach_the_gap_and_the_top),
    };
    const struct CMUnitTest on_memory[] = {
        cmocka_unit_test(gpa_ptr_refuses_gap_crossing_and_beyond),
        cmocka_unit_test(writes_land_at_ram_offsets),
        cmocka_unit_test(monitor_writes_become_dirty_ram_offsets),
        cmocka_unit_test(telemetry_page_must_be_ram),
        cmocka_unit_test(boot_info_describes_the_layout),
    };
    int failed = cmocka_run_group_tests_name("layout", pure, NULL, NULL);
    return failed + cmocka_run_group_tests_name("pc memory", on_memory, make_pc_memory,
                                                free_pc_memory);
}
