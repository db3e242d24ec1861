/* Unit tests: the pre-copy convergence model and policy (src/migrate/convergence/converge_model.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expect_error.h"
#include "migrate/convergence/converge_model.h"

#define MB (1024.0 * 1024.0)

static struct vs_conv_sim sim(double ram, double bw, double rate, double ws, double limit)
{
    struct vs_conv_sim s;
    memset(&s, 0, sizeof(s));
    s.first_pass_bytes = ram;
    s.link = (struct vs_conv_link){ .bandwidth = bw, .dirty_rate = rate, .working_set = ws };
    s.policy.downtime_limit_ms = limit;
    s.policy.max_passes = 30;
    return s;
}

/* The pre-copy table of the vMotion write-up (2048 MB at 128 MB/s, a quarter of that
 * dirtied meanwhile: 2048, 512, 128, 32, then 8 MB in the blackout), as vmshift does it:
 * pass 0 sends what the guest writes ahead of it right away, so half of its writes are
 * left for pass 1 (2048, 256, 64, 16, then 4 MB). */
static void reproduces_the_textbook_table(void **state)
{
    (void)state;
    struct vs_conv_sim in = sim(2048 * MB, 128 * MB, 32 * MB, 0, 100);
    in.setup_ms = 10;
    in.switchover_ms = 20;
    struct vs_conv_plan p;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_CONVERGES);
    assert_int_equal(p.precopy_passes, 4);
    assert_int_equal(p.nr_rows, 5);
    const double to_send[] = { 2048, 256, 64, 16, 4 };
    const double seconds[] = { 16, 2, 0.5, 0.125, 0.03125 };
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(p.rows[i].pass, i);
        assert_true(p.rows[i].to_send / MB > to_send[i] - 1e-6 &&
                    p.rows[i].to_send / MB < to_send[i] + 1e-6);
        assert_true(p.rows[i].seconds > seconds[i] - 1e-9 && p.rows[i].seconds < seconds[i] + 1e-9);
        assert_int_equal(p.rows[i].final, i == 4);
    }
    assert_true(p.downtime_ms > 51.2 && p.downtime_ms < 51.3);     /* 31.25 + 20 */
    assert_true(p.total_ms > 18686 && p.total_ms < 18687);        /* 10 + 18625 + 51.25 */
    assert_true(p.transferred / MB > 2387.9 && p.transferred / MB < 2388.1);
    assert_true(p.throttle == 0 && p.guest_stall_ms == 0);
}

/* Dirtying faster than the link: the passes grow to the working set and stay there;
 * plain pre-copy gives up at max_passes, never switches over blind. */
static void plain_precopy_gives_up_when_not_converging(void **state)
{
    (void)state;
    struct vs_conv_sim in = sim(1024 * MB, 100 * MB, 200 * MB, 256 * MB, 300);
    in.policy.max_passes = 6;
    struct vs_conv_plan p;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_GIVES_UP);
    assert_int_equal(p.precopy_passes, 6);
    assert_int_equal(p.nr_rows, 6);
    for (unsigned i = 1; i < p.nr_rows; i++)
        assert_true(p.rows[i].to_send == 256 * MB);
    assert_true(p.floor_ms > 2559 && p.floor_ms < 2561);           /* 256 MB / 100 MB/s */
    /* Until cancelled: it runs on. */
    in.policy.max_passes = 0;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_RUNS_ON);
}

/* A small working set rewritten fast still converges: a pass never finds more dirty than
 * the working set, and 16 MB go in 160 ms. Without the bound the model would say no. */
static void a_small_working_set_converges(void **state)
{
    (void)state;
    struct vs_conv_sim in = sim(1024 * MB, 100 * MB, 400 * MB, 16 * MB, 300);
    struct vs_conv_plan p;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_CONVERGES);
    assert_int_equal(p.precopy_passes, 1);
    assert_true(p.downtime_ms > 159 && p.downtime_ms < 161);
    in.link.working_set = 0;
    vs_conv_simulate(&in, &p);
    assert_int_not_equal(p.outcome, VS_CONV_CONVERGES);
}

