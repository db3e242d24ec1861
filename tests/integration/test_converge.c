/* Integration: a guest that dirties memory faster than the link carries it, between two
 * test hosts joined by a veth shaped with tc. Plain pre-copy must give up with a clear
 * "not converging" and leave the VM running; the throttle must converge (with sleeps, and
 * with per-vCPU dirty limits on the dirty ring) and report what it cost the guest; the
 * downtime schedule must raise the limit step by step, never above --max-downtime; auto
 * must hand over to post-copy rather than throttle the guest too deep. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* 25 MB/s: a 64 MiB working set takes 2.7 s per pass; the guests below dirty it faster. */
#define LINK "200mbit"

static struct test_hosts hosts;

static int make_hosts(void **state)
{
    (void)state;
    test_hosts_create(&hosts, LINK);
    return 0;
}

static int remove_hosts(void **state)
{
    (void)state;
    test_hosts_destroy(&hosts);
    return 0;
}

/* Start a VM in host a and a receiver in host b; returns the migrate target. */
static void start_pair(struct vm_proc *src, struct vm_proc *dst, const char *const *args,
                       char *to, size_t len)
{
    vm_proc_start_in(src, hosts.a, args);
    json_object_put(wait_guest_at_least(src, "passes", 1, 90));
    vm_receiver_start(dst, "198.18.0.2", hosts.b, NULL);
    snprintf(to, len, "198.18.0.2:%d", dst->port);
}

static struct json_object *args_of(const char *json)
{
    struct json_object *a = json_tokener_parse(json);
    assert_non_null(a);
    return a;
}

