/* Unit tests: `vmshift run` option parsing and the guest command line (src/cli/run_options.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli/run_options.h"
#include "common/error.h"
#include "vmm/cpu_model.h"
#include "vmshift/guest_abi.h"

#define ARGV(...) ((char *[]){ "run", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "run", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, ...) run_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o))

static void defaults(void **state)
{
    (void)state;
    struct run_options o;
    char *argv[] = { "run", NULL };
    assert_int_equal(run_options_parse(1, argv, &o), 0);
    assert_int_equal(o.vm.mem_size, 256ULL << 20);
    assert_int_equal(o.vm.nr_vcpus, 1);
    assert_string_equal(o.workload, "idle");
    assert_int_equal(o.range_start, VS_WORK_DEFAULT_START);
    assert_int_equal(o.range_size, (256ULL << 20) - VS_WORK_DEFAULT_START);
    assert_string_equal(o.vm.kvm_device, "/dev/kvm");
}

static void full_command_line(void **state)
{
    (void)state;
    struct run_options o;
    assert_int_equal(PARSE(&o, "--mem", "1G", "--vcpus", "2", "--workload", "verify",
                           "--range", "8M:64M", "--rate", "1000", "--fill", "random",
                           "--seed", "9", "--preload", "a.bin@0x800000", "--append", "quiet=1",
                           "--ctl", "/tmp/s", "--paused", "--run-for", "2.5"), 0);
    assert_int_equal(o.vm.mem_size, 1ULL << 30);
    assert_int_equal(o.vm.nr_vcpus, 2);
    assert_int_equal(o.range_start, 8ULL << 20);
    assert_int_equal(o.range_size, 64ULL << 20);
    assert_int_equal(o.vm.nr_preloads, 1);
    assert_string_equal(o.vm.preloads[0].path, "a.bin");
    assert_int_equal(o.vm.preloads[0].addr, 0x800000);
    assert_true(o.start_paused);
    assert_true(o.run_for_s > 2.4 && o.run_for_s < 2.6);
    char cmd[512];
    assert_int_equal(run_options_guest_cmdline(&o, cmd, sizeof(cmd)), 0);
    assert_string_equal(cmd, "workload=verify start=0x800000 size=0x4000000 rate=1000 "
                             "fill=random seed=9 cpus=2 quiet=1");
    run_options_free(&o);
}

static void expect_error(int rc, const char *needle)
{
    assert_true(rc < 0);
    if (!strstr(vs_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", vs_last_error(), needle);
}

/* On the pc machine (the default) RAM above 3 GiB lies from 4 GiB on: the range counts
 * bytes of RAM, skipping the gap, and must start in RAM. */
static void range_skips_the_mmio_gap(void **state)
{
    (void)state;
    struct run_options o;
    assert_int_equal(PARSE(&o, "--mem", "4G"), 0);
    assert_int_equal(o.range_size, (4ULL << 30) - VS_WORK_DEFAULT_START);
    assert_int_equal(PARSE(&o, "--mem", "4G", "--range", "0xbf000000:1040M"), 0);
    assert_int_equal(o.range_size, 1040ULL << 20);
    assert_int_equal(PARSE(&o, "--mem", "4G", "--range", "4G:1G"), 0);
    expect_error(PARSE(&o, "--mem", "4G", "--range", "0xbf000000:1041M"), "does not fit");
    expect_error(PARSE(&o, "--mem", "4G", "--range", "4G:0x40001000"), "MMIO gap");
    expect_error(PARSE(&o, "--mem", "4G", "--range", "3G:4K"), "does not fit");
    expect_error(PARSE(&o, "--mem", "4G", "--range", "5G:4K"), "does not fit");
}

static void bad_values_name_the_option_and_value(void **state)
{
    (void)state;
    struct run_options o;
    expect_error(PARSE(&o, "--mem", "12Q"), "12Q");
    expect_error(PARSE(&o, "--mem", "lots"), "--mem");
    expect_error(PARSE(&o, "--vcpus", "0"), "--vcpus '0'");
    expect_error(PARSE(&o, "--vcpus", "99"), "--vcpus '99'");
    expect_error(PARSE(&o, "--workload", "busy"), "--workload 'busy'");
    expect_error(PARSE(&o, "--fill", "ones"), "--fill 'ones'");
    expect_error(PARSE(&o, "--boot", "bios"), "--boot 'bios'");
    expect_error(PARSE(&o, "--range", "4M"), "START:SIZE");
    expect_error(PARSE(&o, "--range", "1M:4M"), "4M");
    expect_error(PARSE(&o, "--range", "4M:1G"), "does not fit");
    expect_error(PARSE(&o, "--range", "4M:0"), "empty");
    expect_error(PARSE(&o, "--preload", "nofile"), "FILE@ADDR");
    expect_error(PARSE(&o, "--preload", "f@zz"), "bad address");
    expect_error(PARSE(&o, "--preload", "f@0x1000"), "overlaps the boot area");
    expect_error(PARSE(&o, "--run-for", "soon"), "--run-for 'soon'");
    expect_error(PARSE(&o, "--frobnicate"), "--frobnicate");
    expect_error(PARSE(&o, "extra"), "extra");
    expect_error(PARSE(&o, "--rate", "fast"), "--rate");
    expect_error(PARSE(&o, "--dirty-ring", "5000"), "--dirty-ring 5000 is not a power of two");
    expect_error(PARSE(&o, "--dirty-ring", "1024"), "from 4096 to 65536");
    expect_error(PARSE(&o, "--dirty-ring", "big"), "--dirty-ring 'big'");
    /* --mem is named with the value as given, checked before what derives from it. */
    expect_error(PARSE(&o, "--mem", "5"), "--mem 5 (5 B) is out of range");
    expect_error(PARSE(&o, "--mem", "100001K"), "--mem 100001K (97.7 MiB) is not a multiple "
                                                "of 2 MiB; give e.g. --mem 98M");
    expect_error(PARSE(&o, "--mem"), "--mem needs a value");
    expect_error(PARSE(&o, "--vcpus"), "--vcpus needs a value");
}

static void dirty_ring_size(void **state)
{
    (void)state;
    struct run_options o;
    assert_int_equal(PARSE(&o, "--dirty-ring", "65536"), 0);
    assert_int_equal(o.vm.dirty_ring, 65536);
    assert_int_equal(PARSE(&o, "--mem", "64M"), 0);
    assert_int_equal(o.vm.dirty_ring, 0);   /* off unless asked for */
}

static void cpu_model(void **state)
{
    (void)state;
    struct run_options o;
    assert_int_equal(PARSE(&o, "--mem", "64M"), 0);
    assert_null(o.vm.cpu_model);                       /* host unless asked for */
    assert_int_equal(PARSE(&o, "--cpu", "x86-64-v3"), 0);
    assert_non_null(o.vm.cpu_model);
    assert_string_equal(o.vm.cpu_model->name, "x86-64-v3");
    assert_int_equal(PARSE(&o, "--cpu", "host"), 0);
    assert_null(o.vm.cpu_model);
    expect_error(PARSE(&o, "--cpu", "x86-64-v5"), "--cpu 'x86-64-v5' is unknown");
}

static void help_flag(void **state)
{
    (void)state;
    struct run_options o;
    assert_int_equal(PARSE(&o, "--help"), 0);
    assert_true(o.help);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(full_command_line),
        cmocka_unit_test(bad_values_name_the_option_and_value),
        cmocka_unit_test(range_skips_the_mmio_gap),
        cmocka_unit_test(help_flag),
        cmocka_unit_test(dirty_ring_size),
        cmocka_unit_test(cpu_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