/* The schedule raises the limit one step per stall until the working set fits. */
static void the_schedule_raises_the_limit_step_by_step(void **state)
{
    (void)state;
    struct vs_conv_sim in = sim(1024 * MB, 100 * MB, 150 * MB, 80 * MB, 300);   /* 800 ms */
    in.policy.schedule_ms[0] = 500;
    in.policy.schedule_ms[1] = 1000;
    in.policy.nr_steps = 2;
    assert_int_equal(vs_conv_check_policy(&in.policy), 0);
    struct vs_conv_plan p;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_CONVERGES);
    assert_true(p.downtime_ms > 799 && p.downtime_ms < 801);
    /* One pass for all RAM, then one stall per step (each one pass: the model knows). */
    assert_int_equal(p.precopy_passes, 3);
    assert_true(p.rows[1].limit_ms == 500 && p.rows[2].limit_ms == 1000);
    /* A hard maximum below the step needed: the schedule itself is refused ... */
    in.policy.max_downtime_ms = 600;
    expect_msg(vs_conv_check_policy(&in.policy), "1000 ms", "--max-downtime 600");
    /* ... and with only the steps it allows, it never switches over. */
    in.policy.nr_steps = 1;
    in.policy.max_passes = 8;
    assert_int_equal(vs_conv_check_policy(&in.policy), 0);
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_GIVES_UP);
}

/* The hard maximum caps whatever limit is in force. */
static void max_downtime_caps_the_limit(void **state)
{
    (void)state;
    struct vs_conv_policy pol = { .downtime_limit_ms = 300, .max_downtime_ms = 200 };
    struct vs_conv_state st = { 0 };
    expect_msg(vs_conv_check_policy(&pol), "--downtime-limit 300", "--max-downtime 200");
    st.limit_ms = 300;
    assert_true(vs_conv_effective_limit_ms(&pol, &st) == 200);
    struct vs_conv_link l = { .bandwidth = 100 * MB, .dirty_rate = 1 * MB };
    bool raised;
    /* 25 MB = 250 ms: within the limit, above the maximum. */
    assert_int_equal(vs_conv_after_pass(&pol, &st, 100 * MB, 25 * MB, &l, &raised),
                     VS_CONV_NEXT_PASS);
    assert_int_equal(vs_conv_after_pass(&pol, &st, 25 * MB, 15 * MB, &l, &raised),
                     VS_CONV_SWITCHOVER);
}

/* Throttle: engaged on the first stall, each throttled pass shrinks, the guest pays. */
static void throttle_converges_and_counts_the_stall(void **state)
{
    (void)state;
    struct vs_conv_sim in = sim(1024 * MB, 100 * MB, 300 * MB, 512 * MB, 300);
    in.policy.converge = VS_CONVERGE_THROTTLE;
    struct vs_conv_plan p;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_CONVERGES);
    assert_true(p.downtime_ms <= 300);
    /* Pass 0 (all RAM) shrinks; pass 1 sends the working set and does not: throttled
     * from pass 2 on, reaching the limit within VS_CONV_THROTTLE_PASSES more. */
    assert_true(p.rows[1].dirty_rate == 300 * MB);
    assert_true(p.rows[2].dirty_rate < 100 * MB * 0.76);
    assert_true(p.precopy_passes <= 2 + VS_CONV_THROTTLE_PASSES);
    for (unsigned i = 3; i < p.nr_rows; i++)
        assert_true(p.rows[i].to_send <= p.rows[i - 1].to_send * 0.76);
    assert_true(p.throttle > 0.75 && p.throttle < 1);
    assert_true(p.guest_stall_ms > 0 && p.guest_stall_ms < p.throttled_ms);
    /* Plain pre-copy with the same numbers does not converge. */
    in.policy.converge = VS_CONVERGE_NONE;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_GIVES_UP);
}

