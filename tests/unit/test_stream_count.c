/* The default stream count: one per CPU up to 16, at most one per 5 Gbit/s of a link of
 * known speed, at least one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "migrate/precopy/stream_count.h"

#define GBIT 1000000000ULL

static void one_per_cpu_up_to_16(void **state)
{
    (void)state;
    assert_int_equal(vs_stream_count_choose(1, 0), 1);
    assert_int_equal(vs_stream_count_choose(2, 0), 2);
    assert_int_equal(vs_stream_count_choose(8, 0), 8);
    assert_int_equal(vs_stream_count_choose(16, 0), 16);
    assert_int_equal(vs_stream_count_choose(96, 0), 16);
}

static void unknown_cpus_give_one(void **state)
{
    (void)state;
    assert_int_equal(vs_stream_count_choose(0, 0), 1);
    assert_int_equal(vs_stream_count_choose(-1, 0), 1);
}

static void the_link_caps_it(void **state)
{
    (void)state;
    assert_int_equal(vs_stream_count_choose(64, 100 * GBIT), 16);   /* 20 by the link */
    assert_int_equal(vs_stream_count_choose(64, 25 * GBIT), 5);
    assert_int_equal(vs_stream_count_choose(64, 10 * GBIT), 2);
    assert_int_equal(vs_stream_count_choose(4, 25 * GBIT), 4);      /* the CPUs cap it */
    assert_int_equal(vs_stream_count_choose(32, 1 * GBIT), 1);      /* slow link: one */
    assert_int_equal(vs_stream_count_choose(32, 100000000ULL), 1);
}

static void loopback_has_no_speed(void **state)
{
    (void)state;
    assert_int_equal(vs_link_speed_towards("127.0.0.1"), 0);
    assert_int_equal(vs_link_speed_towards("no-such-host.invalid"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_per_cpu_up_to_16),
        cmocka_unit_test(unknown_cpus_give_one),
        cmocka_unit_test(the_link_caps_it),
        cmocka_unit_test(loopback_has_no_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
