/* Integration: the control socket drives a running VM: pause/resume keep the guest's
 * counters consistent, set-rate changes its dirty rate, debug-poke corruption is caught
 * by the guest's own checks, quit ends the monitor cleanly. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MiB (1ULL << 20)

static const char *str_field(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void pause_freezes_and_resume_continues(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&p, "passes", 1, 60));

    struct json_object *r = vm_cmd(&p, "pause", NULL);
    assert_string_equal(str_field(r, "state"), "paused");
    json_object_put(r);
    struct json_object *a = vm_cmd(&p, "status", NULL);
    usleep(400000);
    struct json_object *b = vm_cmd(&p, "status", NULL);
    assert_string_equal(str_field(b, "state"), "paused");
    uint64_t written = guest_u64(a, "pages_written"), passes = guest_u64(a, "passes");
    assert_int_equal(guest_u64(b, "pages_written"), written);
    assert_int_equal(guest_u64(b, "doorbells"), guest_u64(a, "doorbells"));
    json_object_put(a);
    json_object_put(b);

    r = vm_cmd(&p, "resume", NULL);
    assert_string_equal(str_field(r, "state"), "running");
    json_object_put(r);
    /* counters go on from where they stopped, and the pages written before the pause
     * still check out */
    struct json_object *c = wait_guest_at_least(&p, "passes", passes + 2, 60);
    assert_true(guest_u64(c, "pages_written") > written);
    assert_int_equal(guest_u64(c, "errors"), 0);
    json_object_put(c);
    vm_proc_stop(&p);
    assert_int_equal(p.exit_status, 0);
}

static double measure_rate(struct vm_proc *p, double seconds)
{
    struct json_object *a = vm_cmd(p, "status", NULL);
    double t0 = now_s();
    usleep((useconds_t)(seconds * 1e6));
    struct json_object *b = vm_cmd(p, "status", NULL);
    double rate = (double)(guest_u64(b, "pages_written") - guest_u64(a, "pages_written")) /
                  (now_s() - t0);
    json_object_put(a);
    json_object_put(b);
    return rate;
}

static void set_rate_changes_the_dirty_rate(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--workload", "continuous"));
    json_object_put(wait_guest_at_least(&p, "passes", 1, 60));
    double full = measure_rate(&p, 1.0);
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "rate", json_object_new_int(4000));
    json_object_put(vm_cmd(&p, "set-rate", args));
    json_object_put(args);
    usleep(300000);
    double slow = measure_rate(&p, 1.5);
    print_message("full speed %.0f pages/s, after set-rate 4000: %.0f pages/s\n", full, slow);
    assert_in_range((uint64_t)slow, 3000, 5000);
    assert_true(full > 2 * slow);
    vm_proc_stop(&p);
}

static void poke(struct vm_proc *p, uint64_t addr, uint64_t value)
{
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "addr", json_object_new_uint64(addr));
    json_object_object_add(args, "value", json_object_new_uint64(value));
    json_object_put(vm_cmd(p, "debug-poke", args));
    json_object_put(args);
}

static void verify_catches_a_corrupted_page(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&p, "passes", 1, 60));
    const uint64_t victim = 4 * MiB + 100 * 4096;
    poke(&p, victim + 8, 0x12345678); /* the generation word */
    struct json_object *st = wait_guest_at_least(&p, "errors", 1, 60);
    assert_int_equal(guest_u64(st, "first_bad_addr"), victim);
    json_object_put(st);
    vm_proc_stop(&p);
}

static void once_catches_a_corrupted_page(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "64M", "--workload", "once", "--fill", "random"));
    json_object_put(wait_guest_at_least(&p, "passes", 1, 60));
    const uint64_t victim = 4 * MiB + 7 * 4096;
    poke(&p, victim, 0); /* word 0 of the page is always checked */
    struct json_object *st = wait_guest_at_least(&p, "errors", 1, 60);
    assert_int_equal(guest_u64(st, "first_bad_addr"), victim);
    json_object_put(st);
    vm_proc_stop(&p);
}

static void bad_requests_get_clear_errors(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "16M", "--workload", "idle"));
    struct json_object *r = vm_cmd_any(&p, "frobnicate", NULL), *ok;
    assert_true(json_object_object_get_ex(r, "ok", &ok));
    assert_false(json_object_get_boolean(ok));
    assert_non_null(strstr(str_field(r, "error"), "frobnicate"));
    json_object_put(r);

    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "addr", json_object_new_uint64(64 * MiB));
    json_object_object_add(args, "value", json_object_new_int(1));
    r = vm_cmd_any(&p, "debug-poke", args);
    json_object_put(args);
    assert_non_null(strstr(str_field(r, "error"), "outside guest RAM"));
    json_object_put(r);
    vm_proc_stop(&p);
    assert_int_equal(p.exit_status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pause_freezes_and_resume_continues),
        cmocka_unit_test(set_rate_changes_the_dirty_rate),
        cmocka_unit_test(verify_catches_a_corrupted_page),
        cmocka_unit_test(once_catches_a_corrupted_page),
        cmocka_unit_test(bad_requests_get_clear_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
