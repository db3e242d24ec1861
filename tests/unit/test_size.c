/* Unit tests: size and number parsing (src/common/size.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/size.h"

static void parses_suffixes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(vs_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(vs_parse_size("4K", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(vs_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ULL << 20);
    assert_int_equal(vs_parse_size("4G", &v), 0);
    assert_int_equal(v, 4ULL << 30);
    assert_int_equal(vs_parse_size("4GiB", &v), 0);
    assert_int_equal(v, 4ULL << 30);
    assert_int_equal(vs_parse_size("2t", &v), 0);
    assert_int_equal(v, 2ULL << 40);
    assert_int_equal(vs_parse_size("0x400000", &v), 0);
    assert_int_equal(v, 0x400000);
    assert_int_equal(vs_parse_size("10B", &v), 0);
    assert_int_equal(v, 10);
}

static void rejects_bad_sizes(void **state)
{
    (void)state;
    uint64_t v = 77;
    const char *bad[] = { "", "G", "-1", "4Q", "4GX", "4 G", "12Qb", "1BB", "abc" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_true(vs_parse_size(bad[i], &v) < 0);
        assert_true(strlen(vs_last_error()) > 0);
    }
    assert_int_equal(v, 77); /* untouched on error */
    assert_int_equal(vs_parse_size("99999999999999999999", &v), -ERANGE);
    assert_int_equal(vs_parse_size("17179869184G", &v), -ERANGE);
    assert_non_null(strstr(vs_last_error(), "17179869184G"));
}

static void parses_plain_numbers(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(vs_parse_u64("42", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(vs_parse_u64("0x10", &v), 0);
    assert_int_equal(v, 16);
    assert_true(vs_parse_u64("4K", &v) < 0);
    assert_true(vs_parse_u64("", &v) < 0);
}

static void formats_sizes(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(vs_format_size(512, buf, sizeof(buf)), "512 B");
    assert_string_equal(vs_format_size(4ULL << 30, buf, sizeof(buf)), "4.0 GiB");
    assert_string_equal(vs_format_size(1536ULL << 20, buf, sizeof(buf)), "1.5 GiB");
}

static void error_context_prefixes(void **state)
{
    (void)state;
    assert_int_equal(vs_fail(EINVAL, "inner %d", 7), -EINVAL);
    assert_int_equal(vs_fail_context(-EINVAL, "outer"), -EINVAL);
    assert_string_equal(vs_last_error(), "outer: inner 7");
    assert_int_equal(vs_fail(0, "x"), -EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_suffixes),
        cmocka_unit_test(rejects_bad_sizes),
        cmocka_unit_test(parses_plain_numbers),
        cmocka_unit_test(formats_sizes),
        cmocka_unit_test(error_context_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
