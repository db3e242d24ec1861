/* Unit tests: fill words and the verify page format (include/vmshift/page_format.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmshift/page_format.h"

static uint64_t page[VS_PAGE_WORDS];

static void fresh_page_is_good_for_its_generation(void **state)
{
    (void)state;
    vs_verify_write(page, 0x400000, 5, 1);
    assert_int_equal(vs_verify_check(page, 0x400000, 5, 1), VS_VERIFY_OK);
}

static void detects_stale_wrong_torn_and_corrupt_pages(void **state)
{
    (void)state;
    vs_verify_write(page, 0x400000, 5, 1);
    assert_int_equal(vs_verify_check(page, 0x400000, 6, 1), VS_VERIFY_STALE);
    assert_int_equal(vs_verify_check(page, 0x401000, 5, 1), VS_VERIFY_WRONG_ADDR);
    assert_int_equal(vs_verify_check(page, 0x400000, 5, 2), VS_VERIFY_BAD_SUM);

    /* a page whose header was updated but whose trailer was not: torn */
    uint64_t old_trailer = page[VS_PAGE_WORDS - 1];
    vs_verify_write(page, 0x400000, 6, 1);
    page[VS_PAGE_WORDS - 1] = old_trailer;
    assert_int_equal(vs_verify_check(page, 0x400000, 6, 1), VS_VERIFY_TORN);

    /* a flipped bit in the generation breaks the checksum */
    vs_verify_write(page, 0x400000, 6, 1);
    page[1] ^= 1;
    assert_int_equal(vs_verify_check(page, 0x400000, 6, 1), VS_VERIFY_BAD_SUM);

    /* an all-zero page (never written, or lost) is never good */
    memset(page, 0, sizeof(page));
    assert_int_not_equal(vs_verify_check(page, 0x400000, 1, 1), VS_VERIFY_OK);
}

static void fill_words_are_deterministic_and_distinct(void **state)
{
    (void)state;
    assert_int_equal(vs_fill_word(VS_FILL_NONE, 1, 0x400000), 0);
    assert_int_equal(vs_fill_word(VS_FILL_PATTERN, 1, 0x400008), 0xa500000000400008ULL);
    uint64_t a = vs_fill_word(VS_FILL_RANDOM, 1, 0x400000);
    assert_int_equal(a, vs_fill_word(VS_FILL_RANDOM, 1, 0x400000));
    assert_int_not_equal(a, vs_fill_word(VS_FILL_RANDOM, 2, 0x400000));
    assert_int_not_equal(a, vs_fill_word(VS_FILL_RANDOM, 1, 0x400008));
    /* random words look random: about half the bits set over many words */
    unsigned bits = 0;
    for (uint64_t i = 0; i < 1024; i++)
        bits += (unsigned)__builtin_popcountll(vs_fill_word(VS_FILL_RANDOM, 7, i * 8));
    assert_in_range(bits, 1024 * 32 - 1024, 1024 * 32 + 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fresh_page_is_good_for_its_generation),
        cmocka_unit_test(detects_stale_wrong_torn_and_corrupt_pages),
        cmocka_unit_test(fill_words_are_deterministic_and_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
