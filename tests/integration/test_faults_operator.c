/* Fault suite, the two cases no protocol can settle (docs/state-machine.md, "What needs an
 * operator"): the process that owns the only runnable copy of the VM dies. vmshift says
 * so at once, with the command the operator needs and the real socket and addresses:
 * - the destination killed after its CLAIM: the source prints `vmshift ctl SOCK reclaim`
 *   (and `quit`); the destination's log proves it never started the VM, and reclaim
 *   brings the VM back at the source, intact;
 * - the source killed before DIGEST: the destination finds the source's RESOLVE endpoint
 *   refused and prints that the VM died with it and how to boot it again. */
#include "fault_trial.h"
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_of(struct vm_proc *p)
{
    static char buf[65536];
    FILE *f = fopen(p->stderr_path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static void expect_log(struct vm_proc *p, const char *who, const char *text)
{
    const char *log = log_of(p);
    if (!strstr(log, text))
        fail_msg("the %s's log lacks \"%s\":\n%s", who, text, log);
}

/* An 8 MiB verify VM and a one-attempt receiver, each with its fault; the migration as
 * the fault trials run it (three throttled pre-copy passes, then the switchover). */
static void start_faulty_migration(struct vm_proc *src, struct vm_proc *dst,
                                   const char *src_fault, const char *dst_fault)
{
    char env[200];
    snprintf(env, sizeof(env), "VMSHIFT_FAULT=%s", src_fault ? src_fault : "");
    harness_child_env(env);
    vm_proc_start(src, ARGS("--mem", "8M", "--vcpus", "2", "--workload", "verify"));
    snprintf(env, sizeof(env), "VMSHIFT_FAULT=%s", dst_fault ? dst_fault : "");
    harness_child_env(env);
    vm_receiver_start(dst, "127.0.0.1", NULL, ARGS("--timeout", "3", "--max-refused", "0"));
    json_object_put(wait_guest_at_least(src, "passes", 1, 30));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst->port);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    json_object_object_add(a, "downtime_limit", json_object_new_int(0));
    json_object_object_add(a, "downtime_schedule", json_object_new_string("1,2,60000"));
    json_object_object_add(a, "timeout_ms", json_object_new_int(3000));
    json_object_object_add(a, "streams", json_object_new_int(1));
    vm_migrate_start(src, to, a);
    json_object_put(a);
}

static void destination_killed_after_claim(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_faulty_migration(&src, &dst, NULL, "dst.claimed:0:kill");
    struct json_object *m = vm_migration_wait(&src, 60);
    assert_string_equal(json_str(m, "status"), "unconfirmed");
    assert_true(fault_fired(&dst));
    /* the exact commands, with this source's control socket, in its log and its report */
    char reclaim[200], quit[200];
    snprintf(reclaim, sizeof(reclaim), "vmshift ctl %s reclaim", src.sock);
    snprintf(quit, sizeof(quit), "vmshift ctl %s quit", src.sock);
    expect_log(&src, "source", reclaim);
    expect_log(&src, "source", quit);
    if (!strstr(json_str(m, "error"), reclaim))
        fail_msg("the report's error lacks \"%s\": %s", reclaim, json_str(m, "error"));
    print_message("the source's report: %s\n", json_str(m, "error"));
    json_object_put(m);
    /* the evidence the message points to: the destination never started the VM */
    vm_proc_wait_exit(&dst, 10);
    if (strstr(log_of(&dst), "starting its vCPUs"))
        fail_msg("the destination started the VM before it died:\n%s", log_of(&dst));
    /* no VM runs until the operator acts; then the source's copy runs, intact */
    struct json_object *st = vm_cmd(&src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "migrated");
    json_object_put(st);
    st = vm_cmd_any(&src, "resume", NULL);
    assert_false(json_object_get_boolean(json_member(st, "ok")));
    json_object_put(st);
    st = vm_cmd(&src, "reclaim", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
    assert_verify_clean(&src, "source");
    st = vm_cmd_any(&src, "reclaim", NULL);   /* once only */
    assert_false(json_object_get_boolean(json_member(st, "ok")));
    json_object_put(st);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void reclaim_refused_after_a_completed_migration(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_faulty_migration(&src, &dst, NULL, NULL);
    struct json_object *m = vm_migration_wait(&src, 60);
    assert_string_equal(json_str(m, "status"), "completed");
    json_object_put(m);
    struct json_object *st = vm_cmd_any(&src, "reclaim", NULL);
    assert_false(json_object_get_boolean(json_member(st, "ok")));
    print_message("reclaim after completion: %s\n", json_str(st, "error"));
    assert_non_null(strstr(json_str(st, "error"), "completed"));
    json_object_put(st);
    vm_proc_wait_ctl(&dst, 10);
    st = vm_cmd(&dst, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
    expect_log(&dst, "destination", "starting its vCPUs here");
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void source_killed_before_digest(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_faulty_migration(&src, &dst, "src.pass:1:kill", NULL);
    vm_proc_wait_exit(&src, 60);
    assert_true(fault_fired(&src));
    assert_int_equal(vm_proc_wait_exit(&dst, 30), 1);
    expect_log(&dst, "destination", "the source process that sent the VM from 127.0.0.1:");
    expect_log(&dst, "destination", "is gone (its RESOLVE endpoint 127.0.0.1:");
    expect_log(&dst, "destination", "and the VM died with it");
    expect_log(&dst, "destination", "vmshift run --mem 8M --vcpus 2 --kernel KERNEL");
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void destination_told_the_source_keeps_the_vm(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_faulty_migration(&src, &dst, "src.pass:1:cut", NULL);
    struct json_object *m = vm_migration_wait(&src, 60);
    assert_string_equal(json_str(m, "status"), "failed");
    json_object_put(m);
    assert_int_equal(vm_proc_wait_exit(&dst, 30), 1);
    expect_log(&dst, "destination", "still runs (its RESOLVE endpoint 127.0.0.1:");
    expect_log(&dst, "destination", "it keeps the VM");
    assert_verify_clean(&src, "source");
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(destination_killed_after_claim),
        cmocka_unit_test(reclaim_refused_after_a_completed_migration),
        cmocka_unit_test(source_killed_before_digest),
        cmocka_unit_test(destination_told_the_source_keeps_the_vm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
