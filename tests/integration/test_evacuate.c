/* Integration: `vmshift evacuate` drains a vmshiftd between two test hosts (network
 * namespaces joined by veth): eight VMs with mixed workloads, each checked after the move
 * by the migration's own end-to-end digest, by a digest of memory the guest never writes,
 * and by the guest's own counters; a destination that runs out of room refuses the rest,
 * which keep running, intact, on the source; one failed migration does not stop the
 * others; an interrupted evacuation cancels what runs and starts nothing more. */
#include "host_harness.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1ull << 20)
#define DATA_START (4 * MiB)    /* where --fill writes and the workloads work */

#define hosts test_group_hosts

struct test_vm {
    const char *name, *workload;
    uint64_t mem;
    char *digest;               /* idle and once: of memory the guest never writes */
    uint64_t progress;          /* the guest counter that must go on after the move */
};

static const char *counter_of(const char *workload)
{
    return !strcmp(workload, "once") ? "pages_checked" : "passes";
}

/* Start the VMs and wait until each guest is at work; note what must survive the move. */
static void start_vms(struct host_proc *h, struct test_vm *vms, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char mem[32], wl[48];
        snprintf(mem, sizeof(mem), "mem=%llu", (unsigned long long)vms[i].mem);
        snprintf(wl, sizeof(wl), "workload=%s", vms[i].workload);
        bool cont = !strcmp(vms[i].workload, "continuous");
        host_vm_start_wait(h, vms[i].name, ARGS(mem, wl, cont ? "fill=none" : "fill=random",
                                                cont ? "rate=20000" : "rate=0"));
    }
    for (unsigned i = 0; i < n; i++) {
        struct test_vm *v = &vms[i];
        struct json_object *st;
        if (!strcmp(v->workload, "idle")) {
            st = host_vm_wait_guest(h, v->name, "doorbells", 1, 60);
        } else if (!strcmp(v->workload, "once")) {
            st = host_vm_wait_guest(h, v->name, "pages_checked", (v->mem - DATA_START) / 4096,
                                    90);
        } else {
            st = host_vm_wait_guest(h, v->name, "passes", 1, 90);
        }
        assert_int_equal(guest_u64(st, "errors"), 0);
        json_object_put(st);
        if (!strcmp(v->workload, "idle") || !strcmp(v->workload, "once"))
            v->digest = host_vm_digest(h, v->name, DATA_START, v->mem - DATA_START);
    }
    for (unsigned i = 0; i < n; i++) {
        struct json_object *st = host_vm_status(h, vms[i].name);
        vms[i].progress = guest_u64(st, counter_of(vms[i].workload));
        json_object_put(st);
    }
}

/* The VM runs at h: its entry says running, its memory the guest never writes is what it
 * was, and its guest goes on working without finding a bad page. */
static void check_vm(struct host_proc *h, struct test_vm *v, const char *origin)
{
    struct json_object *e = host_vm_entry(h, v->name);
    if (!e || strcmp(json_str(e, "state"), "running") || strcmp(json_str(e, "origin"), origin))
        fail_msg("VM %s on %s: %s", v->name, h->name, e ? json_object_to_json_string(e) : "none");
    json_object_put(e);
    struct json_object *st = host_vm_status(h, v->name);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
    if (v->digest) {
        char *now = host_vm_digest(h, v->name, DATA_START, v->mem - DATA_START);
        assert_string_equal(now, v->digest);
        free(now);
    }
    if (strcmp(v->workload, "idle")) {
        const char *key = counter_of(v->workload);
        uint64_t step = !strcmp(v->workload, "once") ? (v->mem - DATA_START) / 4096 : 2;
        st = host_vm_wait_guest(h, v->name, key, v->progress + step, 90);
        assert_int_equal(guest_u64(st, "errors"), 0);
        json_object_put(st);
    }
}

static void free_vms(struct test_vm *vms, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        free(vms[i].digest);
        vms[i].digest = NULL;
    }
}

static void print_report(struct json_object *r)
{
    struct json_object *vms;
    print_message("drain time %.0f ms, %s VMs moved, %.1f MiB, %.0f Mbit/s\n",
                  json_num(r, "drain-time"), json_object_to_json_string(
                      json_object_object_get(r, "vms-moved")),
                  json_num(r, "bytes") / 1048576.0, json_num(r, "mbps"));
    if (!json_object_object_get_ex(r, "vms", &vms))
        return;
    for (size_t i = 0; i < json_object_array_length(vms); i++) {
        struct json_object *v = json_object_array_get_idx(vms, i);
        print_message("  %-8s %-10s %8.0f ms  downtime %6.1f ms  %6.1f MiB  %s\n",
                      json_str(v, "name"), json_str(v, "result"), json_num(v, "total-time"),
                      json_num(v, "downtime"), json_num(v, "bytes") / 1048576.0,
                      json_str(v, "error"));
    }
}

