/* Fault suite, a network partition in the commit window: the one case the two sides
 * cannot decide on their own (docs/state-machine.md, "The commit window"). The source
 * has committed, the destination has received COMMIT, and then the hosts cannot reach
 * each other: neither may run the VM (never two), both wait. The operator procedure
 * of the guide must then lead to exactly one VM: keep the destination (quit the source,
 * resume the destination), or keep the source (quit the destination; the source resumes
 * by itself once it reaches the destination's host again). */
#include "fault_trial.h"
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct partitioned {
    struct test_hosts hosts;
    struct vm_proc src, dst;
};

static void link_set(struct partitioned *p, const char *updown)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ip -n %s link set vsa%d %s && ip -n %s link set vsb%d %s",
             p->hosts.a, (int)getpid(), updown, p->hosts.b, (int)getpid(), updown);
    if (system(cmd) != 0)
        fail_msg("cannot set the test link %s: %s", updown, cmd);
}

/* The VM's state, "busy" while the process does not answer yet, "gone" once it exited. */
static const char *vm_state(struct vm_proc *p, char *buf, size_t n)
{
    struct json_object *st = fault_ask(p, "status");
    snprintf(buf, n, "%s", st ? json_str(st, "state") : fault_proc_alive(p) ? "busy" : "gone");
    json_object_put(st);
    return buf;
}

/* Migrate with the destination stalled just after COMMIT arrived, and cut the hosts
 * apart during the stall. */
static void partition_after_commit(struct partitioned *p)
{
    test_hosts_create(&p->hosts, NULL);
    vm_proc_start_in(&p->src, p->hosts.a, ARGS("--mem", "8M", "--vcpus", "2", "--workload",
                                                "verify"));
    harness_child_env("VMSHIFT_FAULT=dst.commit:0:stall=4000");
    vm_receiver_start(&p->dst, "198.18.0.2", p->hosts.b, ARGS("--timeout", "3"));
    json_object_put(wait_guest_at_least(&p->src, "passes", 1, 30));
    char to[64];
    snprintf(to, sizeof(to), "198.18.0.2:%d", p->dst.port);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "timeout_ms", json_object_new_int(3000));
    json_object_object_add(a, "streams", json_object_new_int(1));
    vm_migrate_start(&p->src, to, a);
    json_object_put(a);
    double deadline = now_s() + 30;
    while (!fault_fired(&p->dst)) {
        if (now_s() > deadline)
            fail_msg("the destination never received COMMIT");
        usleep(20000);
    }
    link_set(p, "down");
    /* Both time out (3 s) and then keep trying to settle: neither may run the VM. */
    for (int i = 0; i < 8; i++) {
        sleep(1);
        char sb[32], db[32];
        const char *s = vm_state(&p->src, sb, sizeof(sb)), *d = vm_state(&p->dst, db, sizeof(db));
        print_message("partitioned %d s: source %s, destination %s\n", i + 1, s, d);
        if (!strcmp(s, "running") || !strcmp(d, "running"))
            fail_msg("a VM runs during the partition: source %s, destination %s", s, d);
    }
    /* The destination holds its verified copy in doubt, paused. */
    char b[32];
    for (double end = now_s() + 10; strcmp(vm_state(&p->dst, b, sizeof(b)), "paused");) {
        if (now_s() > end)
            fail_msg("the destination is %s, not paused in doubt", b);
        usleep(100000);
    }
    struct json_object *in = vm_cmd(&p->dst, "status", NULL), *inc;
    assert_true(json_object_object_get_ex(in, "incoming", &inc));
    assert_string_equal(json_str(inc, "status"), "in-doubt");
    json_object_put(in);
    struct json_object *st = vm_cmd(&p->src, "migrate-status", NULL), *m;
    assert_true(json_object_object_get_ex(st, "migration", &m));
    assert_string_equal(json_str(m, "status"), "resolving");
    json_object_put(st);
}

static void finish(struct partitioned *p)
{
    vm_proc_stop(&p->src);
    vm_proc_stop(&p->dst);
    test_hosts_destroy(&p->hosts);
}

static void operator_keeps_the_destination(void **state)
{
    (void)state;
    struct partitioned p;
    partition_after_commit(&p);
    /* The guide's procedure: quit the source, then resume the destination. */
    json_object_put(vm_cmd_any(&p.src, "quit", NULL));
    vm_proc_wait_exit(&p.src, 20);
    json_object_put(vm_cmd(&p.dst, "resume", NULL));
    char b[32];
    assert_string_equal(vm_state(&p.dst, b, sizeof(b)), "running");
    assert_verify_clean(&p.dst, "destination");
    /* Healing the network changes nothing: the destination keeps it. */
    link_set(&p, "up");
    sleep(2);
    assert_string_equal(vm_state(&p.dst, b, sizeof(b)), "running");
    finish(&p);
}

static void operator_keeps_the_source(void **state)
{
    (void)state;
    struct partitioned p;
    partition_after_commit(&p);
    /* The guide's procedure: quit the destination's copy; once the source reaches the
     * destination host again and finds nothing listening, it resumes the VM itself. */
    json_object_put(vm_cmd_any(&p.dst, "quit", NULL));
    vm_proc_wait_exit(&p.dst, 20);
    char b[32];
    assert_string_equal(vm_state(&p.src, b, sizeof(b)), "paused");
    link_set(&p, "up");
    struct json_object *m = vm_migration_wait(&p.src, 30);
    assert_string_equal(json_str(m, "status"), "failed");
    print_message("source after healing: %s\n", json_str(m, "error"));
    json_object_put(m);
    assert_string_equal(vm_state(&p.src, b, sizeof(b)), "running");
    assert_verify_clean(&p.src, "source");
    finish(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(operator_keeps_the_destination),
        cmocka_unit_test(operator_keeps_the_source),
    };
    /* VMSHIFT_FAULT_SAMPLE (the ASan pass): the code paths of one procedure suffice. */
    const char *sample = getenv("VMSHIFT_FAULT_SAMPLE");
    return _cmocka_run_group_tests("faults_partition", tests,
                                   sample && atoi(sample) > 1 ? 1 : 2, NULL, NULL);
}
