/* Integration: measuring a running VM's dirty rate (`vmshift ctl SOCK dirty-rate`, with the
 * dirty log and with the dirty ring), and `vmshift plan` against a real migration: for a
 * steady guest over a shaped link, the planner's predicted total time (from the VM's
 * measured rate) and the migration's own prediction after its first pass must be within
 * 25% of the measured total time. */
#include "harness.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tbf counts Ethernet frames: TCP carries 1448 of every 1514 bytes at MTU 1500, so a
 * 400mbit shaper gives 382 Mbit/s of payload. */
#define LINK "400mbit"
#define LINK_PAYLOAD "382mbit"

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

static uint64_t pages_written(struct vm_proc *p)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    uint64_t n = guest_u64(st, "pages_written");
    json_object_put(st);
    return n;
}

/* The measurement, and in *guest_pps what the guest's own counter says it wrote per second
 * meanwhile (each page once: the ranges are larger than a second covers). The guest's
 * speed is checked against the measurement, not against --rate: on a loaded host the
 * emulated guest may not reach its --rate (seen: 1000 pages/s of 20000 beside stress-ng). */
static struct json_object *dirty_rate_seen(struct vm_proc *p, int period_ms, double *guest_pps)
{
    uint64_t w0 = pages_written(p);
    double t0 = now_s();
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "period_ms", json_object_new_int(period_ms));
    struct json_object *r = vm_cmd(p, "dirty-rate", a);
    json_object_put(a);
    *guest_pps = (double)(pages_written(p) - w0) / (now_s() - t0);
    print_message("the guest's own count: %.0f pages/s\n", *guest_pps);
    print_message("dirty-rate: %.0f pages/s over %d ms (%s), %.0f distinct pages, working set "
                  "%.1f MiB%s\n", json_num(r, "dirty-pages-rate"), period_ms,
                  json_str(r, "tracking"), json_num(r, "dirty-pages"),
                  json_num(r, "working-set") / 1048576.0,
                  json_object_get_boolean(json_member(r, "saturated")) ? " (saturated)" : "");
    return r;
}

static struct json_object *dirty_rate(struct vm_proc *p, int period_ms)
{
    double guest_pps;
    return dirty_rate_seen(p, period_ms, &guest_pps);
}

static bool within(double got, double want, double tolerance)
{
    return fabs(got - want) <= tolerance * want;
}

/* A guest limited to 20000 pages/s over a range larger than it covers in a second. */
static void measures_a_steady_rate(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "256M", "--vcpus", "2", "--workload", "continuous",
                           "--rate", "20000"));
    json_object_put(wait_guest_at_least(&p, "pages_written", 20000, 60));
    double guest;
    struct json_object *r = dirty_rate_seen(&p, 1000, &guest);
    assert_string_equal(json_str(r, "tracking"), "dirty-log");
    assert_true(guest > 100 && guest < 20000 * 1.2);   /* --rate is a cap */
    assert_true(within(json_num(r, "dirty-pages-rate"), guest, 0.2));
    assert_false(json_object_get_boolean(json_member(r, "saturated")));
    assert_int_equal(json_object_array_length(json_member(r, "samples")), 8);
    assert_int_equal(json_object_array_length(json_member(r, "vcpu-dirty-rate")), 0);
    json_object_put(r);
    /* A bad period is refused with the range. */
    struct json_object *a = json_tokener_parse("{\"period_ms\": 20}");
    r = vm_cmd_any(&p, "dirty-rate", a);
    assert_non_null(strstr(json_str(r, "error"), "calc-time 20 ms is out of range"));
    json_object_put(r);
    json_object_put(a);
    vm_proc_stop(&p);
}

