/* Integration: mistakes a user can make end with one line naming the value and the fix,
 * and the exit status every command shares (docs/guide.md, "Exit status"): 2 for a usage
 * error (unknown command or option, missing or bad value), 1 for a failure at run time,
 * 0 for success. */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#define USAGE 2     /* what the command line says is wrong */
#define FAILED 1    /* it could not be done */

/* BIN ARGS exits with code and says needle1 (and needle2) on stderr. */
static void expect_exit_of(const char *bin, int code, const char *const *args,
                           const char *needle1, const char *needle2)
{
    char err[4096];
    int status = run_program(bin, args, err, sizeof(err), 30);
    if (status != code)
        fail_msg("%s %s ... exited %d, not %d; stderr: %s", bin, args[0] ? args[0] : "",
                 status, code, err);
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("stderr does not mention '%s'%s%s: %s", needle1, needle2 ? " and " : "",
                 needle2 ? needle2 : "", err);
}

static void expect_exit(int code, const char *const *args, const char *needle1,
                        const char *needle2)
{
    expect_exit_of(VMSHIFT_BIN, code, args, needle1, needle2);
}

/* The whole stdout of `vmshift ARGS`, and its exit status in *status. */
static const char *stdout_of(const char *args, int *status)
{
    static char out[16384];
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s 2>/dev/null", VMSHIFT_BIN, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[fread(out, 1, sizeof(out) - 1, p)] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

static void missing_guest_file(void **state)
{
    (void)state;
    require_kvm();
    expect_exit(FAILED, ARGS("run", "--kernel", "/nonexistent/guest.elf"),
                "/nonexistent/guest.elf", "No such file");
}

static void file_that_is_not_a_guest(void **state)
{
    (void)state;
    require_kvm();
    expect_exit(FAILED, ARGS("run", "--kernel", "/etc/hostname"), "/etc/hostname",
                "not a bootable guest");
}

static void bad_sizes_and_values(void **state)
{
    (void)state;
    expect_exit(USAGE, ARGS("run", "--mem", "12Q"), "12Q", "suffix");
    expect_exit(USAGE, ARGS("run", "--mem", "1M"), "--mem", "between");
    expect_exit(USAGE, ARGS("run", "--mem", "5"), "--mem 5 (5 B) is out of range", NULL);
    expect_exit(USAGE, ARGS("run", "--mem", "100001K"), "--mem 100001K (97.7 MiB) is not a "
                "multiple of 2 MiB", NULL);
    expect_exit(USAGE, ARGS("run", "--mem"), "--mem needs a value", NULL);
    expect_exit(USAGE, ARGS("run", "--vcpus", "0"), "--vcpus '0'", "1 to");
    expect_exit(USAGE, ARGS("run", "--workload", "busy"), "'busy'", "continuous");
    expect_exit(USAGE, ARGS("run", "--mem", "64M", "--range", "4M:128M"), "does not fit", NULL);
    expect_exit(USAGE, ARGS("run", "--preload", "/etc/hostname@0x1000"), "boot area",
                "0x400000");
    expect_exit(USAGE, ARGS("frobnicate"), "frobnicate", "--help");
    expect_exit(USAGE, ARGS("run", "--ram-backing", "hugetlb"), "--ram-backing 'hugetlb'",
                "auto, memfd, anon");
    expect_exit(USAGE, ARGS("receive", "--listen", "127.0.0.1:0", "--insecure",
                            "--ram-backing", "shm"), "--ram-backing 'shm'", "auto, memfd, anon");
    /* A NIC's fields are checked before anything is built, on both sides of a migration. */
    expect_exit(USAGE, ARGS("run", "--nic", "tap=t0,mac=zz"), "mac 'zz'", "MAC address");
    expect_exit(USAGE, ARGS("receive", "--listen", "127.0.0.1:0", "--insecure", "--nic",
                        "tap=t0,mac=52:54:00:12:34:56,vlan=0"), "vlan '0'", NULL);
    /* Every command names the option whose value is missing or wrong, not its value. */
    expect_exit(USAGE, ARGS("migrate", "/tmp/none.sock", "--to", "127.0.0.1:1",
                            "--downtime-limit", "abc"),
                "--downtime-limit 'abc' is not a whole number", NULL);
    expect_exit(USAGE, ARGS("migrate", "/tmp/none.sock", "--to"), "--to needs a value", NULL);
    expect_exit(USAGE, ARGS("receive", "--listen"), "--listen needs a value", NULL);
    expect_exit(USAGE, ARGS("plan", "--mem"), "--mem needs a value", NULL);
    expect_exit(USAGE, ARGS("evacuate", "--from"), "--from needs a value", NULL);
}

/* Each command, and vmshiftd: an unknown option and a bad value are usage errors (2); what
 * fails while it runs (a socket nobody serves, an address or file it cannot use) is 1. */
static void every_command_tells_usage_errors_from_failures(void **state)
{
    (void)state;
    static const char *const commands[] = { "run", "receive", "migrate", "plan", "evacuate",
                                            "fill-image", "ctl" };
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        expect_exit(USAGE, ARGS(commands[i], "--frobnicate"), "'--frobnicate'", NULL);
    expect_exit_of(VMSHIFTD_BIN, USAGE, ARGS("--frobnicate"), "'--frobnicate'", NULL);
    expect_exit(USAGE, ARGS("receive", "--listen", "127.0.0.1:0", "--max-vcpus", "99"),
                "--max-vcpus '99'", NULL);
    expect_exit(USAGE, ARGS("receive", "--listen", "127.0.0.1:0"), "--insecure", NULL);
    expect_exit(USAGE, ARGS("migrate", "/tmp/none.sock"), "--to HOST:PORT", NULL);
    expect_exit(USAGE, ARGS("plan", "--bandwidth", "fast"), "--bandwidth", NULL);
    expect_exit(USAGE, ARGS("plan", "--mem", "1G"), "--bandwidth", NULL);
    expect_exit(USAGE, ARGS("evacuate", "--from", "a.sock", "--to", "b.sock", "--parallel", "0"),
                "--parallel '0'", NULL);
    expect_exit(USAGE, ARGS("fill-image", "--size", "4K"), "--out", NULL);
    expect_exit(USAGE, ARGS("ctl", "/tmp/none.sock"), "missing COMMAND", NULL);
    expect_exit(USAGE, ARGS("ctl", "/tmp/none.sock", "status", "--timeout", "soon"),
                "--timeout 'soon'", NULL);
    expect_exit_of(VMSHIFTD_BIN, USAGE, ARGS("--ctl", "/tmp/h.sock", "--max-mem", "lots"),
                   "--max-mem", NULL);

    expect_exit(FAILED, ARGS("run", "--kvm-device", "/nonexistent/kvm"), "/nonexistent/kvm",
                "kvm");
    expect_exit(FAILED, ARGS("receive", "--listen", "198.18.255.254:1", "--insecure"),
                "cannot listen on 198.18.255.254:1", NULL);
    expect_exit(FAILED, ARGS("receive", "--listen", "127.0.0.1:0", "--tls-psk", "/nonexistent"),
                "/nonexistent", NULL);
    expect_exit(FAILED, ARGS("migrate", "/nonexistent/vm.sock", "--to", "127.0.0.1:1",
                             "--insecure"), "cannot connect to control socket", NULL);
    expect_exit(FAILED, ARGS("plan", "/nonexistent/vm.sock", "--bandwidth", "1G"),
                "cannot connect to control socket", NULL);
    expect_exit(FAILED, ARGS("evacuate", "--from", "/nonexistent/a.sock", "--to",
                             "/nonexistent/b.sock"), "cannot list the VMs", NULL);
    expect_exit(FAILED, ARGS("fill-image", "--size", "4K", "--out", "/nonexistent/dir/img"),
                "/nonexistent/dir/img", NULL);
    expect_exit(FAILED, ARGS("ctl", "/nonexistent/vm.sock", "status"),
                "cannot connect to control socket", NULL);
    expect_exit_of(VMSHIFTD_BIN, FAILED, ARGS("--ctl", "/nonexistent/dir/h.sock"),
                   "/nonexistent/dir/h.sock", NULL);
}

/* `vmshift help` (and --help) is the usage on stdout, and success; no command at all is
 * the usage on stderr, and a usage error. */
static void help_is_success(void **state)
{
    (void)state;
    int status;
    const char *out = stdout_of("help", &status);
    assert_int_equal(status, 0);
    if (!strstr(out, "usage: vmshift COMMAND") || !strstr(out, "migrate"))
        fail_msg("vmshift help printed: %s", out);
    out = stdout_of("--help", &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "usage: vmshift COMMAND"));
    out = stdout_of("migrate --help", &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "--downtime-limit"));
    out = stdout_of("ctl --help", &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "query-migrate"));
    expect_exit(USAGE, (const char *const[]){ NULL }, "usage: vmshift COMMAND", NULL);
}

static void more_ram_than_the_host_has(void **state)
{
    (void)state;
    require_kvm();
    expect_exit(FAILED, ARGS("run", "--mem", "63G"), "63.0 GiB", "smaller --mem");
}

static void missing_preload_file(void **state)
{
    (void)state;
    require_kvm();
    expect_exit(FAILED, ARGS("run", "--mem", "32M", "--preload", "/nonexistent.img@8M"),
                "/nonexistent.img", "cannot open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(missing_guest_file),
        cmocka_unit_test(file_that_is_not_a_guest),
        cmocka_unit_test(bad_sizes_and_values),
        cmocka_unit_test(every_command_tells_usage_errors_from_failures),
        cmocka_unit_test(help_is_success),
        cmocka_unit_test(more_ram_than_the_host_has),
        cmocka_unit_test(missing_preload_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
