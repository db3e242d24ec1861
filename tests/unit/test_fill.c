/* Unit tests: host-side RAM fill (src/vmm/fill.c) on a real memfd-backed guest RAM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "vmm/fill.h"
#include "vmm/memory.h"
#include "vmshift/page_format.h"

static void fills_every_word_with_threads(void **state)
{
    (void)state;
    struct vs_memory m;
    assert_int_equal(vs_memory_create(&m, 16ULL << 20), 0);
    const uint64_t start = 4ULL << 20, len = (12ULL << 20) - 4096;
    assert_int_equal(vs_fill_range(&m, start, len, VS_FILL_RANDOM, 3, 3), 0);
    const uint64_t *w = vs_memory_ptr(&m, 0);
    for (uint64_t a = start; a < start + len; a += 8)
        if (w[a / 8] != vs_fill_word(VS_FILL_RANDOM, 3, a))
            fail_msg("word at 0x%llx not filled", (unsigned long long)a);
    assert_int_equal(w[(start - 8) / 8], 0);          /* before the range: untouched */
    assert_int_equal(w[(start + len) / 8], 0);        /* after the range: untouched */
    vs_memory_destroy(&m);
}

static void rejects_bad_ranges_and_names(void **state)
{
    (void)state;
    struct vs_memory m;
    uint32_t f;
    assert_int_equal(vs_memory_create(&m, 8ULL << 20), 0);
    assert_true(vs_fill_range(&m, 4ULL << 20, 8ULL << 20, VS_FILL_PATTERN, 1, 2) < 0);
    assert_non_null(strstr(vs_last_error(), "outside guest RAM"));
    assert_true(vs_fill_range(&m, 3, 8, VS_FILL_PATTERN, 1, 2) < 0);
    assert_int_equal(vs_fill_parse("random", &f), 0);
    assert_int_equal(f, VS_FILL_RANDOM);
    assert_true(vs_fill_parse("ones", &f) < 0);
    assert_non_null(strstr(vs_last_error(), "'ones'"));
    vs_memory_destroy(&m);
}

static void memory_size_checks(void **state)
{
    (void)state;
    struct vs_memory m;
    assert_true(vs_memory_create(&m, 1ULL << 20) < 0);            /* below minimum */
    assert_non_null(strstr(vs_last_error(), "--mem"));
    assert_true(vs_memory_create(&m, (8ULL << 20) + 4096) < 0);   /* not 2 MiB multiple */
    assert_non_null(strstr(vs_last_error(), "multiple of 2 MiB"));
    assert_true(vs_memory_create(&m, 128ULL << 30) < 0);          /* above maximum */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fills_every_word_with_threads),
        cmocka_unit_test(rejects_bad_ranges_and_names),
        cmocka_unit_test(memory_size_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
