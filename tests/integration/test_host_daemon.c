/* Integration: vmshiftd starts, lists and stops VMs, each its own monitor process (one
 * crash ends one VM), keeps to its memory budget, adopts VMs that migrate in, and VMs
 * outlive a crashed daemon and are adopted by the next one. `vmshift evacuate`'s usage
 * errors and unreachable hosts. */
#include "host_harness.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MiB (1ull << 20)

static void wait_state(struct host_proc *h, const char *name, const char *want, double timeout_s)
{
    double deadline = now_s() + timeout_s;
    while (strcmp(host_vm_state(h, name), want)) {
        if (now_s() > deadline) {
            struct json_object *v = host_vm_entry(h, name);
            fail_msg("VM %s on %s is not %s after %.0f s: %s", name, h->name, want, timeout_s,
                     json_object_to_json_string(v));
        }
        usleep(20000);
    }
}

static int entry_pid(struct host_proc *h, const char *name)
{
    struct json_object *v = host_vm_entry(h, name);
    assert_non_null(v);
    int pid = (int)json_num(v, "pid");
    json_object_put(v);
    return pid;
}

static void starts_lists_and_stops_vms(void **state)
{
    (void)state;
    struct host_proc h;
    host_proc_start(&h, "H", NULL, "127.0.0.1", ARGS("--max-mem", "128M"));
    host_vm_start_wait(&h, "a", ARGS("mem=32M", "workload=verify", "fill=random"));
    host_vm_start_wait(&h, "b", ARGS("mem=32M", "workload=idle"));
    struct json_object *l = host_cmd(&h, "vm-list", NULL), *vms;
    assert_true(json_object_object_get_ex(l, "vms", &vms));
    assert_int_equal(json_object_array_length(vms), 2);
    assert_int_equal(json_num(l, "mem_reserved"), 64 * MiB);
    assert_int_equal(json_num(l, "mem_free"), 64 * MiB);
    json_object_put(l);
    int pa = entry_pid(&h, "a"), pb = entry_pid(&h, "b");
    assert_true(pa > 0 && pb > 0 && pa != pb);

    struct json_object *st = host_vm_wait_guest(&h, "a", "passes", 1, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    /* vm-status: the daemon's entry and the VM's own status. */
    struct json_object *vs = host_vm_cmd(&h, "vm-status", "a", NULL), *vm, *vst;
    assert_true(json_object_object_get_ex(vs, "vm", &vm));
    assert_string_equal(json_str(vm, "origin"), "started");
    assert_true(json_object_object_get_ex(vs, "status", &vst));
    assert_string_equal(guest_str(vst, "workload"), "verify");
    json_object_put(vs);
    /* Any VM command through vm-ctl; the VM's own errors come back. */
    json_object_put(host_vm_cmd(&h, "vm-ctl", "a", ARGS("vm-cmd=set-rate", "rate=100")));
    struct json_object *a = json_tokener_parse("{\"name\":\"a\",\"vm-cmd\":\"frobnicate\"}");
    struct json_object *r = host_cmd_any(&h, "vm-ctl", a);
    assert_non_null(strstr(json_str(r, "error"), "The command frobnicate has not been found"));
    json_object_put(r);
    json_object_put(a);
    /* A name is one VM. */
    a = json_tokener_parse("{\"name\":\"a\",\"mem\":\"8M\"}");
    r = host_cmd_any(&h, "vm-start", a);
    assert_non_null(strstr(json_str(r, "error"), "already running"));
    json_object_put(r);
    json_object_put(a);

    json_object_put(host_vm_cmd(&h, "vm-stop", "b", NULL));
    wait_state(&h, "b", "stopped", 20);
    assert_int_equal(kill(pb, 0), -1);
    assert_int_equal(errno, ESRCH);
    l = host_cmd(&h, "host-status", NULL);
    assert_int_equal(json_num(l, "mem_reserved"), 32 * MiB);
    json_object_put(l);
    r = host_vm_cmd(&h, "vm-stop", "b", NULL);     /* an ended entry is forgotten */
    assert_true(json_object_object_get_ex(r, "forgotten", NULL));
    json_object_put(r);
    assert_string_equal(host_vm_state(&h, "b"), "");
    host_proc_stop(&h);
    assert_int_equal(kill(pa, 0), -1);             /* shutting down stopped its VMs */
}

static void one_monitor_crash_takes_down_one_vm(void **state)
{
    (void)state;
    struct host_proc h;
    host_proc_start(&h, "H", NULL, "127.0.0.1", NULL);
    host_vm_start_wait(&h, "a", ARGS("mem=32M", "workload=verify"));
    host_vm_start_wait(&h, "b", ARGS("mem=32M", "workload=verify"));
    struct json_object *st = host_vm_wait_guest(&h, "b", "passes", 1, 60);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    kill(entry_pid(&h, "a"), SIGKILL);
    wait_state(&h, "a", "crashed", 10);
    struct json_object *v = host_vm_entry(&h, "a");
    assert_non_null(strstr(json_str(v, "error"), "killed by signal 9"));
    json_object_put(v);
    struct json_object *a = json_tokener_parse("{\"name\":\"a\",\"vm-cmd\":\"status\"}");
    struct json_object *r = host_cmd_any(&h, "vm-ctl", a);
    assert_non_null(strstr(json_str(r, "error"), "crashed"));
    json_object_put(r);
    json_object_put(a);
    /* The other VM runs on, unharmed. */
    st = host_vm_wait_guest(&h, "b", "passes", passes + 2, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    struct json_object *l = host_cmd(&h, "host-status", NULL);
    assert_int_equal(json_num(l, "mem_reserved"), 32 * MiB);
    json_object_put(l);
    /* The name can be used again. */
    host_vm_start_wait(&h, "a", ARGS("mem=16M", "workload=idle"));
    host_proc_stop(&h);
}

static void budget_and_failed_starts(void **state)
{
    (void)state;
    struct host_proc h;
    host_proc_start(&h, "H", NULL, "127.0.0.1", ARGS("--max-mem", "64M"));
    host_vm_start_wait(&h, "a", ARGS("mem=32M", "workload=idle"));
    struct json_object *a = json_tokener_parse("{\"name\":\"b\",\"mem\":\"48M\"}");
    struct json_object *r = host_cmd_any(&h, "vm-start", a);
    assert_non_null(strstr(json_str(r, "error"), "--max-mem 64.0 MiB"));
    assert_non_null(strstr(json_str(r, "error"), "32.0 MiB free"));
    json_object_put(r);
    r = host_cmd_any(&h, "vm-receive", a);
    assert_non_null(strstr(json_str(r, "error"), "cannot take VM 'b'"));
    json_object_put(r);
    json_object_put(a);
    /* A VM whose monitor cannot start ends "failed", in its monitor's own words. */
    json_object_put(host_vm_cmd(&h, "vm-start", "c", ARGS("mem=16M", "kernel=/nonexistent.elf")));
    wait_state(&h, "c", "failed", 30);
    struct json_object *v = host_vm_entry(&h, "c");
    assert_non_null(strstr(json_str(v, "error"), "/nonexistent.elf"));
    json_object_put(v);
    struct json_object *l = host_cmd(&h, "host-status", NULL);
    assert_int_equal(json_num(l, "mem_reserved"), 32 * MiB);
    json_object_put(l);
    host_proc_stop(&h);
}

static void incoming_migrations_are_adopted(void **state)
{
    (void)state;
    struct host_proc h;
    host_proc_start(&h, "B", NULL, "127.0.0.1", ARGS("--max-mem", "64M"));
    struct vm_proc src;
    vm_proc_start(&src, ARGS("--mem", "32M", "--workload", "verify", "--fill", "random"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    struct json_object *r = host_vm_cmd(&h, "vm-receive", "mig", ARGS("mem=32M", "vcpus=1"));
    char to[64];
    snprintf(to, sizeof(to), "%s", json_str(r, "to"));
    json_object_put(r);
    assert_string_equal(host_vm_state(&h, "mig"), "incoming");
    struct json_object *rep = vm_migrate(&src, to, NULL, 120);
    print_migration("into vmshiftd", rep);
    assert_string_equal(json_str(rep, "status"), "completed");
    wait_state(&h, "mig", "running", 20);
    struct json_object *vs = host_vm_cmd(&h, "vm-status", "mig", NULL), *vm, *vst, *in;
    assert_true(json_object_object_get_ex(vs, "vm", &vm));
    assert_string_equal(json_str(vm, "origin"), "migrated-in");
    assert_true(json_object_object_get_ex(vs, "status", &vst));
    assert_true(json_object_object_get_ex(vst, "incoming", &in));
    assert_string_equal(json_str(in, "ram-digest"), json_str(rep, "ram-digest"));
    json_object_put(vs);
    json_object_put(rep);
    host_vm_expect_progress(&h, "mig", "passes", 2, 60);
    vm_proc_stop(&src);

    /* A VM larger than it was announced is refused by the receiver: the migration fails,
     * the source keeps the VM, and the reservation goes back. */
    struct vm_proc big;
    vm_proc_start(&big, ARGS("--mem", "48M", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&big, "passes", 1, 60));
    r = host_vm_cmd(&h, "vm-receive", "big", ARGS("mem=32M"));
    snprintf(to, sizeof(to), "%s", json_str(r, "to"));
    json_object_put(r);
    rep = vm_migrate(&big, to, NULL, 60);
    assert_string_equal(json_str(rep, "status"), "failed");
    json_object_put(rep);
    struct json_object *st = vm_cmd(&big, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
    wait_state(&h, "big", "failed", 20);
    struct json_object *l = host_cmd(&h, "host-status", NULL);
    assert_int_equal(json_num(l, "mem_reserved"), 32 * MiB);
    json_object_put(l);
    vm_proc_stop(&big);
    host_proc_stop(&h);
}

static void evacuate_usage_and_missing_hosts(void **state)
{
    (void)state;
    char err[4096];
    int rc = run_vmshift(ARGS("evacuate", "--from", "/nonexistent/a.sock", "--to", "/x.sock"),
                         err, sizeof(err), 30);
    assert_int_equal(rc, 1);   /* a runtime failure, not a usage error */
    assert_non_null(strstr(err, "cannot list the VMs of /nonexistent/a.sock"));
    assert_non_null(strstr(err, "is vmshiftd running there"));
    rc = run_vmshift(ARGS("evacuate", "--from", "a.sock", "--to", "b.sock", "--parallel", "0"),
                     err, sizeof(err), 30);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--parallel '0'"));
    /* An empty host: nothing to do, and that is success. */
    struct host_proc a;
    host_proc_start(&a, "A", NULL, "127.0.0.1", NULL);
    rc = run_vmshift(ARGS("evacuate", "--from", a.sock, "--to", "/nonexistent/b.sock"), err,
                     sizeof(err), 30);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "runs no VMs"));
    /* A destination that cannot be reached refuses the VM; it stays. */
    host_vm_start_wait(&a, "v", ARGS("mem=16M", "workload=idle"));
    rc = run_vmshift(ARGS("evacuate", "--from", a.sock, "--to", "/nonexistent/b.sock"), err,
                     sizeof(err), 30);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "v refused: no destination took it: host unreachable"));
    assert_string_equal(host_vm_state(&a, "v"), "running");
    host_proc_stop(&a);
}

static pid_t orphan;     /* a VM that outlives its daemon: killed if the test fails */

static int kill_orphan(void **state)
{
    (void)state;
    if (orphan > 0)
        kill(orphan, SIGKILL);
    return 0;
}

static void vms_outlive_a_crashed_daemon_and_are_adopted(void **state)
{
    (void)state;
    struct host_proc h;
    host_proc_start_outliving(&h, "H", NULL, "127.0.0.1", ARGS("--max-mem", "64M"));
    host_vm_start_wait(&h, "keep", ARGS("mem=32M", "workload=verify"));
    orphan = entry_pid(&h, "keep");
    json_object_put(host_vm_wait_guest(&h, "keep", "passes", 1, 60));
    kill(h.pid, SIGKILL);
    assert_int_equal(vm_proc_wait_exit(&(struct vm_proc){ .pid = h.pid }, 10), 128 + 9);
    assert_int_equal(kill(orphan, 0), 0);              /* the VM runs on */
    host_proc_restart(&h, ARGS("--max-mem", "64M"));
    struct json_object *e = host_vm_entry(&h, "keep");
    assert_non_null(e);
    assert_string_equal(json_str(e, "state"), "running");
    assert_int_equal(json_num(e, "pid"), orphan);
    assert_int_equal(json_num(e, "mem"), 32 * MiB);
    assert_string_equal(json_str(e, "origin"), "started");
    json_object_put(e);
    struct json_object *l = host_cmd(&h, "host-status", NULL);
    assert_int_equal(json_num(l, "mem_reserved"), 32 * MiB);
    json_object_put(l);
    host_vm_expect_progress(&h, "keep", "passes", 1, 60);
    /* It is the daemon's again: stopping it works, though it is not its child. */
    json_object_put(host_vm_cmd(&h, "vm-stop", "keep", NULL));
    wait_state(&h, "keep", "stopped", 20);
    assert_int_equal(kill(orphan, 0), -1);
    orphan = 0;
    host_proc_stop(&h);
}

/* VMs move back and forth during maintenance: a VM that comes back while the monitor of
 * its earlier visit is still stopping is taken, not refused as "already stopping". The
 * old monitor is frozen (SIGSTOP) so it cannot quit before its stop deadline: without the
 * wait in the daemon both requests below are refused, every time. */
static void a_stopping_namesake_does_not_refuse_a_new_vm(void **state)
{
    (void)state;
    struct host_proc h;
    host_proc_start(&h, "H", NULL, "127.0.0.1", ARGS("--stop-timeout", "2"));
    const char *kinds[] = { "vm-receive", "vm-start" };
    for (int k = 0; k < 2; k++) {
        host_vm_start_wait(&h, "back", ARGS("mem=32M", "workload=idle"));
        int old = entry_pid(&h, "back");
        assert_int_equal(kill(old, SIGSTOP), 0);
        json_object_put(host_vm_cmd(&h, "vm-stop", "back", NULL));
        assert_string_equal(host_vm_state(&h, "back"), "stopping");
        struct json_object *a = json_tokener_parse("{\"name\":\"back\",\"mem\":\"32M\","
                                                   "\"workload\":\"idle\"}");
        struct json_object *r = host_cmd_any(&h, kinds[k], a);
        json_object_put(a);
        struct json_object *ok;
        if (!json_object_object_get_ex(r, "ok", &ok) || !json_object_get_boolean(ok))
            fail_msg("%s of a VM whose namesake is stopping was refused: %s", kinds[k],
                     json_object_to_json_string(r));
        json_object_put(r);
        /* The old monitor is gone (killed at its deadline, reaped), the new entry is live. */
        assert_int_equal(kill(old, 0), -1);
        int now = entry_pid(&h, "back");
        assert_true(now > 0 && now != old);
        json_object_put(host_vm_cmd(&h, "vm-stop", "back", NULL));
        wait_state(&h, "back", "stopped", 20);
        json_object_put(host_vm_cmd(&h, "vm-stop", "back", NULL));   /* forget it */
    }
    host_proc_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(starts_lists_and_stops_vms),
        cmocka_unit_test(one_monitor_crash_takes_down_one_vm),
        cmocka_unit_test(budget_and_failed_starts),
        cmocka_unit_test(incoming_migrations_are_adopted),
        cmocka_unit_test(evacuate_usage_and_missing_hosts),
        cmocka_unit_test(vms_outlive_a_crashed_daemon_and_are_adopted),
        cmocka_unit_test(a_stopping_namesake_does_not_refuse_a_new_vm),
    };
    return cmocka_run_group_tests(tests, NULL, kill_orphan);
}
