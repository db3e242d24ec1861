/* Integration: a migration that fails before the commit leaves exactly one VM running,
 * the source, with intact memory: cancel mid-way, destination killed mid-way,
 * destination too small. */
#include "harness.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The source runs on: running state, counters advance, no page lost. */
static void assert_source_intact(struct vm_proc *src)
{
    struct json_object *st = vm_cmd(src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    st = wait_guest_at_least(src, "passes", passes + 2, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
}

static void cancel_mid_way_keeps_the_source(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_migrate_start_slow(&src, &dst);
    json_object_put(vm_cmd(&src, "cancel", NULL));
    struct json_object *m = vm_migration_wait(&src, 30);
    assert_string_equal(json_str(m, "status"), "cancelled");
    assert_non_null(strstr(json_str(m, "error"), "cancelled"));
    json_object_put(m);
    assert_source_intact(&src);
    /* the destination discarded its copy and says why */
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void destination_death_keeps_the_source(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_migrate_start_slow(&src, &dst);
    kill(dst.pid, SIGKILL);
    struct json_object *m = vm_migration_wait(&src, 30);
    assert_string_equal(json_str(m, "status"), "failed");
    print_message("error after the destination died: %s\n", json_str(m, "error"));
    assert_true(strlen(json_str(m, "error")) > 0);
    json_object_put(m);
    assert_source_intact(&src);
    vm_proc_wait_exit(&dst, 10);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void too_small_destination_refuses(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "64M", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--max-mem", "32M"));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *m = vm_migrate(&src, to, NULL, 60);
    assert_string_equal(json_str(m, "status"), "failed");
    const char *err = json_str(m, "error");
    if (!strstr(err, "refused") || !strstr(err, "--max-mem"))
        fail_msg("unclear refusal: %s", err);
    json_object_put(m);
    assert_source_intact(&src);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cancel_mid_way_keeps_the_source),
        cmocka_unit_test(destination_death_keeps_the_source),
        cmocka_unit_test(too_small_destination_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