/* The same with the dirty ring: each vCPU's rate, adding up to the VM's. */
static void measures_per_vcpu_rates_with_the_ring(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "256M", "--vcpus", "2", "--workload", "continuous",
                           "--rate", "20000", "--dirty-ring", "65536"));
    json_object_put(wait_guest_at_least(&p, "pages_written", 20000, 60));
    double guest;
    struct json_object *r = dirty_rate_seen(&p, 1000, &guest);
    assert_string_equal(json_str(r, "tracking"), "dirty-ring");
    assert_true(guest > 100 && guest < 20000 * 1.2);
    assert_true(within(json_num(r, "dirty-pages-rate"), guest, 0.2));
    struct json_object *per = json_member(r, "vcpu-dirty-rate");
    assert_int_equal(json_object_array_length(per), 2);
    double sum = 0;
    for (size_t i = 0; i < 2; i++) {
        double v = json_object_get_double(json_object_array_get_idx(per, i));
        print_message("vCPU %zu: %.0f pages/s\n", i, v);
        assert_true(v > 0);
        sum += v;
    }
    assert_true(within(sum, json_num(r, "dirty-pages-rate"), 0.3));   /* ring entries: ~20% over */
    json_object_put(r);
    vm_proc_stop(&p);
}

/* A guest rewriting 8 MiB at full speed: the curve flattens at the working set. */
static void finds_the_working_set(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--workload", "continuous", "--range", "4M:8M"));
    json_object_put(wait_guest_at_least(&p, "passes", 2, 60));
    struct json_object *r = dirty_rate(&p, 800);
    assert_true(json_object_get_boolean(json_member(r, "saturated")));
    assert_true(within(json_num(r, "working-set"), 8 << 20, 0.05));
    json_object_put(r);
    vm_proc_stop(&p);
}

static struct json_object *run_plan(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s plan %s --json", VMSHIFT_BIN, args);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    static char out[1 << 20];
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    if (st != 0)
        fail_msg("%s exited with %d", cmd, st);
    struct json_object *j = json_tokener_parse(out);
    if (!j)
        fail_msg("%s printed no JSON: %s", cmd, out);
    return j;
}

/* Given numbers: the textbook table, and a guest that cannot converge without help. */
static void plans_from_given_numbers(void **state)
{
    (void)state;
    struct json_object *j = run_plan("--mem 2048M --dirty-rate 32M --bandwidth 128M "
                                     "--downtime-limit 100");
    struct json_object *pre = json_member(j, "precopy");
    assert_string_equal(json_str(pre, "outcome"), "converges");
    assert_int_equal((int)json_num(pre, "precopy-passes"), 4);
    assert_int_equal(json_object_array_length(json_member(pre, "passes")), 5);
    assert_string_equal(json_str(j, "recommended"), "precopy");
    json_object_put(j);
    j = run_plan("--mem 1G --dirty-rate 50000p --working-set 512M --bandwidth 1gbit");
    assert_string_equal(json_str(json_member(j, "precopy"), "outcome"), "not-converging");
    assert_string_equal(json_str(json_member(j, "throttle"), "outcome"), "converges");
    assert_string_equal(json_str(j, "recommended"), "throttle");
    json_object_put(j);
    char err[4096];
    assert_int_equal(run_vmshift(ARGS("plan", "--mem", "1G", "--dirty-rate", "1G"), err,
                                 sizeof(err), 10), 2);
    assert_non_null(strstr(err, "--bandwidth"));
    assert_int_equal(run_vmshift(ARGS("plan", "--mem", "1G", "--dirty-rate", "1Q",
                                      "--bandwidth", "1gbit"), err, sizeof(err), 10), 2);
    assert_non_null(strstr(err, "unknown unit 'Q'"));
}

