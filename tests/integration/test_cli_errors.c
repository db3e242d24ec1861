/* Integration: mistakes a user can make end with one line naming the value and the fix,
 * and a non-zero exit. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

static void expect_failure(const char *const *args, const char *needle1, const char *needle2)
{
    char err[4096];
    int status = run_vmshift(args, err, sizeof(err), 30);
    if (status == 0)
        fail_msg("vmshift succeeded but should have failed; stderr: %s", err);
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("stderr does not mention '%s'%s%s: %s", needle1, needle2 ? " and " : "",
                 needle2 ? needle2 : "", err);
}

static void missing_guest_file(void **state)
{
    (void)state;
    require_kvm();
    expect_failure(ARGS("run", "--kernel", "/nonexistent/guest.elf"), "/nonexistent/guest.elf",
                   "No such file");
}

static void file_that_is_not_a_guest(void **state)
{
    (void)state;
    require_kvm();
    expect_failure(ARGS("run", "--kernel", "/etc/hostname"), "/etc/hostname",
                   "not a bootable guest");
}

static void bad_sizes_and_values(void **state)
{
    (void)state;
    expect_failure(ARGS("run", "--mem", "12Q"), "12Q", "suffix");
    expect_failure(ARGS("run", "--mem", "1M"), "--mem", "between");
    expect_failure(ARGS("run", "--vcpus", "0"), "--vcpus '0'", "1 to");
    expect_failure(ARGS("run", "--workload", "busy"), "'busy'", "continuous");
    expect_failure(ARGS("run", "--mem", "64M", "--range", "4M:128M"), "does not fit", NULL);
    expect_failure(ARGS("frobnicate"), "frobnicate", "--help");
    /* A NIC's fields are checked before anything is built, on both sides of a migration. */
    expect_failure(ARGS("run", "--nic", "tap=t0,mac=zz"), "mac 'zz'", "MAC address");
    expect_failure(ARGS("receive", "--listen", "127.0.0.1:0", "--insecure", "--nic",
                        "tap=t0,mac=52:54:00:12:34:56,vlan=0"), "vlan '0'", NULL);
    /* Every command names the option whose value is missing or wrong, not its value. */
    expect_failure(ARGS("migrate", "/tmp/none.sock", "--to", "127.0.0.1:1", "--downtime-limit",
                        "abc"), "--downtime-limit 'abc' is not a whole number", NULL);
    expect_failure(ARGS("migrate", "/tmp/none.sock", "--to"), "--to needs a value", NULL);
    expect_failure(ARGS("receive", "--listen"), "--listen needs a value", NULL);
    expect_failure(ARGS("plan", "--mem"), "--mem needs a value", NULL);
    expect_failure(ARGS("evacuate", "--from"), "--from needs a value", NULL);
}

static void missing_kvm_device(void **state)
{
    (void)state;
    expect_failure(ARGS("run", "--kvm-device", "/nonexistent/kvm"), "/nonexistent/kvm",
                   "kvm");
}

static void more_ram_than_the_host_has(void **state)
{
    (void)state;
    require_kvm();
    expect_failure(ARGS("run", "--mem", "63G"), "63.0 GiB", "smaller --mem");
}

static void missing_preload_file(void **state)
{
    (void)state;
    require_kvm();
    expect_failure(ARGS("run", "--mem", "32M", "--preload", "/nonexistent.img@8M"),
                   "/nonexistent.img", "cannot open");
    expect_failure(ARGS("run", "--mem", "32M", "--preload", "/etc/hostname@0x1000"),
                   "boot area", "0x400000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(missing_guest_file),
        cmocka_unit_test(file_that_is_not_a_guest),
        cmocka_unit_test(bad_sizes_and_values),
        cmocka_unit_test(missing_kvm_device),
        cmocka_unit_test(more_ram_than_the_host_has),
        cmocka_unit_test(missing_preload_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
