/* Integration: CPU models in a migration. A destination whose KVM offers fewer features
 * (played with the test hook VMSHIFT_TEST_MASK_CPUID=cx16,lahf_lm on `vmshift receive`)
 * refuses a `--cpu host` VM at HELLO, naming the missing features, before any page
 * moves, and the source runs on; a `--cpu x86-64-v1` VM, which never saw them, moves to
 * the same destination. cx16 and lahf_lm are x86-64-v2 features that every x86-64 KVM
 * offers, this machine's emulator too (whose KVM offers too little for x86-64-v2 itself:
 * no sse3, popcnt). The guest cannot observe its CPUID on the emulator (leaves 1 and 7
 * read the host's), so what is checked is the hosts' comparison. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#define MASK "VMSHIFT_TEST_MASK_CPUID=cx16,lahf_lm"

static void assert_running_intact(struct vm_proc *p)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    st = wait_guest_at_least(p, "passes", passes + 2, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
}

static struct json_object *migrate_to_masked(struct vm_proc *src, struct vm_proc *dst,
                                             const char *cpu)
{
    vm_proc_start(src, ARGS("--mem", "32M", "--workload", "verify", "--cpu", cpu));
    json_object_put(wait_guest_at_least(src, "passes", 1, 60));
    harness_child_env(MASK);
    vm_receiver_start(dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst->port);
    return vm_migrate(src, to, NULL, 120);
}

static void host_vm_refused_at_hello(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    struct json_object *m = migrate_to_masked(&src, &dst, "host");
    print_migration("host VM to a destination without cx16, lahf_lm", m);
    assert_string_equal(json_str(m, "status"), "failed");
    const char *err = json_str(m, "error");
    print_message("refusal: %s\n", err);
    if (!strstr(err, "refused") || !strstr(err, "lacks cx16, lahf_lm") ||
        !strstr(err, "--cpu x86-64-v1"))
        fail_msg("the refusal does not name the missing features: %s", err);
    struct json_object *ram = NULL;
    json_object_object_get_ex(m, "ram", &ram);
    print_message("ram: %s\n", ram ? json_object_to_json_string(ram) : "(none)");
    /* Refused before any page moved: no page counted, less than a page on the wire (the
     * handshake's records), no dirty-log pass. */
    assert_true(json_num(ram, "normal") == 0 && json_num(ram, "duplicate") == 0 &&
                json_num(ram, "skipped") == 0 && json_num(ram, "compressed") == 0);
    assert_true(json_num(ram, "transferred") < 4096);
    assert_true(json_num(ram, "dirty-sync-count") == 0);
    json_object_put(m);
    assert_running_intact(&src);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void v1_vm_moves_to_the_same_destination(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    struct json_object *m = migrate_to_masked(&src, &dst, "x86-64-v1");
    print_migration("x86-64-v1 VM to a destination without cx16, lahf_lm", m);
    if (strcmp(json_str(m, "status"), "completed") != 0)
        fail_msg("migration %s: %s", json_str(m, "status"), json_str(m, "error"));
    json_object_put(m);
    vm_proc_wait_ctl(&dst, 30);
    assert_running_intact(&dst);
    vm_proc_stop(&src);
    /* On again: the arrived VM declares what its first source gave it (x86-64-v1), not
     * what this host offers, so another such destination takes it too. */
    struct vm_proc next;
    harness_child_env(MASK);
    vm_receiver_start(&next, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", next.port);
    m = vm_migrate(&dst, to, NULL, 120);
    if (strcmp(json_str(m, "status"), "completed") != 0)
        fail_msg("second migration %s: %s", json_str(m, "status"), json_str(m, "error"));
    json_object_put(m);
    vm_proc_wait_ctl(&next, 30);
    assert_running_intact(&next);
    vm_proc_stop(&dst);
    vm_proc_stop(&next);
}

static void unknown_model_is_named(void **state)
{
    (void)state;
    char err[512];
    int rc = run_vmshift(ARGS("run", "--cpu", "pentium4", "--run-for", "1"), err, sizeof(err),
                         30);
    assert_int_not_equal(rc, 0);
    if (!strstr(err, "--cpu 'pentium4' is unknown") || !strstr(err, "x86-64-v3"))
        fail_msg("unclear error: %s", err);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_model_is_named),
        cmocka_unit_test(host_vm_refused_at_hello),
        cmocka_unit_test(v1_vm_moves_to_the_same_destination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
