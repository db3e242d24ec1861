/* Unit tests: the device bus (src/vmm/bus.c): ranges refused when they overlap, accesses
 * dispatched to the owner with the offset into its range, misses counted and floating. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expect_error.h"
#include "vmm/bus.h"

struct fake_dev {
    unsigned calls;
    uint64_t last_offset;
    unsigned last_size;
    bool last_write;
    uint8_t last_byte;
    uint8_t reply;
};

static void fake_io(void *dev, struct vs_bus_io *io)
{
    struct fake_dev *d = dev;
    d->calls++;
    d->last_offset = io->offset;
    d->last_size = io->size;
    d->last_write = io->is_write;
    if (io->is_write)
        d->last_byte = io->data[0];
    else
        memset(io->data, d->reply, io->size);
}

static void overlaps_are_refused(void **state)
{
    (void)state;
    struct vs_bus bus;
    struct fake_dev a = { 0 };
    vs_bus_init(&bus);
    assert_int_equal(vs_bus_register(&bus, VS_BUS_PIO, 0x3f8, 8, "serial0", fake_io, &a), 0);
    assert_int_equal(vs_bus_register(&bus, VS_BUS_PIO, 0x5a0, 24, "pvport", fake_io, &a), 0);
    /* the tail, the head, the inside and the whole of an existing range */
    expect_msg(vs_bus_register(&bus, VS_BUS_PIO, 0x3f0, 9, "late", fake_io, &a), "late", "serial0");
    expect_msg(vs_bus_register(&bus, VS_BUS_PIO, 0x3ff, 2, "tail", fake_io, &a), "0x3f8-0x3ff", "0x3ff-0x400");
    expect_msg(vs_bus_register(&bus, VS_BUS_PIO, 0x5a4, 1, "inner", fake_io, &a), "pvport", "inner");
    expect_msg(vs_bus_register(&bus, VS_BUS_PIO, 0x300, 0x400, "huge", fake_io, &a), "huge", "overlaps");
    expect_msg(vs_bus_register(&bus, VS_BUS_PIO, 0x10, 0, "empty", fake_io, &a), "empty", "0x10");
    expect_msg(vs_bus_register(&bus, VS_BUS_MMIO, UINT64_MAX - 4, 16, "wrap", fake_io, &a), "wrap", "wraps");
    /* touching ranges and the same addresses in the other space are fine */
    assert_int_equal(vs_bus_register(&bus, VS_BUS_PIO, 0x3f0, 8, "below", fake_io, &a), 0);
    assert_int_equal(vs_bus_register(&bus, VS_BUS_PIO, 0x400, 1, "above", fake_io, &a), 0);
    assert_int_equal(vs_bus_register(&bus, VS_BUS_MMIO, 0x3f8, 8, "mmio", fake_io, &a), 0);
    assert_int_equal(bus.space[VS_BUS_PIO].count, 4);
    for (unsigned i = 1; i < bus.space[VS_BUS_PIO].count; i++)
        assert_true(bus.space[VS_BUS_PIO].r[i - 1].base < bus.space[VS_BUS_PIO].r[i].base);
}

static void a_full_space_is_refused(void **state)
{
    (void)state;
    struct vs_bus bus;
    struct fake_dev a = { 0 };
    vs_bus_init(&bus);
    for (unsigned i = 0; i < VS_BUS_MAX_RANGES; i++)
        assert_int_equal(vs_bus_register(&bus, VS_BUS_MMIO, 0x1000ULL * (VS_BUS_MAX_RANGES - i),
                                         0x1000, "dev", fake_io, &a), 0);
    expect_msg(vs_bus_register(&bus, VS_BUS_MMIO, 0x100000, 1, "extra", fake_io, &a), "extra",
               "at most");
}

