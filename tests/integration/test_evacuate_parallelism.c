/* Integration: `--parallel auto` is never slower than the worst fixed degree among 1, 2,
 * 4 and 8 on the same run. Eight VMs move back and forth between two test hosts, once with
 * each degree; every drain must move all eight. (A reduced check for CI: small VMs, so the
 * controller has little time to act; bench/evacuate_bench.py compares the degrees on
 * larger VMs.) */
#include "host_harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#define NVMS 8

#define hosts test_group_hosts

/* Drain `from` into `to` with --parallel `degree`; returns the drain time in seconds. */
static double drain(struct host_proc *from, struct host_proc *to, const char *degree)
{
    struct json_object *r;
    struct host_proc *dst[] = { to };
    int rc = host_evacuate(from, dst, 1, ARGS("--parallel", degree, "--quiet"), &r, 150);
    assert_non_null(r);
    if (rc != 0 || json_num(r, "vms-moved") != NVMS)
        fail_msg("--parallel %s: exit %d, report %s", degree, rc, json_object_to_json_string(r));
    double t = json_num(r, "drain-time") / 1000.0;
    print_message("--parallel %-4s %s -> %s: drain %.2f s, %.0f Mbit/s\n", degree, from->name,
                  to->name, t, json_num(r, "mbps"));
    json_object_put(r);
    /* The migrated VMs' old monitors are gone; forget their entries so names are free. */
    for (int i = 0; i < NVMS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vm%d", i);
        json_object_put(host_vm_cmd(from, "vm-stop", name, NULL));
    }
    return t;
}

static void auto_is_not_slower_than_the_worst_fixed_degree(void **state)
{
    (void)state;
    struct host_proc a, b;
    host_proc_start(&a, "A", hosts.a, "198.18.0.1", NULL);
    host_proc_start(&b, "B", hosts.b, "198.18.0.2", NULL);
    for (int i = 0; i < NVMS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vm%d", i);
        host_vm_start_wait(&a, name, ARGS("mem=64M", "workload=once", "fill=random"));
    }
    for (int i = 0; i < NVMS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vm%d", i);
        json_object_put(host_vm_wait_guest(&a, name, "pages_checked", 1, 90));
    }
    const char *degrees[] = { "1", "2", "4", "8", "auto" };
    double t[5], worst = 0;
    for (int i = 0; i < 5; i++) {
        bool forth = i % 2 == 0;
        t[i] = drain(forth ? &a : &b, forth ? &b : &a, degrees[i]);
        if (i < 4 && t[i] > worst)
            worst = t[i];
    }
    print_message("auto %.2f s, worst fixed %.2f s\n", t[4], worst);
    assert_true(t[4] <= worst);
    /* The VMs are intact after five moves: the guest checks every page it reads. */
    for (int i = 0; i < NVMS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vm%d", i);
        struct json_object *st = host_vm_status(&b, name);
        uint64_t checked = guest_u64(st, "pages_checked");
        json_object_put(st);
        st = host_vm_wait_guest(&b, name, "pages_checked", checked + 1, 60);
        assert_int_equal(guest_u64(st, "errors"), 0);
        json_object_put(st);
    }
    host_proc_stop(&a);
    host_proc_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auto_is_not_slower_than_the_worst_fixed_degree),
    };
    return cmocka_run_group_tests(tests, test_hosts_group_setup, test_hosts_group_teardown);
}
