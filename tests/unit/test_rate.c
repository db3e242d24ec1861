/* Unit tests: rate parsing (src/common/rate.c): link bandwidths and dirty rates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expect_error.h"
#include "common/rate.h"

static void assert_rate(const char *text, double want)
{
    double v = -1;
    int rc = vs_parse_rate(text, &v);
    if (rc || v < want * 0.999999 || v > want * 1.000001)
        fail_msg("'%s': rc %d, %f bytes/s (wanted %f): %s", text, rc, v, want, vs_last_error());
}

static void parses_every_unit(void **state)
{
    (void)state;
    assert_rate("10gbit", 1.25e9);          /* bits, decimal, as tc writes them */
    assert_rate("400mbit", 5e7);
    assert_rate("2.5Gbit", 3.125e8);
    assert_rate("100kbit", 12500);
    assert_rate("8bit", 1);
    assert_rate("100M", 100.0 * 1048576);   /* bytes, binary, as --max-bandwidth */
    assert_rate("1.5G", 1.5 * 1073741824);
    assert_rate("512MiB/s", 512.0 * 1048576);
    assert_rate("4K", 4096);
    assert_rate("20000p", 20000.0 * 4096);  /* pages */
    assert_rate("3pages/s", 3.0 * 4096);
    assert_rate("125000000", 1.25e8);       /* plain bytes/s */
}

static void rejects_junk(void **state)
{
    (void)state;
    double v = 7;
    expect_msg(vs_parse_rate("", &v), "not a rate", NULL);
    expect_msg(vs_parse_rate("fast", &v), "'fast' is not a rate", NULL);
    expect_msg(vs_parse_rate("10Q", &v), "unknown unit 'Q'", NULL);
    expect_msg(vs_parse_rate("-5M", &v), "not a rate", NULL);
    expect_msg(vs_parse_rate("10 gbit", &v), "unknown unit", NULL);
    expect_msg(vs_parse_rate("1e999gbit", &v), "not a rate", NULL);
    assert_true(v == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_every_unit),
        cmocka_unit_test(rejects_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