static void postcopy_is_asked_for_on_a_stall(void **state)
{
    (void)state;
    struct vs_conv_sim in = sim(1024 * MB, 100 * MB, 300 * MB, 512 * MB, 300);
    in.policy.converge = VS_CONVERGE_POSTCOPY;
    struct vs_conv_plan p;
    vs_conv_simulate(&in, &p);
    assert_int_equal(p.outcome, VS_CONV_TO_POSTCOPY);
    assert_int_equal(p.precopy_passes, 2);
    assert_true(vs_converge_should_switch_postcopy(VS_CONV_POSTCOPY));
    assert_false(vs_converge_should_switch_postcopy(VS_CONV_THROTTLE));
    assert_false(vs_converge_should_switch_postcopy(VS_CONV_NEXT_PASS));
}

/* --converge auto: throttle while it stays shallow, post-copy once it would take away more
 * than VS_CONV_AUTO_MAX_THROTTLE of the guest's dirtying. */
static void auto_throttles_or_goes_postcopy(void **state)
{
    (void)state;
    struct vs_conv_plan p;
    /* 3x the link: a throttle deeper than 80% is needed. */
    struct vs_conv_sim deep = sim(1024 * MB, 100 * MB, 300 * MB, 512 * MB, 300);
    deep.policy.converge = VS_CONVERGE_AUTO;
    vs_conv_simulate(&deep, &p);
    assert_int_equal(p.outcome, VS_CONV_TO_POSTCOPY);
    deep.policy.converge = VS_CONVERGE_THROTTLE;   /* the throttle alone would go that deep */
    vs_conv_simulate(&deep, &p);
    assert_int_equal(p.outcome, VS_CONV_CONVERGES);
    assert_true(p.throttle > VS_CONV_AUTO_MAX_THROTTLE);
    /* Just above the link: a mild throttle does it, as with --converge throttle. */
    struct vs_conv_sim mild = sim(1024 * MB, 100 * MB, 110 * MB, 512 * MB, 300);
    mild.policy.converge = VS_CONVERGE_AUTO;
    vs_conv_simulate(&mild, &p);
    assert_int_equal(p.outcome, VS_CONV_CONVERGES);
    assert_true(p.throttle > 0 && p.throttle <= VS_CONV_AUTO_MAX_THROTTLE);
    /* The rule itself. */
    struct vs_conv_policy pol = { .converge = VS_CONVERGE_AUTO };
    assert_true(vs_conv_throttle_too_deep(&pol, 10 * MB, 100 * MB));
    assert_false(vs_conv_throttle_too_deep(&pol, 30 * MB, 100 * MB));
    pol.converge = VS_CONVERGE_THROTTLE;
    assert_false(vs_conv_throttle_too_deep(&pol, 10 * MB, 100 * MB));
}

/* Two passes that do not shrink are a stall even when the model is optimistic. */
static void two_flat_passes_are_a_stall(void **state)
{
    (void)state;
    struct vs_conv_policy pol = { .downtime_limit_ms = 10, .converge = VS_CONVERGE_THROTTLE };
    struct vs_conv_state st = { 0 };
    /* The measured rate says it would shrink (model optimistic), the passes say not. */
    struct vs_conv_link l = { .bandwidth = 100 * MB, .dirty_rate = 10 * MB };
    bool raised;
    assert_int_equal(vs_conv_after_pass(&pol, &st, 100 * MB, 95 * MB, &l, &raised),
                     VS_CONV_NEXT_PASS);
    assert_int_equal(st.not_shrinking, 1);
    assert_int_equal(vs_conv_after_pass(&pol, &st, 95 * MB, 94 * MB, &l, &raised),
                     VS_CONV_THROTTLE);
    assert_true(st.throttling);
    assert_false(raised);
}

static void reaches_follows_the_rates(void **state)
{
    (void)state;
    struct vs_conv_link slow = { .bandwidth = 100 * MB, .dirty_rate = 50 * MB };
    struct vs_conv_link fast = { .bandwidth = 100 * MB, .dirty_rate = 150 * MB };
    assert_true(vs_conv_reaches(&slow, 1024 * MB, 100));
    assert_false(vs_conv_reaches(&fast, 1024 * MB, 100));
    fast.working_set = 5 * MB;   /* 50 ms */
    assert_true(vs_conv_reaches(&fast, 1024 * MB, 100));
}