/* A steady guest (4000 pages/s over 120 MiB) over a 400mbit link. */
static void plan_predicts_the_migration(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start_in(&src, hosts.a, ARGS("--mem", "128M", "--workload", "continuous",
                                         "--fill", "random", "--rate", "4000"));
    json_object_put(wait_guest_at_least(&src, "pages_written", 8000, 60));
    char args[256];
    snprintf(args, sizeof(args), "%s --bandwidth %s", src.sock, LINK_PAYLOAD);
    uint64_t w0 = pages_written(&src);
    double t0 = now_s();
    struct json_object *plan = run_plan(args);
    double guest = (double)(pages_written(&src) - w0) / (now_s() - t0);
    struct json_object *pre = json_member(plan, "precopy");
    double predicted = json_num(pre, "total-time");
    print_message("plan: %s after %.0f passes, total %.0f ms, downtime %.0f ms, rate %.0f "
                  "pages/s (%s)\n", json_str(pre, "outcome"), json_num(pre, "precopy-passes"),
                  predicted, json_num(pre, "downtime"), json_num(plan, "dirty-rate") / 4096,
                  json_str(plan, "dirty-rate-source"));
    assert_string_equal(json_str(plan, "dirty-rate-source"), "measured");
    print_message("the guest's own count: %.0f pages/s\n", guest);
    assert_true(guest > 100 && guest < 4000 * 1.2);   /* --rate is a cap */
    assert_true(within(json_num(plan, "dirty-rate") / 4096, guest, 0.2));
    assert_string_equal(json_str(pre, "outcome"), "converges");
    double rate = json_num(plan, "dirty-rate") / 4096;
    json_object_put(plan);

    vm_receiver_start(&dst, "198.18.0.2", hosts.b, NULL);
    char to[64];
    snprintf(to, sizeof(to), "198.18.0.2:%d", dst.port);
    vm_migrate_start(&src, to, NULL);
    /* Dirty logging belongs to the migration now. */
    struct json_object *busy = vm_cmd_any(&src, "dirty-rate", NULL);
    assert_non_null(strstr(json_str(busy, "error"), "a migration is running"));
    json_object_put(busy);
    struct json_object *r = vm_migration_wait(&src, 120);
    print_migration("steady guest", r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s", json_str(r, "status"), json_str(r, "error"));
    double total = json_num(r, "total-time");
    double live = json_num(json_object_array_get_idx(json_member(r, "passes"), 0),
                           "expected-total-time");
    print_message("measured total %.0f ms; planned %.0f ms (%+.0f%%); predicted after pass 0 "
                  "%.0f ms (%+.0f%%)\n", total, predicted, (predicted / total - 1) * 100, live,
                  (live / total - 1) * 100);
    /* The plan assumed the link's rate. A loaded host (sanitizers, other tests) may not
     * fill the link: 205 of 382 Mbit/s once, 7.6 s against a plan of 3.6 s. The premise
     * failed, not the model: plan again from the rates of this migration's first pass. */
    struct json_object *p0 = json_object_array_get_idx(json_member(r, "passes"), 0);
    double mbps = json_num(p0, "bytes-transferred") * 8 / 1e3 / json_num(p0, "time");
    if (mbps < 0.8 * atof(LINK_PAYLOAD)) {
        rate = json_num(p0, "dirty-pages-rate");
        snprintf(args, sizeof(args), "--mem 128M --dirty-rate %.0fp --bandwidth %.0fmbit",
                 rate, mbps);
        struct json_object *again = run_plan(args);
        predicted = json_num(json_member(again, "precopy"), "total-time");
        print_message("the host did not fill the link (%.0f of %s): planned again from %s: "
                      "%.0f ms (%+.0f%%)\n", mbps, LINK_PAYLOAD, args, predicted,
                      (predicted / total - 1) * 100);
        json_object_put(again);
    }
    assert_true(within(predicted, total, 0.25));
    assert_true(within(live, total, 0.25));
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(measures_a_steady_rate),
        cmocka_unit_test(measures_per_vcpu_rates_with_the_ring),
        cmocka_unit_test(finds_the_working_set),
        cmocka_unit_test(plans_from_given_numbers),
        cmocka_unit_test(plan_predicts_the_migration),
    };
    return cmocka_run_group_tests(tests, make_hosts, remove_hosts);
}
