/* Unit tests: the RAM digest skips memfd holes yet equals the digest of the same bytes
 * read in full, and changes when any byte changes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migrate/digest.h"
#include "vmm/memory.h"

#define SIZE (224ULL << 20) /* 3.5 digest blocks: 2 with data, 1 all hole, 1 partial */

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(holes_hash_like_zeros),
        cmocka_unit_test(background_digest_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