static void throttle_budget_and_fair_cap(void **state)
{
    (void)state;
    /* 1000 MB pending, the limit allows 100 MB (aim: 90): shrink by 0.09^(1/3) per pass. */
    double b = vs_conv_throttle_budget(1000 * MB, 100 * MB, 1000, 3);
    assert_true(b > 44.7 * MB && b < 44.9 * MB);
    /* The last pass of the plan aims straight at the limit. */
    b = vs_conv_throttle_budget(200 * MB, 100 * MB, 1000, 1);
    assert_true(b > 44.9 * MB && b < 45.1 * MB);
    /* Nearly there: never less throttling than a 25% shrink needs ... */
    assert_true(vs_conv_throttle_budget(101 * MB, 100 * MB, 1000, 3) == 75 * MB);
    /* ... and never more than 95%. */
    assert_true(vs_conv_throttle_budget(1e6 * MB, 100 * MB, 1, 3) == 5 * MB);

    const double d[] = { 100, 10, 100 };
    assert_true(vs_conv_fair_cap(d, 3, 110) == 50);     /* 10 + 50 + 50 */
    assert_true(vs_conv_fair_cap(d, 3, 300) == 0);      /* they fit: no cap */
    assert_true(vs_conv_fair_cap(d, 3, 30) == 10);      /* all capped equally */
    assert_true(vs_conv_fair_cap(d, 3, 0) > 0);         /* nothing allowed is still a cap */
}

static void lost_progress_counts_slow_intervals(void **state)
{
    (void)state;
    /* Baseline 10 per ms, 100 ms intervals: full, half, nothing, full. */
    const uint64_t c[] = { 0, 1000, 1500, 1500, 2500 };
    double lost = vs_conv_lost_ms(c, 0, 4, 100, 10);
    assert_true(lost > 149.9 && lost < 150.1);
    assert_true(vs_conv_lost_ms(c, 2, 3, 100, 10) == 100);
    assert_true(vs_conv_lost_ms(c, 0, 4, 100, 0) == 0);
}

static void rejects_bad_policies(void **state)
{
    (void)state;
    struct vs_conv_policy p = { .downtime_limit_ms = 300, .nr_steps = 2 };
    p.schedule_ms[0] = 500;
    p.schedule_ms[1] = 400;
    expect_msg(vs_conv_check_policy(&p), "step 2 (400 ms)", "500 ms");
    p.schedule_ms[0] = 200;
    expect_msg(vs_conv_check_policy(&p), "step 1 (200 ms)", "300 ms");
    p.nr_steps = 0;
    p.max_passes = 1001;
    expect_msg(vs_conv_check_policy(&p), "max_passes 1001", NULL);
    p.max_passes = 0;
    p.downtime_limit_ms = -1;
    expect_msg(vs_conv_check_policy(&p), "negative", NULL);
    p.downtime_limit_ms = 0;   /* only switch over with nothing left: allowed */
    assert_int_equal(vs_conv_check_policy(&p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reproduces_the_textbook_table),
        cmocka_unit_test(plain_precopy_gives_up_when_not_converging),
        cmocka_unit_test(a_small_working_set_converges),
        cmocka_unit_test(the_schedule_raises_the_limit_step_by_step),
        cmocka_unit_test(max_downtime_caps_the_limit),
        cmocka_unit_test(throttle_converges_and_counts_the_stall),
        cmocka_unit_test(postcopy_is_asked_for_on_a_stall),
        cmocka_unit_test(auto_throttles_or_goes_postcopy),
        cmocka_unit_test(two_flat_passes_are_a_stall),
        cmocka_unit_test(reaches_follows_the_rates),
        cmocka_unit_test(throttle_budget_and_fair_cap),
        cmocka_unit_test(lost_progress_counts_slow_intervals),
        cmocka_unit_test(rejects_bad_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
