/* The random fault campaign's plans (tests/integration/random_plan.c): a seed always
 * draws the same plan (that is what makes a trial replayable), and the draws stay within
 * what the campaign can run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../integration/random_plan.h"

static void a_seed_draws_the_same_plan_every_time(void **state)
{
    (void)state;
    for (uint64_t seed = 1000; seed < 1100; seed++) {
        struct rplan a, b;
        char da[320], db[320];
        rplan_draw(&a, seed);
        rplan_draw(&b, seed);
        assert_string_equal(rplan_describe(&a, da, sizeof(da)), rplan_describe(&b, db, sizeof(db)));
        assert_int_equal(a.seed, seed);
    }
    struct rplan a, b;
    char da[320], db[320];
    rplan_draw(&a, 7);
    rplan_draw(&b, 8);
    assert_string_not_equal(rplan_describe(&a, da, sizeof(da)), rplan_describe(&b, db, sizeof(db)));
}

static void draws_stay_within_what_a_trial_can_run(void **state)
{
    (void)state;
    unsigned faults[RF_COUNT] = { 0 }, daemon = 0, postcopy = 0, secs[3] = { 0 };
    unsigned devices[RD_NIC + 1] = { 0 };
    for (uint64_t seed = 0; seed < 4000; seed++) {
        struct rplan p;
        rplan_draw(&p, seed * 7919 + 13);
        assert_true(p.mem_mib == 64 || p.mem_mib == 128 || p.mem_mib == 256);
        assert_true(p.vcpus >= 1 && p.vcpus <= 2);
        assert_true(4 + p.range_mib < p.mem_mib);
        assert_true(p.streams >= 1 && p.streams <= 4);
        assert_true(p.codec <= RP_AUTO && p.workload <= RP_NET && p.device <= RD_NIC);
        /* A device goes with its workload, and only on the direct path. */
        assert_true((p.device == RD_DISK) == (p.workload == RP_DISK));
        assert_true((p.device == RD_NIC) == (p.workload == RP_NET));
        assert_true(p.device == RD_NONE || p.path == RP_DIRECT);
        devices[p.device]++;
        assert_true(p.max_bw_mib == 0 || p.mem_mib / p.max_bw_mib <= 4);
        assert_true(rplan_expected_s(&p) > 0 && rplan_expected_s(&p) < 5);
        if (p.fault == RF_KILL_DAEMON)
            assert_int_equal(p.path, RP_DAEMON);   /* there is a daemon to kill */
        if (p.fault == RF_POINT)
            assert_non_null(strchr(p.point, ':'));
        if (p.when == RW_STATUS)
            assert_non_null(p.when_status);
        if (p.postcopy_at_ms >= 0)
            assert_int_equal(p.strategy, RP_POSTCOPY);
        faults[p.fault]++;
        daemon += p.path == RP_DAEMON;
        postcopy += p.strategy == RP_POSTCOPY;
        secs[p.security]++;
    }
    for (int f = 0; f < RF_COUNT; f++)
        assert_true(faults[f] > 0);            /* every kind of fault comes up */
    assert_true(daemon > 500 && daemon < 1500);
    assert_true(postcopy > 1000 && secs[RP_INSECURE] > 1000 && secs[RP_CERT] > 1000);
    assert_true(devices[RD_DISK] > 200 && devices[RD_NIC] > 100);   /* both come up */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_seed_draws_the_same_plan_every_time),
        cmocka_unit_test(draws_stay_within_what_a_trial_can_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