/* Migrate with the fields in `json`; the test fails unless the migration completed. */
static struct json_object *migrate_completed(struct vm_proc *src, const char *to,
                                             const char *json, const char *label, int timeout_s)
{
    struct json_object *a = args_of(json);
    struct json_object *r = vm_migrate(src, to, a, timeout_s);
    json_object_put(a);
    print_migration(label, r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s", json_str(r, "status"), json_str(r, "error"));
    return r;
}

static uint64_t guest_passes(struct vm_proc *vm)
{
    struct json_object *st = vm_cmd(vm, "status", NULL);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    return passes;
}

/* The verify guest, moved, checks every page twice more and finds none bad. */
static void expect_clean_guest_after_move(struct vm_proc *dst, uint64_t passes_before)
{
    vm_proc_wait_ctl(dst, 30);
    struct json_object *st = wait_guest_at_least(dst, "passes", passes_before + 2, 120);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
}

static void plain_precopy_gives_up_and_the_vm_runs_on(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    char to[64];
    start_pair(&src, &dst, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "continuous"),
               to, sizeof(to));
    struct json_object *a = args_of("{\"max_passes\": 3}");
    double t0 = now_s();
    struct json_object *r = vm_migrate(&src, to, a, 120);
    double took = now_s() - t0;
    json_object_put(a);
    print_migration("plain pre-copy", r);
    print_message("error: %s\n", json_str(r, "error"));
    assert_string_equal(json_str(r, "status"), "failed");
    assert_non_null(strstr(json_str(r, "error"), "not converging: after 3 pre-copy passes"));
    assert_non_null(strstr(json_str(r, "error"), "the VM keeps running here"));
    assert_string_equal(json_str(r, "convergence"), "not-converging");
    assert_int_equal((int)json_num(r, "iterations"), 3);
    assert_true(json_num(r, "switchover-at") == 0);   /* never stopped the guest */
    assert_true(json_num(r, "downtime") == 0);
    /* Three passes of the working set, not thirty: it gave up when the limit was hit. */
    assert_true(took < 60);
    json_object_put(r);
    /* The source still runs the guest, which still makes progress. */
    struct json_object *st = vm_cmd(&src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    uint64_t written = guest_u64(st, "pages_written");
    json_object_put(st);
    json_object_put(wait_guest_at_least(&src, "pages_written", written + 10000, 30));
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* The guest's dirtying rate in bytes/s, over about two seconds. */
static double guest_dirty_rate(struct vm_proc *vm)
{
    struct json_object *st = vm_cmd(vm, "status", NULL);
    uint64_t w0 = guest_u64(st, "pages_written");
    json_object_put(st);
    double t0 = now_s();
    sleep(2);
    st = vm_cmd(vm, "status", NULL);
    uint64_t w1 = guest_u64(st, "pages_written");
    json_object_put(st);
    return (double)(w1 - w0) * 4096 / (now_s() - t0);
}

/* The verify workload checks every page after the move: throttled pre-copy loses none.
 * The cap is a third of what the guest dirties, measured just before: on a loaded host
 * the emulated guest can dirty less than the shaped link carries, and pre-copy would
 * converge without any throttle (seen in CI: 18 MB/s against 25). */
static void throttle_converges_and_reports_the_stall(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    char to[64], fields[160];
    start_pair(&src, &dst, ARGS("--mem", "32M", "--vcpus", "2", "--workload", "verify",
                                "--fill", "random"), to, sizeof(to));
    uint64_t passes = guest_passes(&src);
    double rate = guest_dirty_rate(&src), cap = rate / 3;
    if (cap < 1e6)
        cap = 1e6;
    print_message("guest dirties %.1f MB/s: pre-copy capped at %.1f MB/s\n", rate / 1e6,
                  cap / 1e6);
    snprintf(fields, sizeof(fields), "{\"converge\": \"throttle\", \"max_passes\": 30, "
             "\"max_bandwidth\": %.0f}", cap);
    struct json_object *r = migrate_completed(&src, to, fields, "throttle (sleep)", 240);
    struct json_object *t = json_member(r, "throttle");
    print_message("throttle %s from %.0f ms, deepest %.0f%%, guest stall %.0f ms (baseline %.0f "
                  "pages/s)\n", json_str(t, "mode"), json_num(t, "started-at"),
                  json_num(t, "max-percent"), json_num(t, "guest-stall-time"),
                  json_num(t, "guest-baseline-pages-per-second"));
    assert_string_equal(json_str(r, "converge"), "throttle");
    assert_string_equal(json_str(t, "mode"), "sleep");
    assert_true(json_num(t, "started-at") > 0);
    assert_true(json_num(t, "max-percent") > 10);
    assert_true(json_num(t, "guest-baseline-pages-per-second") > 0);
    assert_true(json_num(t, "guest-stall-time") > 100);
    /* It is released: the last samples show no sleeping. */
    assert_true(json_num(t, "percent") == 0);
    struct json_object *pct = json_member(t, "percent-samples");
    assert_true(json_object_array_length(pct) > 10);
    /* The downtime stayed near the limit (the transfer is bounded by 300 ms). */
    assert_true(json_num(r, "blackout-send-time") < 1000);
    json_object_put(r);
    expect_clean_guest_after_move(&dst, passes);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* With the dirty ring: per-vCPU dirty limits instead of sleeps, per-vCPU rates reported. */
static void dirty_limits_with_the_ring(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    char to[64];
    start_pair(&src, &dst, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "continuous",
                                "--dirty-ring", "65536"), to, sizeof(to));
    struct json_object *r = migrate_completed(&src, to, "{\"converge\": \"throttle\", "
                                              "\"max_passes\": 12}", "throttle (dirty limit)",
                                              180);
    struct json_object *t = json_member(r, "throttle"), *ram = json_member(r, "ram");
    assert_string_equal(json_str(ram, "dirty-tracking"), "dirty-ring");
    struct json_object *rates = json_member(ram, "vcpu-dirty-rate");
    assert_int_equal(json_object_array_length(rates), 2);
    assert_string_equal(json_str(t, "mode"), "dirty-limit");
    assert_true(json_num(t, "guest-stall-time") > 0);
    /* Some pass ran throttled, and the guest slowed down while it did. */
    struct json_object *passes = json_member(r, "passes");
    double most = 0;
    for (size_t i = 0; i < json_object_array_length(passes); i++) {
        double p = json_num(json_object_array_get_idx(passes, i), "throttle-percent");
        most = p > most ? p : most;
    }
    assert_true(most > 10);
    json_object_put(r);
    vm_proc_wait_ctl(&dst, 30);
    struct json_object *st = vm_cmd(&dst, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* A 16 MiB working set takes ~0.7 s at this link: the schedule raises 300 -> 500 -> 1000
 * and then switches over; with --max-downtime 600 the 1000 ms step is refused, and
 * without it the migration never switches over. */
static void the_schedule_raises_the_limit_up_to_the_maximum(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    char to[64];
    start_pair(&src, &dst, ARGS("--mem", "64M", "--vcpus", "1", "--workload", "continuous",
                                "--range", "4M:16M"), to, sizeof(to));
    struct json_object *a = args_of("{\"downtime_schedule\": \"500,1000\", \"max_downtime\": 600}");
    json_object_object_add(a, "to", json_object_new_string(to));
    harness_add_migrate_security(a);
    struct json_object *reply = vm_cmd_any(&src, "migrate", a);
    print_message("refused: %s\n", json_str(reply, "error"));
    assert_non_null(strstr(json_str(reply, "error"), "1000 ms"));
    assert_non_null(strstr(json_str(reply, "error"), "--max-downtime 600"));
    json_object_put(reply);
    json_object_put(a);

    a = args_of("{\"downtime_schedule\": \"500\", \"max_downtime\": 600, \"max_passes\": 5}");
    struct json_object *r = vm_migrate(&src, to, a, 120);
    json_object_put(a);
    print_migration("schedule up to 600", r);
    assert_string_equal(json_str(r, "status"), "failed");
    assert_non_null(strstr(json_str(r, "error"), "not converging"));
    assert_int_equal((int)json_num(r, "downtime-steps-used"), 1);
    assert_int_equal((int)json_num(r, "downtime-limit"), 500);
    json_object_put(r);
    /* The receiver gave up with the source: a new one for the next try. */
    assert_int_equal(vm_proc_wait_exit(&dst, 30), 1);
    vm_proc_stop(&dst);
    vm_receiver_start(&dst, "198.18.0.2", hosts.b, NULL);
    snprintf(to, sizeof(to), "198.18.0.2:%d", dst.port);

    r = migrate_completed(&src, to, "{\"downtime_schedule\": [500, 1000], \"max_passes\": 8}",
                          "schedule 500,1000", 120);
    assert_int_equal((int)json_num(r, "downtime-steps-used"), 2);
    assert_int_equal((int)json_num(r, "downtime-limit"), 1000);
    /* The final transfer fit the raised limit, not the first one. */
    double send = json_num(r, "blackout-send-time");
    assert_true(send > 300 && send < 1500);
    struct json_object *passes = json_member(r, "passes");
    size_t n = json_object_array_length(passes);
    assert_true(json_num(json_object_array_get_idx(passes, 0), "downtime-limit") == 300);
    assert_true(json_num(json_object_array_get_idx(passes, n - 2), "downtime-limit") == 1000);
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* --converge auto: the guest dirties far more than the (capped) link carries, so the
 * throttle would have to take away more than 80% of its dirtying; post-copy takes over
 * instead, and the guest finds every page intact afterwards. */
static void auto_goes_postcopy_when_the_throttle_would_be_too_deep(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    char to[64];
    char fields[160];
    start_pair(&src, &dst, ARGS("--mem", "32M", "--vcpus", "2", "--workload", "verify",
                                "--fill", "random"), to, sizeof(to));
    uint64_t passes = guest_passes(&src);
    /* Pre-copy gets a tenth of what the guests dirty (measured now: a loaded host slows
     * them down up to 16x), so a throttle would have to take 90% of it. */
    double rate = guest_dirty_rate(&src), cap = rate / 10;
    if (cap < 5e5)
        cap = 5e5;
    print_message("guest dirties %.1f MB/s: pre-copy capped at %.2f MB/s\n", rate / 1e6,
                  cap / 1e6);
    snprintf(fields, sizeof(fields), "{\"converge\": \"auto\", \"max_passes\": 12, "
             "\"max_bandwidth\": %.0f}", cap);
    struct json_object *r = migrate_completed(&src, to, fields, "auto", 240);
    assert_string_equal(json_str(r, "converge"), "auto");
    struct json_object *pc = json_member(r, "postcopy");
    assert_true(json_num(pc, "missing-pages") > 0);
    json_object_put(r);
    expect_clean_guest_after_move(&dst, passes);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_precopy_gives_up_and_the_vm_runs_on),
        cmocka_unit_test(throttle_converges_and_reports_the_stall),
        cmocka_unit_test(dirty_limits_with_the_ring),
        cmocka_unit_test(the_schedule_raises_the_limit_up_to_the_maximum),
        cmocka_unit_test(auto_goes_postcopy_when_the_throttle_would_be_too_deep),
    };
    return cmocka_run_group_tests(tests, make_hosts, remove_hosts);
}
