/* Integration: migration between two test hosts (network namespaces joined by veth,
 * 198.18.0.1 -> 198.18.0.2), with the verify workload checking every page. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static struct test_hosts hosts;

static int make_hosts(void **state)
{
    (void)state;
    test_hosts_create(&hosts, NULL);
    return 0;
}

static int remove_hosts(void **state)
{
    (void)state;
    test_hosts_destroy(&hosts);
    return 0;
}

static void verify_vm_moves_between_hosts(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start_in(&src, hosts.a, ARGS("--mem", "128M", "--vcpus", "2", "--workload",
                                         "verify", "--fill", "random"));
    struct json_object *st = wait_guest_at_least(&src, "passes", 1, 90);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    vm_receiver_start(&dst, "198.18.0.2", hosts.b, NULL);
    char to[64];
    snprintf(to, sizeof(to), "198.18.0.2:%d", dst.port);
    struct json_object *r = vm_migrate(&src, to, NULL, 120);
    print_migration("netns", r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s", json_str(r, "status"), json_str(r, "error"));
    json_object_put(r);
    vm_proc_wait_ctl(&dst, 30);
    st = wait_guest_at_least(&dst, "passes", passes + 2, 120);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static void unreachable_destination_keeps_the_source(void **state)
{
    (void)state;
    struct vm_proc src;
    vm_proc_start_in(&src, hosts.a, ARGS("--mem", "32M", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "timeout_ms", json_object_new_int(2000));
    struct json_object *r = vm_migrate(&src, "198.18.0.2:9", a, 60); /* nobody listens */
    json_object_put(a);
    assert_string_equal(json_str(r, "status"), "failed");
    assert_non_null(strstr(json_str(r, "error"), "198.18.0.2:9"));
    json_object_put(r);
    struct json_object *st = vm_cmd(&src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
    vm_proc_stop(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verify_vm_moves_between_hosts),
        cmocka_unit_test(unreachable_destination_keeps_the_source),
    };
    return cmocka_run_group_tests(tests, make_hosts, remove_hosts);
}
