/* Unit tests: the order and destinations of vmshift evacuate (src/evacuate/placement.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "evacuate/placement.h"

#define MiB (1ull << 20)

static void largest_first_then_by_name(void **state)
{
    (void)state;
    struct evac_vm_size vms[] = { { "c", 64 * MiB }, { "a", 512 * MiB }, { "b", 64 * MiB },
                                  { "d", 4096 * MiB }, { "aa", 64 * MiB } };
    unsigned idx[5];
    evac_order(vms, idx, 5);
    const char *want[] = { "d", "a", "aa", "b", "c" };
    for (unsigned i = 0; i < 5; i++)
        assert_string_equal(vms[idx[i]].name, want[i]);
}

static void picks_the_least_busy_host_with_room(void **state)
{
    (void)state;
    struct evac_dest_view d[3] = {
        { .reachable = true, .limited = true, .free = 1024 * MiB, .incoming = 2 },
        { .reachable = true, .limited = true, .free = 256 * MiB, .incoming = 0 },
        { .reachable = true, .limited = true, .free = 512 * MiB, .incoming = 0 },
    };
    assert_int_equal(evac_pick_dest(d, 3, 128 * MiB), 2);   /* idle, most room */
    assert_int_equal(evac_pick_dest(d, 3, 600 * MiB), 0);   /* only one fits */
    assert_int_equal(evac_pick_dest(d, 3, 2048 * MiB), -1); /* none fits */
}

static void unlimited_hosts_have_room_for_anything(void **state)
{
    (void)state;
    struct evac_dest_view d[2] = {
        { .reachable = true, .limited = true, .free = 8192 * MiB },
        { .reachable = true, .limited = false },
    };
    assert_int_equal(evac_pick_dest(d, 2, 64 * MiB), 1);
    assert_int_equal(evac_pick_dest(d, 2, 1ull << 50), 1);
    d[1].incoming = 1;          /* busier: the limited one is preferred while it fits */
    assert_int_equal(evac_pick_dest(d, 2, 64 * MiB), 0);
}

static void skips_tried_and_unreachable_hosts(void **state)
{
    (void)state;
    struct evac_dest_view d[3] = {
        { .reachable = false },
        { .reachable = true, .limited = false, .tried = true },
        { .reachable = true, .limited = true, .free = 64 * MiB },
    };
    assert_int_equal(evac_pick_dest(d, 3, 64 * MiB), 2);
    d[2].tried = true;
    assert_int_equal(evac_pick_dest(d, 3, 64 * MiB), -1);
    assert_int_equal(evac_pick_dest(d, 0, 64 * MiB), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(largest_first_then_by_name),
        cmocka_unit_test(picks_the_least_busy_host_with_room),
        cmocka_unit_test(unlimited_hosts_have_room_for_anything),
        cmocka_unit_test(skips_tried_and_unreachable_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