static void eight_vms_drain_between_hosts(void **state)
{
    (void)state;
    struct host_proc a, b;
    host_proc_start(&a, "A", hosts.a, "198.18.0.1", NULL);
    host_proc_start(&b, "B", hosts.b, "198.18.0.2", ARGS("--max-mem", "1G"));
    struct test_vm vms[] = {
        { "idle1", "idle", 64 * MiB, NULL, 0 }, { "idle2", "idle", 32 * MiB, NULL, 0 },
        { "once1", "once", 64 * MiB, NULL, 0 }, { "once2", "once", 32 * MiB, NULL, 0 },
        { "verify1", "verify", 32 * MiB, NULL, 0 }, { "verify2", "verify", 32 * MiB, NULL, 0 },
        { "cont1", "continuous", 32 * MiB, NULL, 0 }, { "cont2", "continuous", 32 * MiB, NULL, 0 },
    };
    unsigned n = sizeof(vms) / sizeof(vms[0]);
    start_vms(&a, vms, n);
    struct json_object *r;
    struct host_proc *to[] = { &b };
    int rc = host_evacuate(&a, to, 1, ARGS("--parallel", "auto"), &r, 150);
    assert_non_null(r);
    print_report(r);
    assert_int_equal(rc, 0);
    assert_int_equal(json_num(r, "vms-moved"), n);
    assert_true(json_num(r, "drain-time") > 0);
    for (unsigned i = 0; i < n; i++) {
        struct json_object *v = evac_report_vm(r, vms[i].name), *dm;
        assert_non_null(v);
        assert_string_equal(json_str(v, "result"), "completed");
        assert_true(json_object_object_get_ex(v, "digest-match", &dm) &&
                    json_object_get_boolean(dm));
        assert_string_equal(json_str(v, "to-host"), "B");
        assert_true(json_num(v, "bytes") > 0 && json_num(v, "downtime") > 0);
        assert_string_equal(host_vm_state(&a, vms[i].name), "migrated");
        check_vm(&b, &vms[i], "migrated-in");
    }
    json_object_put(r);
    free_vms(vms, n);
    host_proc_stop(&a);
    host_proc_stop(&b);
}

static void a_full_destination_refuses_the_rest(void **state)
{
    (void)state;
    struct host_proc a, b1, b2;
    host_proc_start(&a, "A", hosts.a, "198.18.0.1", NULL);
    host_proc_start(&b1, "B1", hosts.b, "198.18.0.2", ARGS("--max-mem", "64M"));
    host_proc_start(&b2, "B2", hosts.b, "198.18.0.2", ARGS("--max-mem", "32M"));
    struct test_vm vms[] = {
        { "r1", "verify", 32 * MiB, NULL, 0 }, { "r2", "idle", 32 * MiB, NULL, 0 }, { "r3", "verify", 32 * MiB, NULL, 0 },
        { "r4", "idle", 32 * MiB, NULL, 0 }, { "r5", "verify", 32 * MiB, NULL, 0 },
    };
    unsigned n = sizeof(vms) / sizeof(vms[0]);
    start_vms(&a, vms, n);
    struct json_object *r;
    struct host_proc *to[] = { &b1, &b2 };
    int rc = host_evacuate(&a, to, 2, ARGS("--parallel", "2"), &r, 150);
    assert_non_null(r);
    print_report(r);
    assert_int_equal(rc, 1);
    assert_int_equal(json_num(r, "vms-moved"), 3);
    unsigned moved = 0, refused = 0, on_b1 = 0;
    for (unsigned i = 0; i < n; i++) {
        struct json_object *v = evac_report_vm(r, vms[i].name);
        assert_non_null(v);
        if (!strcmp(json_str(v, "result"), "completed")) {
            moved++;
            struct host_proc *dst = !strcmp(json_str(v, "to-host"), "B1") ? &b1 : &b2;
            on_b1 += dst == &b1;
            check_vm(dst, &vms[i], "migrated-in");
            assert_string_equal(host_vm_state(&a, vms[i].name), "migrated");
        } else {
            refused++;
            assert_string_equal(json_str(v, "result"), "refused");
            assert_non_null(strstr(json_str(v, "error"), "free of its budget"));
            check_vm(&a, &vms[i], "started");   /* still at the source, intact, at work */
        }
    }
    assert_int_equal(moved, 3);
    assert_int_equal(refused, 2);
    assert_int_equal(on_b1, 2);
    json_object_put(r);
    free_vms(vms, n);
    host_proc_stop(&a);
    host_proc_stop(&b1);
    host_proc_stop(&b2);
}

