/* Unit tests: the pc machine's virtio-mmio slots (src/vmm/virtio/pc_virtio_slots.c). The
 * command line the monitor writes is read back with the workload guest's own parser, so the
 * guest finds every slot where the monitor put the device. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "params.h"
#include "vmm/ram_layout.h"
#include "vmm/virtio/pc_virtio_slots.h"
#include "vmm/virtio/virtio_mmio.h"
#include "vmshift/mptable.h"

static void test_slots_lie_in_the_gap_apart(void **state)
{
    (void)state;
    for (unsigned i = 0; i < VS_PC_VIRTIO_SLOTS; i++) {
        uint64_t base;
        uint32_t gsi;
        assert_int_equal(vs_pc_virtio_slot(i, &base, &gsi), 0);
        assert_true(base >= VS_PC_MMIO_GAP_START);
        assert_true(base + VS_VIRTIO_MMIO_SIZE <= VS_MP_IOAPIC_ADDR);
        assert_true(gsi < 16);                       /* an ISA line the MP table routes */
        assert_true(gsi != 0 && gsi != 2 && gsi != 4 && gsi != 8);   /* PIT, cascade, COM1, RTC */
        for (unsigned j = 0; j < i; j++) {
            uint64_t other;
            uint32_t other_gsi;
            vs_pc_virtio_slot(j, &other, &other_gsi);
            assert_true(other + VS_VIRTIO_MMIO_SIZE <= base);
            assert_int_not_equal(other_gsi, gsi);
        }
    }
}

static void test_slot_beyond_the_last_is_refused(void **state)
{
    (void)state;
    uint64_t base = 1;
    uint32_t gsi = 1;
    assert_int_equal(vs_pc_virtio_slot(VS_PC_VIRTIO_SLOTS, &base, &gsi), -ENOSPC);
    char buf[512];
    assert_int_equal(vs_pc_virtio_cmdline(buf, sizeof(buf), VS_PC_VIRTIO_SLOTS + 1), -ENOSPC);
}

static void test_guest_parses_every_slot(void **state)
{
    (void)state;
    for (unsigned n = 0; n <= VS_PC_VIRTIO_SLOTS; n++) {
        char buf[1024] = "workload=idle";
        int len = vs_pc_virtio_cmdline(buf + strlen(buf), sizeof(buf) - strlen(buf), n);
        assert_true(len >= 0);
        struct vs_guest_params p;
        char err[128];
        assert_int_equal(vs_params_parse(buf, &p, err, sizeof(err)), 0);
        assert_int_equal(p.nr_virtio, n);
        for (unsigned i = 0; i < n; i++) {
            uint64_t base;
            uint32_t gsi;
            vs_pc_virtio_slot(i, &base, &gsi);
            assert_int_equal(p.virtio[i].base, base);
            assert_int_equal(p.virtio[i].size, VS_VIRTIO_MMIO_SIZE);
            assert_int_equal(p.virtio[i].irq, gsi);
        }
    }
}

static void test_short_buffer_is_refused(void **state)
{
    (void)state;
    char buf[40];
    assert_int_equal(vs_pc_virtio_cmdline(buf, sizeof(buf), 2), -E2BIG);
    assert_int_equal(vs_pc_virtio_cmdline(buf, 0, 1), -E2BIG);
    assert_int_equal(vs_pc_virtio_cmdline(buf, sizeof(buf), 0), 0);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_lie_in_the_gap_apart),
        cmocka_unit_test(test_slot_beyond_the_last_is_refused),
        cmocka_unit_test(test_guest_parses_every_slot),
        cmocka_unit_test(test_short_buffer_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
