/* Unit tests: vmshiftd's bookkeeping (src/host/host_table.c: names, the memory budget, how
 * a monitor's exit ends its entry), the command lines it starts VMs with
 * (src/host/host_spawn.c) and its options (src/host/host_options.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "host/host_options.h"
#include "host/host_spawn.h"
#include "host/host_table.h"
#include "expect_error.h"

#define MiB (1ull << 20)

static struct host_vm *add(struct host_table *t, const char *name, uint64_t mem,
                           enum host_vm_state st)
{
    struct host_vm v = { .state = st, .mem = mem };
    snprintf(v.name, sizeof(v.name), "%s", name);
    struct host_vm *out;
    assert_int_equal(host_table_add(t, &v, &out), 0);
    return out;
}

static void names(void **state)
{
    (void)state;
    assert_int_equal(host_check_name("vm-1.a_b"), 0);
    expect_msg(host_check_name(""), "name", NULL);
    expect_msg(host_check_name(NULL), "name", NULL);
    expect_msg(host_check_name("../etc"), "must not start", NULL);
    expect_msg(host_check_name("a/b"), "contains '/'", NULL);
    expect_msg(host_check_name("a b"), "contains ' '", NULL);
    expect_msg(host_check_name("0123456789012345678901234567890123"), "too long", NULL);
}

static void budget_counts_live_vms_only(void **state)
{
    (void)state;
    struct host_table t = { .max_mem = 256 * MiB };
    add(&t, "a", 64 * MiB, HOST_VM_RUNNING);
    add(&t, "b", 64 * MiB, HOST_VM_INCOMING);
    add(&t, "c", 64 * MiB, HOST_VM_STOPPING);
    add(&t, "gone", 512 * MiB, HOST_VM_MIGRATED);
    add(&t, "dead", 512 * MiB, HOST_VM_CRASHED);
    assert_int_equal(host_table_reserved(&t), 192 * MiB);
    assert_int_equal(host_table_admit(&t, "d", 64 * MiB), 0);
    expect_msg(host_table_admit(&t, "d", 65 * MiB), "no room for VM 'd'", "64.0 MiB free");
    expect_msg(host_table_admit(&t, "d", 1ull << 62), "--max-mem 256.0 MiB", NULL);
    expect_msg(host_table_admit(&t, "a", 1 * MiB), "already running", NULL);
    expect_msg(host_table_admit(&t, "b", 1 * MiB), "already incoming", NULL);
    expect_msg(host_table_admit(&t, "e", 0), "memory size is 0", NULL);
    /* An ended entry's name can be used again; adding replaces it. */
    assert_int_equal(host_table_admit(&t, "gone", 64 * MiB), 0);
    add(&t, "gone", 64 * MiB, HOST_VM_INCOMING);
    assert_int_equal(t.count, 5);
    assert_int_equal(host_table_reserved(&t), 256 * MiB);
    t.max_mem = 0;              /* no budget: only names and the table size limit */
    assert_int_equal(host_table_admit(&t, "z", 1ull << 40), 0);
    host_table_clear(&t);
}

static void find_and_remove(void **state)
{
    (void)state;
    struct host_table t = { 0 };
    struct host_vm *a = add(&t, "a", MiB, HOST_VM_RUNNING);
    a->pid = 42;
    add(&t, "b", MiB, HOST_VM_EXITED)->pid = 43;
    assert_ptr_equal(host_table_find(&t, "a"), a);
    assert_null(host_table_find(&t, "c"));
    assert_ptr_equal(host_table_find_pid(&t, 42), a);
    assert_null(host_table_find_pid(&t, 43));  /* ended entries have no process */
    host_table_remove(&t, a);
    assert_null(host_table_find(&t, "a"));
    assert_int_equal(t.count, 1);
    host_table_clear(&t);
}

static void how_entries_end(void **state)
{
    (void)state;
    struct host_vm v = { .state = HOST_VM_RUNNING };
    assert_int_equal(host_vm_end_state(&v, 0), HOST_VM_EXITED);
    assert_int_equal(host_vm_end_state(&v, 3), HOST_VM_CRASHED);
    assert_int_equal(host_vm_end_state(&v, 128 + 9), HOST_VM_CRASHED);
    v.state = HOST_VM_STOPPING;
    assert_int_equal(host_vm_end_state(&v, 137), HOST_VM_STOPPED);
    v.was_migrated = true;
    assert_int_equal(host_vm_end_state(&v, 0), HOST_VM_MIGRATED);
    v.state = HOST_VM_INCOMING;
    assert_int_equal(host_vm_end_state(&v, 1), HOST_VM_FAILED);
    v.state = HOST_VM_STARTING;
    assert_int_equal(host_vm_end_state(&v, 1), HOST_VM_FAILED);
    assert_string_equal(host_vm_state_name(HOST_VM_MIGRATED), "migrated");
}

static char *joined(const struct host_argv *a)
{
    static char buf[2048];
    buf[0] = '\0';
    for (int i = 0; i < a->n; i++)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", i ? " " : "", a->v[i]);
    return buf;
}

