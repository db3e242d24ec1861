/* Unit tests: the auto-parallelism controller of vmshift evacuate (src/evacuate/parallelism.c),
 * driven by simulated links: each test models the aggregate throughput as a function of
 * the number of migrations running and feeds the controller what a drain would show. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "evacuate/parallelism.h"

#define TICK_S 0.1

typedef double (*rate_fn)(unsigned degree);   /* bytes/s with this many migrations */

/* Run the controller on a drain with `vms` VMs each needing `bytes_per_vm`, where
 * migrations share the rate evenly; returns the drain time. *max_seen gets the highest
 * degree used, *final the degree it ran at longest. */
static double simulate(rate_fn rate, unsigned max_degree, unsigned vms, double bytes_per_vm,
                       unsigned *max_seen, unsigned *final)
{
    double time_at[65] = { 0 };
    struct par_controller c;
    par_init(&c, max_degree);
    double left[64];
    unsigned started = 0, done = 0;
    unsigned running[64], nrun = 0;
    double t = 0;
    *max_seen = c.degree;
    while (done < vms) {
        while (nrun < c.degree && started < vms) {
            left[started] = bytes_per_vm;
            running[nrun++] = started++;
        }
        double total = rate(nrun), sent = 0;
        for (unsigned i = 0; i < nrun; i++) {
            double b = total / nrun * TICK_S;
            if (b > left[running[i]])
                b = left[running[i]];
            left[running[i]] -= b;
            sent += b;
        }
        struct par_sample s = { .dt_s = TICK_S, .bytes = sent, .active = nrun,
                                .waiting = vms - started };
        for (unsigned i = 0; i < nrun;) {
            if (left[running[i]] <= 0) {
                running[i] = running[--nrun];
                done++;
            } else {
                i++;
            }
        }
        par_update(&c, &s);
        if (c.degree > *max_seen)
            *max_seen = c.degree;
        time_at[c.degree] += TICK_S;
        assert_true(c.degree >= 1 && c.degree <= max_degree);
        t += TICK_S;
        assert_true(t < 10000);
    }
    /* "final": the degree it spent the most time at. */
    *final = 1;
    for (unsigned d = 1; d <= max_degree; d++)
        if (time_at[d] > time_at[*final])
            *final = d;
    return t;
}

/* A link one migration fills: more only split it. */
static double saturated_by_one(unsigned d)
{
    (void)d;
    return 400e6;
}

/* Each migration is limited to 100 MB/s (its CPU), the link to 400 MB/s. */
static double knee_at_four(unsigned d)
{
    return d * 100e6 < 400e6 ? d * 100e6 : 400e6;
}

/* Beyond two, migrations fight: the aggregate falls. */
static double fights_above_two(unsigned d)
{
    return d <= 2 ? d * 150e6 : 300e6 / (1 + 0.3 * (d - 2));
}

static void climbs_while_throughput_grows(void **state)
{
    (void)state;
    unsigned max_seen, final;
    simulate(knee_at_four, 8, 32, 200e6, &max_seen, &final);
    assert_true(max_seen >= 4);
    assert_int_equal(final, 4);
}

static void does_not_climb_on_a_saturated_link(void **state)
{
    (void)state;
    unsigned max_seen, final;
    simulate(saturated_by_one, 8, 32, 200e6, &max_seen, &final);
    /* It probes (4 once, and one more now and then) but comes back. */
    assert_true(final <= 2);
}

static void backs_off_when_migrations_fight(void **state)
{
    (void)state;
    unsigned max_seen, final;
    double t_auto = simulate(fights_above_two, 8, 32, 200e6, &max_seen, &final);
    assert_int_equal(final, 2);
    /* Not slower than the worst fixed choice among 1, 2, 4, 8 (a fixed controller is the
     * same simulation with max_degree pinned; approximate it by the rate model). */
    double worst = 0;
    for (unsigned d = 1; d <= 8; d *= 2) {
        double t = 32 * 200e6 / fights_above_two(d);
        worst = t > worst ? t : worst;
    }
    assert_true(t_auto <= worst);
}

static void never_exceeds_the_vms_left(void **state)
{
    (void)state;
    struct par_controller c;
    par_init(&c, 8);
    assert_int_equal(c.degree, PAR_START_DEGREE);
    /* Three VMs left: it may go to 3 at most, whatever the throughput says. */
    for (int i = 0; i < 100; i++) {
        struct par_sample s = { .dt_s = TICK_S, .bytes = 1e8 * c.degree * TICK_S,
                                .active = c.degree, .waiting = 3 - c.degree };
        par_update(&c, &s);
        assert_true(c.degree <= 3);
    }
}

static void struggling_migrations_halve_the_degree(void **state)
{
    (void)state;
    struct par_controller c;
    par_init(&c, 8);
    c.degree = 8;
    c.ceiling = 8;
    for (int i = 0; i < 40 && c.degree == 8; i++) {
        struct par_sample s = { .dt_s = TICK_S, .bytes = 1e7, .active = 8, .struggling = 3,
                                .waiting = 10 };
        par_update(&c, &s);
    }
    assert_int_equal(c.degree, 4);
    assert_non_null(strstr(c.reason, "did not converge"));
    /* It does not go back above what fought right away. */
    for (int i = 0; i < 30; i++) {
        struct par_sample s = { .dt_s = TICK_S, .bytes = 1e9 * TICK_S, .active = c.degree,
                                .waiting = 10 };
        par_update(&c, &s);
        assert_true(c.degree <= 7);
    }
}

static void ignores_intervals_that_do_not_show_the_degree(void **state)
{
    (void)state;
    struct par_controller c;
    par_init(&c, 8);
    /* A slot is free (one migration just ended): no decision on these. */
    for (int i = 0; i < 200; i++) {
        struct par_sample s = { .dt_s = TICK_S, .bytes = 1e9, .active = 1, .waiting = 5 };
        assert_int_equal(par_update(&c, &s), PAR_START_DEGREE);
    }
    /* Nothing left to start: the degree stays. */
    for (int i = 0; i < 200; i++) {
        struct par_sample s = { .dt_s = TICK_S, .bytes = 1e9, .active = 2, .waiting = 0 };
        assert_int_equal(par_update(&c, &s), PAR_START_DEGREE);
    }
    assert_int_equal(c.changes, 0);
}

static void struggle_rule(void **state)
{
    (void)state;
    assert_false(par_is_struggling(1, 1e9, 1e6));      /* the first pass sends everything */
    assert_true(par_is_struggling(3, 90e6, 100e6));
    assert_false(par_is_struggling(3, 50e6, 100e6));
    assert_false(par_is_struggling(3, 50e6, 0));
}

static void max_degree_one_stays_one(void **state)
{
    (void)state;
    unsigned max_seen, final;
    simulate(knee_at_four, 1, 8, 100e6, &max_seen, &final);
    assert_int_equal(max_seen, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(climbs_while_throughput_grows),
        cmocka_unit_test(does_not_climb_on_a_saturated_link),
        cmocka_unit_test(backs_off_when_migrations_fight),
        cmocka_unit_test(never_exceeds_the_vms_left),
        cmocka_unit_test(struggling_migrations_halve_the_degree),
        cmocka_unit_test(ignores_intervals_that_do_not_show_the_degree),
        cmocka_unit_test(struggle_rule),
        cmocka_unit_test(max_degree_one_stays_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
