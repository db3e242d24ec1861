/* Unit tests: the data runs of guest RAM (vs_memory_next_data) and the first pass's hole
 * skipping (vs_memory_drop_holes) agree with the host's own account, page by page (the
 * memfd's SEEK_DATA; for anonymous RAM the pages /proc/self/pagemap says the process
 * holds), before and after the remembered data blocks come into play, and after holes
 * turn into data; RAM released after a migration (vs_memory_release) or discarded
 * (vs_memory_discard) holds nothing. Each test runs on both backings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <fcntl.h>

#include "vmm/memory.h"

#define SIZE (64ULL << 20)
#define NPAGES (SIZE / 4096)

/* The reference: one lseek, or one pagemap entry, per page. */
static int page_has_data(const struct vs_memory *m, uint64_t p)
{
    if (m->backing == VS_RAM_BACKING_ANON) {
        uint64_t e = 0;
        int fd = open("/proc/self/pagemap", O_RDONLY);
        assert_true(fd >= 0);
        off_t at = (off_t)(((uintptr_t)m->base / 4096 + p) * 8);
        assert_int_equal(pread(fd, &e, 8, at), 8);
        close(fd);
        return (e >> 62) != 0;   /* present or swapped */
    }
    off_t d = lseek(m->memfd, (off_t)(p * 4096), SEEK_DATA);
    return d >= 0 && (uint64_t)d == p * 4096;
}

static enum vs_ram_backing backing_of(void **state)
{
    return (enum vs_ram_backing)(uintptr_t)*state;
}

static void create(struct vs_memory *m, void **state)
{
    assert_int_equal(vs_memory_create_layout(m, SIZE, false, backing_of(state)), 0);
    assert_int_equal(m->backing, backing_of(state));
}

/* Every page of [0, SIZE) is reported as data by vs_memory_next_data exactly when the
 * memfd holds it, asked in pieces of `step` bytes. */
static void check_runs(const struct vs_memory *m, uint64_t step)
{
    for (uint64_t lo = 0; lo < SIZE; lo += step) {
        uint64_t hi = lo + step < SIZE ? lo + step : SIZE, pos = lo;
        while (pos < hi) {
            uint64_t run_end, data = vs_memory_next_data(m, pos, hi, &run_end);
            assert_true(data >= pos && data <= hi);
            for (uint64_t p = pos / 4096; p < data / 4096; p++)
                assert_false(page_has_data(m, p));
            if (data == hi)
                break;
            assert_true(run_end > data && run_end <= hi);
            for (uint64_t p = data / 4096; p < run_end / 4096; p++)
                assert_true(page_has_data(m, p));
            pos = run_end;
        }
    }
}

static void check_drop_holes(const struct vs_memory *m)
{
    uint64_t *bm = malloc(NPAGES / 8);
    assert_non_null(bm);
    memset(bm, 0xff, NPAGES / 8);
    uint64_t dropped = vs_memory_drop_holes(m, bm, 0, NPAGES), holes = 0;
    for (uint64_t p = 0; p < NPAGES; p++) {
        int kept = (bm[p / 64] >> (p % 64)) & 1;
        assert_int_equal(kept, page_has_data(m, p));
        holes += !kept;
    }
    assert_int_equal(dropped, holes);
    free(bm);
}

static void runs_match_the_host(void **state)
{
    struct vs_memory m;
    create(&m, state);
    /* A page, a run crossing 2 MiB blocks, a fully written stretch, the last page. */
    memset(m.base + 4096 * 9, 1, 4096);
    memset(m.base + (3ULL << 20) + 8192, 2, (5ULL << 20));
    memset(m.base + (20ULL << 20), 3, 24ULL << 20);
    m.base[SIZE - 1] = 4;
    for (int round = 0; round < 2; round++) {   /* the second round uses what was learnt */
        check_runs(&m, SIZE);
        check_runs(&m, 16ULL << 20);
        check_runs(&m, 1ULL << 20);
        check_drop_holes(&m);
    }
    /* Holes become data: nothing learnt before may hide them. */
    m.base[(50ULL << 20) + 77] = 5;
    memset(m.base + (1ULL << 20), 6, 4096);
    check_runs(&m, 16ULL << 20);
    check_drop_holes(&m);
    vs_memory_destroy(&m);
}

/* RAM written in full is one run, whatever piece is asked, and every 2 MiB block is
 * remembered after the first scan (no second scan to the end of the run). */
static void full_ram_is_one_run(void **state)
{
    struct vs_memory m;
    create(&m, state);
    memset(m.base, 0xa5, SIZE);
    uint64_t run_end;
    assert_int_equal(vs_memory_next_data(&m, 4096, SIZE, &run_end), 4096);
    assert_int_equal(run_end, SIZE);
    for (uint64_t b = 1; b < SIZE / (2ULL << 20); b++)
        assert_true((m.data_blocks[b / 64] >> (b % 64)) & 1);
    assert_int_equal(vs_memory_next_data(&m, 40ULL << 20, 42ULL << 20, &run_end), 40ULL << 20);
    assert_int_equal(run_end, 42ULL << 20);
    check_drop_holes(&m);
    vs_memory_destroy(&m);
}

/* A VM that left gives its RAM back: no page is held any more, and the mapping
 * stays (a late access reads zeros instead of crashing the monitor). */
static void released_ram_holds_nothing(void **state)
{
    struct vs_memory m;
    create(&m, state);
    memset(m.base, 0xa5, SIZE);
    assert_true(vs_memory_allocated(&m) >= SIZE);
    assert_false(vs_memory_released(&m));
    assert_int_equal(vs_memory_release(&m), 0);
    assert_true(vs_memory_released(&m));
    assert_int_equal(vs_memory_allocated(&m), 0);
    for (uint64_t p = 0; p < NPAGES; p += 997)
        assert_false(page_has_data(&m, p));
    assert_int_equal(m.base[SIZE / 2], 0);
    vs_memory_destroy(&m);
}

/* Dropped pages (post-copy drops the stale ones its source sends again) hold nothing
 * and read as zero; their neighbours keep their contents. */
static void discarded_pages_hold_nothing(void **state)
{
    struct vs_memory m;
    create(&m, state);
    memset(m.base, 0x5a, 8ULL << 20);
    assert_int_equal(vs_memory_discard(&m, 1ULL << 20, 3 * 4096), 0);
    for (uint64_t p = 256; p < 259; p++) {
        assert_false(page_has_data(&m, p));
        assert_int_equal(m.base[p * 4096 + 5], 0);
    }
    assert_true(page_has_data(&m, 255));
    assert_int_equal(m.base[255 * 4096], 0x5a);
    assert_int_equal(m.base[259 * 4096], 0x5a);
    vs_memory_destroy(&m);
}

#define BOTH(f) cmocka_unit_test_prestate(f, (void *)(uintptr_t)VS_RAM_BACKING_MEMFD), \
                cmocka_unit_test_prestate(f, (void *)(uintptr_t)VS_RAM_BACKING_ANON)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(runs_match_the_host),
        BOTH(full_ram_is_one_run),
        BOTH(released_ram_holds_nothing),
        BOTH(discarded_pages_hold_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
