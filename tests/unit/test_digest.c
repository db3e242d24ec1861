/* Unit tests: the RAM digest skips memfd holes yet equals the digest of the same bytes
 * read in full, and changes when any byte changes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/clock.h"
#include "migrate/state/digest.h"
#include "migrate/state/digest_tracker.h"
#include "vmm/memory.h"

#define SIZE (224ULL << 20) /* 112 digest blocks: some with data, most all hole */

/* The same bytes in plain memory (no memfd: everything is read). */
static uint64_t plain_digest(const struct vs_memory *m)
{
    struct vs_memory copy = { .memfd = -1, .size = m->size, .base = malloc(m->size) };
    assert_non_null(copy.base);
    memcpy(copy.base, m->base, m->size);
    uint64_t d;
    assert_int_equal(vs_digest_ram(&copy, 2, &d), 0);
    free(copy.base);
    return d;
}

static void holes_hash_like_zeros(void **state)
{
    (void)state;
    struct vs_memory m;
    assert_int_equal(vs_memory_create(&m, SIZE), 0);
    /* data here and there: a page, a run, the last page; the rest stays holes, and the
     * block [128 MiB, 192 MiB) is one hole */
    memset(m.base + 4096 * 7, 0x5a, 4096);
    memset(m.base + (70ULL << 20) + 123, 0x77, 3 << 20);
    m.base[SIZE - 1] = 1;
    uint64_t d1, d2;
    assert_int_equal(vs_digest_ram(&m, 2, &d1), 0);
    /* the memfd still has holes: the digest did not allocate what it hashed as zeros */
    assert_true(vs_memory_allocated(&m) < SIZE / 2);
    assert_int_equal(d1, plain_digest(&m)); /* (this read allocates everything) */
    m.base[(150ULL << 20) + 5] = 9; /* one byte in the block that was all hole */
    assert_int_equal(vs_digest_ram(&m, 1, &d2), 0);
    assert_int_not_equal(d1, d2);
    assert_int_equal(d2, plain_digest(&m));
    vs_memory_destroy(&m);
}

static void background_digest_matches(void **state)
{
    (void)state;
    struct vs_memory m;
    assert_int_equal(vs_memory_create(&m, SIZE), 0);
    memset(m.base + (1ULL << 20), 0x33, 8 << 20);
    struct vs_digest_job *j;
    uint64_t d1, d2, ns;
    assert_int_equal(vs_digest_start(&j, &m, 1), 0);
    assert_int_equal(vs_digest_finish(j, &d1, &ns), 0);
    assert_int_equal(vs_digest_ram(&m, 2, &d2), 0);
    assert_int_equal(d1, d2);
    vs_memory_destroy(&m);
}

/* The tracker's digest, kept current while RAM changes, equals a full digest at the end:
 * marked changes are re-hashed, and a change racing the background hash is not lost. */
static void tracker_follows_changes(void **state)
{
    (void)state;
    struct vs_memory m;
    assert_int_equal(vs_memory_create(&m, SIZE), 0);
    struct vs_digest_tracker *t;
    assert_int_equal(vs_digest_tracker_new(&t, &m), 0);
    assert_int_equal(vs_digest_tracker_start(t, 1), 0);
    for (int round = 0; round < 40; round++) {
        uint64_t off = ((uint64_t)round * 7919 * 4096) % (SIZE - 4096);
        memset(m.base + off, round + 1, 4096);
        vs_digest_mark(t, off, 4096);
        if (round % 10 == 0)
            vs_sleep_ns(20000000ULL);      /* let the background thread catch up */
    }
    vs_sleep_ns(50000000ULL);
    uint64_t d1, d2, rehashed;
    assert_int_equal(vs_digest_tracker_finish(t, 2, &d1, &rehashed), 0);
    assert_int_equal(vs_digest_ram(&m, 2, &d2), 0);
    assert_int_equal(d1, d2);
    /* A change the tracker is not told about is not seen: marking is the contract. */
    m.base[12345] ^= 1;
    assert_int_equal(vs_digest_tracker_finish(t, 1, &d1, NULL), 0);
    assert_int_not_equal(d1, plain_digest(&m));
    vs_digest_mark(t, 12345, 1);
    assert_int_equal(vs_digest_tracker_finish(t, 1, &d1, &rehashed), 0);
    assert_int_equal(rehashed, 1);
    assert_int_equal(d1, plain_digest(&m));
    vs_digest_tracker_free(t);
    vs_memory_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(holes_hash_like_zeros),
        cmocka_unit_test(background_digest_matches),
        cmocka_unit_test(tracker_follows_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
