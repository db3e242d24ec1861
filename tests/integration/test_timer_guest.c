/* Integration: the timer workload on the pc machine. vCPU 0 sleeps in sti; hlt and is
 * woken by the PIT (through IOAPIC pin 2, as the MP table says) or its LAPIC timer; the
 * ticks come at the rate asked for, time never goes backwards between them, and they
 * keep coming after a live migration that caught the vCPU waiting for one. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A per-vCPU counter of a status reply. */
static uint64_t vcpu_u64(struct json_object *st, int cpu, const char *key)
{
    struct json_object *per = json_member(json_member(st, "guest"), "per_vcpu");
    struct json_object *c = json_object_array_get_idx(per, cpu), *v;
    assert_non_null(c);
    assert_true(json_object_object_get_ex(c, key, &v));
    return json_object_get_uint64(v);
}

/* Ticks over about `seconds` of wall time, as a rate; checks errors stay 0 meanwhile.
 * Rates stay low (a tick costs ~10 ms of emulation on instruction-emulating hosts) so that
 * they hold with both host cores busy. */
static double tick_rate(struct vm_proc *p, double seconds)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    uint64_t t0 = vcpu_u64(st, 0, "passes");
    json_object_put(st);
    double s0 = now_s();
    usleep((useconds_t)(seconds * 1e6));
    st = vm_cmd(p, "status", NULL);
    uint64_t t1 = vcpu_u64(st, 0, "passes");
    assert_int_equal(vcpu_u64(st, 0, "errors"), 0);
    assert_string_equal(guest_str(st, "state"), "running");
    json_object_put(st);
    /* the guest rings the doorbell every 50 ms or so: allow for that staleness */
    return (double)(t1 - t0) / (now_s() - s0);
}

static void boot_and_check_rate(const char *append, double hz, const char *serial_needle)
{
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--workload", "timer", "--append", append));
    struct json_object *st = wait_guest_at_least(&p, "passes", 10, 60);
    assert_string_equal(guest_str(st, "workload"), "timer");
    assert_int_equal(guest_u64(st, "errors"), 0);
    uint64_t gap = vcpu_u64(st, 0, "max_gap_us");
    json_object_put(st);
    /* a gap of at least one period, and no stall of seconds */
    assert_true(gap >= (uint64_t)(0.9e6 / hz));
    assert_true(gap < 2000000);

    double rate = tick_rate(&p, 3.0);
    print_message("%s: %.1f ticks/s (asked for %.0f), longest gap %llu us\n", append, rate, hz,
                  (unsigned long long)gap);
    assert_true(rate > hz * 0.5);
    assert_true(rate < hz * 1.5);
    const char *log = vm_serial_log(&p);
    assert_non_null(strstr(log, "MP table at 0xf0000 cpus=1"));
    assert_non_null(strstr(log, serial_needle));
    assert_null(strstr(log, "exception"));
    vm_proc_stop(&p);
    assert_int_equal(p.exit_status, 0);
}

static void pit_ticks_through_ioapic_pin_2(void **state)
{
    (void)state;
    boot_and_check_rate("hz=25", 25, "via IOAPIC pin 2");
}

static void lapic_timer_ticks(void **state)
{
    (void)state;
    boot_and_check_rate("hz=10 timer=lapic", 10, "timer=lapic hz=10");
}

static void other_vcpus_verify_meanwhile(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "timer",
                           "--range", "4M:4M", "--append", "hz=25"));
    struct json_object *st = wait_guest_at_least(&p, "doorbells", 1, 30);
    json_object_put(st);
    double t0 = now_s();
    for (;;) {
        st = vm_cmd(&p, "status", NULL);
        if (vcpu_u64(st, 0, "passes") >= 20 && vcpu_u64(st, 1, "passes") >= 3)
            break;
        json_object_put(st);
        if (now_s() - t0 > 90)
            fail_msg("ticks or verify passes stalled");
        usleep(100000);
    }
    assert_int_equal(vcpu_u64(st, 0, "errors"), 0);
    assert_int_equal(vcpu_u64(st, 1, "errors"), 0);
    assert_true(vcpu_u64(st, 1, "pages_checked") > 0);
    json_object_put(st);
    vm_proc_stop(&p);
    assert_int_equal(p.exit_status, 0);
}

static void ticks_continue_after_migration(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "64M", "--workload", "timer", "--append", "hz=25"));
    struct json_object *st = wait_guest_at_least(&src, "passes", 20, 60);
    json_object_put(st);

    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *r = vm_migrate(&src, to, NULL, 120);
    print_migration("timer guest", r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s", json_str(r, "status"), json_str(r, "error"));
    json_object_put(r);
    vm_proc_wait_ctl(&dst, 30);

    st = vm_cmd(&dst, "status", NULL);
    uint64_t ticks = vcpu_u64(st, 0, "passes");
    json_object_put(st);
    /* the vCPU was in hlt waiting for a tick: the next ones must arrive on this side */
    st = wait_guest_at_least(&dst, "passes", ticks + 25, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    double rate = tick_rate(&dst, 2.0);
    print_message("after migration: %.1f ticks/s\n", rate);
    assert_true(rate > 12.5 && rate < 37.5);
    assert_null(strstr(vm_serial_log(&dst), "exception"));
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
    assert_int_equal(dst.exit_status, 0);
}

/* The flat machine has no interrupt controller: the guest says so and stops, the host
 * stays up. */
static void flat_machine_fails_cleanly(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--machine", "flat", "--workload", "timer"));
    double t0 = now_s();
    struct json_object *st;
    for (;;) {
        st = vm_cmd(&p, "status", NULL);
        if (!strcmp(guest_str(st, "state"), "failed"))
            break;
        json_object_put(st);
        if (now_s() - t0 > 30)
            fail_msg("the timer guest did not report its failure on the flat machine");
        usleep(100000);
    }
    assert_int_equal(guest_u64(st, "passes"), 0);
    json_object_put(st);
    assert_non_null(strstr(vm_serial_log(&p), "no local APIC answers at 0xfee00000"));
    vm_proc_stop(&p);
    assert_int_equal(p.exit_status, 0);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pit_ticks_through_ioapic_pin_2),
        cmocka_unit_test(lapic_timer_ticks),
        cmocka_unit_test(other_vcpus_verify_meanwhile),
        cmocka_unit_test(ticks_continue_after_migration),
        cmocka_unit_test(flat_machine_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
