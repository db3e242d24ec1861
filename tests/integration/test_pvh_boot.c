/* Integration: the same guest ELF boots through the PVH 32-bit entry (the path QEMU's
 * -kernel takes), builds its own page tables and runs the verify workload. */
#include "harness.h"

#include <json-c/json.h>
#include <string.h>

static void pvh_entry_runs_verify(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--boot", "pvh", "--workload", "verify"));
    struct json_object *st = wait_guest_at_least(&p, "passes", 2, 90), *v;
    assert_true(json_object_object_get_ex(st, "boot", &v));
    assert_string_equal(json_object_get_string(v), "pvh");
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&p);
    assert_int_equal(p.exit_status, 0);
}

static void pvh_refuses_more_than_one_vcpu(void **state)
{
    (void)state;
    require_kvm();
    char err[2048];
    int status = run_vmshift(ARGS("run", "--boot", "pvh", "--vcpus", "2"), err, sizeof(err), 30);
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(err, "--vcpus 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pvh_entry_runs_verify),
        cmocka_unit_test(pvh_refuses_more_than_one_vcpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