/* Wait until the source's migration of `name` runs (pre-copy). */
static void wait_migrating(struct host_proc *h, const char *name, double timeout_s)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        struct json_object *a = json_object_new_object(), *m;
        json_object_object_add(a, "name", json_object_new_string(name));
        json_object_object_add(a, "vm-cmd", json_object_new_string("migrate-status"));
        struct json_object *r = host_cmd_any(h, "vm-ctl", a);
        json_object_put(a);
        bool active = json_object_object_get_ex(r, "migration", &m) &&
                      !strcmp(json_str(m, "status"), "active");
        json_object_put(r);
        if (active)
            return;
        if (now_s() > deadline)
            fail_msg("the migration of %s did not become active within %.0f s", name, timeout_s);
        usleep(20000);
    }
}

/* n VMs of 32 MiB named PREFIX1.. running `workload`. */
static void start_named_vms(struct host_proc *h, struct test_vm *vms, unsigned n,
                            const char *prefix, const char *workload)
{
    static char names[8][16];
    for (unsigned i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%u", prefix, i + 1);
        vms[i] = (struct test_vm){ names[i], workload, 32 * MiB, NULL, 0 };
    }
    start_vms(h, vms, n);
}

static void one_failure_does_not_stop_the_others(void **state)
{
    (void)state;
    struct host_proc a, b;
    host_proc_start(&a, "A", hosts.a, "198.18.0.1", NULL);
    host_proc_start(&b, "B", hosts.b, "198.18.0.2", NULL);
    struct test_vm vms[4];
    start_named_vms(&a, vms, 4, "f", "once");
    /* Capped, so that each migration takes about two seconds. */
    struct evac_run run;
    struct host_proc *to[] = { &b };
    host_evacuate_start(&run, &a, to, 1, ARGS("--parallel", "4", "--max-bandwidth", "16M"));
    wait_migrating(&a, "f2", 30);
    /* The receiver of f2 dies in the middle of its migration. */
    struct json_object *e = host_vm_entry(&b, "f2");
    assert_non_null(e);
    assert_string_equal(json_str(e, "state"), "incoming");
    kill((pid_t)json_num(e, "pid"), SIGKILL);
    json_object_put(e);
    struct json_object *r;
    int rc = host_evacuate_wait(&run, &r, 120);
    assert_non_null(r);
    print_report(r);
    assert_int_equal(rc, 1);
    assert_int_equal(json_num(r, "vms-moved"), 3);
    for (unsigned i = 0; i < 4; i++) {
        struct json_object *v = evac_report_vm(r, vms[i].name);
        assert_non_null(v);
        if (i == 1) {
            assert_string_equal(json_str(v, "result"), "failed");
            check_vm(&a, &vms[i], "started");       /* rolled back: runs on at the source */
        } else {
            assert_string_equal(json_str(v, "result"), "completed");
            check_vm(&b, &vms[i], "migrated-in");
        }
    }
    json_object_put(r);
    free_vms(vms, 4);
    host_proc_stop(&a);
    host_proc_stop(&b);
}

static void an_interrupted_evacuation_rolls_back(void **state)
{
    (void)state;
    struct host_proc a, b;
    host_proc_start(&a, "A", hosts.a, "198.18.0.1", NULL);
    host_proc_start(&b, "B", hosts.b, "198.18.0.2", NULL);
    struct test_vm vms[3];
    start_named_vms(&a, vms, 3, "i", "verify");
    struct evac_run run;
    struct host_proc *to[] = { &b };
    host_evacuate_start(&run, &a, to, 1, ARGS("--parallel", "1", "--max-bandwidth", "8M"));
    wait_migrating(&a, "i1", 30);
    kill(run.pid, SIGINT);
    struct json_object *r;
    int rc = host_evacuate_wait(&run, &r, 60);
    assert_non_null(r);
    print_report(r);
    assert_int_equal(rc, 1);
    assert_int_equal(json_num(r, "vms-moved"), 0);
    struct json_object *in;
    assert_true(json_object_object_get_ex(r, "interrupted", &in) && json_object_get_boolean(in));
    assert_string_equal(json_str(evac_report_vm(r, "i1"), "result"), "cancelled");
    assert_string_equal(json_str(evac_report_vm(r, "i2"), "result"), "skipped");
    assert_string_equal(json_str(evac_report_vm(r, "i3"), "result"), "skipped");
    for (unsigned i = 0; i < 3; i++)
        check_vm(&a, &vms[i], "started");
    struct json_object *l = host_cmd(&b, "host-status", NULL);
    assert_int_equal(json_num(l, "vms_live"), 0);
    json_object_put(l);
    json_object_put(r);
    free_vms(vms, 3);
    host_proc_stop(&a);
    host_proc_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eight_vms_drain_between_hosts),
        cmocka_unit_test(a_full_destination_refuses_the_rest),
        cmocka_unit_test(one_failure_does_not_stop_the_others),
        cmocka_unit_test(an_interrupted_evacuation_rolls_back),
    };
    return cmocka_run_group_tests(tests, test_hosts_group_setup, test_hosts_group_teardown);
}