static void dispatches_to_the_owner_with_its_offset(void **state)
{
    (void)state;
    struct vs_bus bus;
    struct fake_dev devs[5] = { { .reply = 0x11 }, { .reply = 0x22 }, { .reply = 0x33 },
                                { .reply = 0x44 }, { .reply = 0x55 } };
    const uint64_t base[5] = { 0xd0000000, 0x1000, 0xfec00000, 0x20000, 0x1800 };
    const uint64_t len[5] = { 0x200, 0x800, 0x1000, 4, 0x800 };
    vs_bus_init(&bus);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(vs_bus_register(&bus, VS_BUS_MMIO, base[i], len[i], "d", fake_io,
                                         &devs[i]), 0);
    for (unsigned i = 0; i < 5; i++) {
        uint64_t off[3] = { 0, len[i] / 2, len[i] - 1 };
        for (unsigned k = 0; k < 3; k++) {
            uint8_t data[8] = { 0 };
            struct vs_bus_io io = { .data = data, .size = 4, .vcpu = 1 };
            assert_true(vs_bus_dispatch(&bus, VS_BUS_MMIO, base[i] + off[k], &io));
            assert_int_equal(io.offset, off[k]);
            assert_int_equal(devs[i].last_offset, off[k]);
            assert_int_equal(data[0], devs[i].reply);
            assert_int_equal(data[3], devs[i].reply);
            assert_int_equal(data[4], 0);
        }
        assert_int_equal(devs[i].calls, 3);
    }
    uint8_t b = 0x7e;
    struct vs_bus_io w = { .data = &b, .size = 1, .is_write = true };
    assert_true(vs_bus_dispatch(&bus, VS_BUS_MMIO, 0x1fff, &w));
    assert_int_equal(devs[4].calls, 4);
    assert_int_equal(devs[4].last_offset, 0x7ff);
    assert_true(devs[4].last_write);
    assert_int_equal(devs[4].last_byte, 0x7e);
    assert_int_equal(vs_bus_unclaimed(&bus, VS_BUS_MMIO, NULL), 0);
}

static void unclaimed_accesses_are_counted_and_float_high(void **state)
{
    (void)state;
    struct vs_bus bus;
    struct fake_dev a = { .reply = 0 };
    vs_bus_init(&bus);
    assert_int_equal(vs_bus_register(&bus, VS_BUS_PIO, 0x3f8, 8, "serial0", fake_io, &a), 0);
    uint8_t data[8] = { 0 };
    struct vs_bus_io io = { .data = data, .size = 2 };
    assert_false(vs_bus_dispatch(&bus, VS_BUS_PIO, 0x3f7, &io));
    assert_int_equal(data[0], 0xff);
    assert_int_equal(data[1], 0xff);
    assert_int_equal(data[2], 0);          /* only `size` bytes are touched */
    io.is_write = true;
    data[0] = 1;
    for (int i = 0; i < 20; i++)
        assert_false(vs_bus_dispatch(&bus, VS_BUS_PIO, 0x400 + (uint64_t)i, &io));
    assert_int_equal(data[0], 1);          /* a write is not changed */
    assert_int_equal(a.calls, 0);
    uint64_t last = 0;
    assert_int_equal(vs_bus_unclaimed(&bus, VS_BUS_PIO, &last), 21);
    assert_int_equal(last, 0x413);
    assert_int_equal(vs_bus_unclaimed(&bus, VS_BUS_MMIO, &last), 0);
    /* an empty space misses everything */
    io.is_write = false;
    assert_false(vs_bus_dispatch(&bus, VS_BUS_MMIO, 0, &io));
    assert_int_equal(vs_bus_unclaimed(&bus, VS_BUS_MMIO, &last), 1);
    assert_int_equal(data[0], 0xff);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(overlaps_are_refused),
        cmocka_unit_test(a_full_space_is_refused),
        cmocka_unit_test(dispatches_to_the_owner_with_its_offset),
        cmocka_unit_test(unclaimed_accesses_are_counted_and_float_high),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