static void run_command_line(void **state)
{
    (void)state;
    struct json_object *req = json_tokener_parse(
        "{\"cmd\":\"vm-start\",\"name\":\"a\",\"mem\":\"64M\",\"vcpus\":2,\"workload\":"
        "\"verify\",\"fill\":\"random\",\"rate\":1000,\"paused\":true}");
    struct host_argv a;
    uint64_t mem;
    unsigned vcpus;
    assert_int_equal(host_run_argv("/bin/vmshift", req, "/s/a/ctl.sock", "/s/a/serial.log", &a,
                                   &mem, &vcpus), 0);
    assert_int_equal(mem, 64 * MiB);
    assert_int_equal(vcpus, 2);
    assert_string_equal(joined(&a), "/bin/vmshift run --ctl /s/a/ctl.sock --serial "
                                    "/s/a/serial.log --keep-after-migrate --mem 67108864 --vcpus 2 --workload verify "
                                    "--fill random --rate 1000 --paused");
    host_argv_free(&a);
    json_object_put(req);

    req = json_tokener_parse("{\"name\":\"a\",\"vcpus\":2}");
    expect_msg(host_run_argv("v", req, "c", "s", &a, &mem, &vcpus), "mem=SIZE", NULL);
    json_object_put(req);
    req = json_tokener_parse("{\"name\":\"a\",\"mem\":\"64M\",\"ctl\":\"/etc/x\"}");
    expect_msg(host_run_argv("v", req, "c", "s", &a, &mem, &vcpus), "'ctl'", "known:");
    json_object_put(req);
    req = json_tokener_parse("{\"name\":\"a\",\"mem\":\"64M\",\"vcpus\":0}");
    expect_msg(host_run_argv("v", req, "c", "s", &a, &mem, &vcpus), "vcpus=0", NULL);
    json_object_put(req);
    req = json_tokener_parse("{\"name\":\"a\",\"mem\":\"64M\",\"workload\":3}");
    expect_msg(host_run_argv("v", req, "c", "s", &a, &mem, &vcpus), "workload", NULL);
    json_object_put(req);
}

static void receive_command_line_carries_the_security_options(void **state)
{
    (void)state;
    const char *extra[] = { "--insecure", "--psk-file", "/etc/k", NULL };
    struct host_receive_opts ro = { .listen_addr = "198.18.0.2", .extra_args = extra,
                                    .accept_timeout_s = 30 };
    struct host_argv a;
    assert_int_equal(host_receive_argv("/bin/vmshift", &ro, "/s/v", "/s/v/ctl.sock", 32 * MiB,
                                       &a), 0);
    assert_string_equal(joined(&a), "/bin/vmshift receive --listen 198.18.0.2:0 --port-file "
                                    "/s/v/port --ctl /s/v/ctl.sock --serial /s/v/serial.log "
                                    "--keep-after-migrate --max-mem 33554432 --report /s/v/incoming.json "
                                    "--accept-timeout 30 --insecure --psk-file /etc/k");
    host_argv_free(&a);
}

#define ARGV(...) ((char *[]){ "vmshiftd", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "vmshiftd", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, ...) host_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), "/opt/vs/vmshiftd", (o))

static void daemon_options(void **state)
{
    (void)state;
    static struct host_options o;
    assert_int_equal(PARSE(&o, "--ctl", "/run/h.sock"), 0);
    assert_string_equal(o.state_dir, "/run/h.sock.d");
    assert_string_equal(o.name, "/run/h.sock");
    assert_string_equal(o.vmshift, "/opt/vs/vmshift");
    assert_string_equal(o.receive.listen_addr, "127.0.0.1");
    assert_int_equal(o.max_mem, 0);
    assert_false(o.die_with_daemon);
    assert_int_equal(PARSE(&o, "--ctl", "h.sock", "--state-dir", "/var/vs/", "--name", "B",
                           "--max-mem", "6G", "--migration-addr", "198.18.0.2",
                           "--receive-opt", "--insecure", "--receive-opt=--x=1",
                           "--accept-timeout", "5", "--vms-die-with-daemon",
                           "--vmshift", "/x/vmshift"), 0);
    assert_string_equal(o.state_dir, "/var/vs");
    assert_string_equal(o.name, "B");
    assert_int_equal(o.max_mem, 6ull << 30);
    assert_string_equal(o.receive.extra_args[0], "--insecure");
    assert_string_equal(o.receive.extra_args[1], "--x=1");
    assert_null(o.receive.extra_args[2]);
    assert_true(o.receive.accept_timeout_s == 5);
    assert_true(o.die_with_daemon);
    expect_msg(PARSE(&o, "--state-dir", "/x"), "--ctl", NULL);
    expect_msg(PARSE(&o, "--ctl", "h", "--max-mem", "lots"), "--max-mem", NULL);
    expect_msg(PARSE(&o, "--ctl", "h", "--stop-timeout", "-1"), "--stop-timeout", NULL);
    expect_msg(PARSE(&o, "--ctl", "h", "--state-dir",
                     "/a/very/long/state/directory/path/that/leaves/no/room/for/vm/names/x"),
               "too long", NULL);
    expect_msg(PARSE(&o, "--ctl", "h", "--frobnicate"), "--frobnicate", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(budget_counts_live_vms_only),
        cmocka_unit_test(find_and_remove),
        cmocka_unit_test(how_entries_end),
        cmocka_unit_test(run_command_line),
        cmocka_unit_test(receive_command_line_carries_the_security_options),
        cmocka_unit_test(daemon_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
