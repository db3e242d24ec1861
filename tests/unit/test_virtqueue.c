/* Unit tests: the split virtqueue (src/vmm/virtio/virtqueue.c) against a fake guest:
 * normal and indirect chains, the used ring and EVENT_IDX, and every kind of hostile input
 * (indices, loops, addresses, sizes), which must leave the queue broken, never crash. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/log.h"
#include "virtio_guest.h"
#include "vmm/virtio/virtqueue.h"

#define QSIZE 8
#define R 0                           /* device-readable */
#define W VS_VQ_DESC_F_WRITE
#define N VS_VQ_DESC_F_NEXT
#define I VS_VQ_DESC_F_INDIRECT
#define ITABLE 0x8000u                /* an indirect table */

struct fixture {
    struct guest g;
    struct vs_virtqueue vq;
    struct vs_vq_chain chain;
    unsigned broken_calls, interrupts;
};

static void on_broken(void *ctx, struct vs_virtqueue *vq)
{
    (void)vq;
    ((struct fixture *)ctx)->broken_calls++;
}

static void on_interrupt(void *ctx, struct vs_virtqueue *vq)
{
    (void)vq;
    ((struct fixture *)ctx)->interrupts++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    guest_init(&f->g, QSIZE);
    vs_vq_init(&f->vq, &f->g.mem, 0,
               (struct vs_vq_owner){ .on_broken = on_broken, .on_interrupt = on_interrupt, .ctx = f });
    f->vq.size = QSIZE;
    f->vq.desc_gpa = GUEST_DESC;
    f->vq.avail_gpa = GUEST_AVAIL;
    f->vq.used_gpa = GUEST_USED;
    f->vq.ready = true;
    f->vq.indirect = true;
    assert_int_equal(vs_vq_check_layout(&f->vq, QSIZE), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    guest_free(&f->g);
    free(f);
    return 0;
}

/* The queue is broken, told its owner once, and takes nothing more. */
static void assert_broken(struct fixture *f)
{
    assert_true(f->vq.broken);
    assert_int_equal(f->broken_calls, 1);
    assert_true(f->vq.broken_reason[0] != '\0');
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), -EIO);
    assert_int_equal(vs_vq_push(&f->vq, 0, 0), -EIO);
    assert_false(vs_vq_notify_driver(&f->vq));
    assert_int_equal(guest_used_idx(&f->g), 0);
}

static void pop_breaks(struct fixture *f)
{
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), -EIO);
    assert_broken(f);
}

static void normal_chain_read_write_and_used_ring(void **state)
{
    struct fixture *f = *state;
    memcpy(guest_ptr(&f->g, GUEST_BUF), "request!", 8);
    guest_desc(&f->g, 3, GUEST_BUF, 8, R | N, 5);
    guest_desc(&f->g, 5, GUEST_BUF + 0x2000, 16, W | N, 1);
    guest_desc(&f->g, 1, GUEST_BUF + 0x3000, 4, W, 0);
    guest_offer(&f->g, 3);
    uint64_t bits[GUEST_PAGE_WORDS];
    guest_collect_writes(&f->g, bits);

    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
    assert_int_equal(f->chain.head, 3);
    assert_int_equal(f->chain.nr_segs, 3);
    assert_int_equal(f->chain.nr_read, 1);
    assert_int_equal(f->chain.read_bytes, 8);
    assert_int_equal(f->chain.write_bytes, 20);
    char req[16] = { 0 };
    assert_int_equal(vs_vq_chain_read(&f->chain, 0, req, sizeof(req)), 8);
    assert_string_equal(req, "request!");
    assert_int_equal(vs_vq_chain_read(&f->chain, 4, req, 2), 2);
    assert_memory_equal(req, "es", 2);
    /* 18 bytes across two writable buffers: 16 in the first, 2 in the second. */
    assert_int_equal(vs_vq_chain_write(&f->vq, &f->chain, 0, "abcdefghijklmnopqr", 18), 18);
    assert_memory_equal(guest_ptr(&f->g, GUEST_BUF + 0x2000), "abcdefghijklmnop", 16);
    assert_memory_equal(guest_ptr(&f->g, GUEST_BUF + 0x3000), "qr", 2);
    assert_int_equal(vs_vq_chain_write(&f->vq, &f->chain, 20, "x", 1), 0);   /* past the end */

    assert_int_equal(vs_vq_push(&f->vq, f->chain.head, 18), 0);
    assert_int_equal(guest_used_idx(&f->g), 1);
    assert_int_equal(guest_used_id(&f->g, 0), 3);
    assert_int_equal(guest_used_len(&f->g, 0), 18);
    assert_true(vs_vq_notify_driver(&f->vq));
    assert_int_equal(f->interrupts, 1);
    assert_false(vs_vq_notify_driver(&f->vq));    /* nothing new since */
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 0);
    assert_int_equal(f->vq.last_avail_idx, 1);
    /* Every device write is noted for migration; the readable buffer was not written. */
    guest_collect_writes(&f->g, bits);
    assert_true(page_noted(bits, GUEST_USED));
    assert_true(page_noted(bits, GUEST_BUF + 0x2000));
    assert_true(page_noted(bits, GUEST_BUF + 0x3000));
    assert_false(page_noted(bits, GUEST_BUF));
    assert_false(f->vq.broken);
}

static void chain_of_queue_size_is_fine_and_ring_wraps(void **state)
{
    struct fixture *f = *state;
    for (uint16_t i = 0; i < QSIZE; i++)
        guest_desc(&f->g, i, GUEST_BUF + 16u * i, 16, R | (i + 1 < QSIZE ? N : 0), i + 1);
    /* Free-running indices near the 16-bit wrap. */
    f->vq.last_avail_idx = f->vq.used_idx = 65534;
    f->g.avail_idx = 65534;
    for (int round = 0; round < 4; round++) {
        guest_offer(&f->g, 0);
        assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
        assert_int_equal(f->chain.nr_segs, QSIZE);
        assert_int_equal(vs_vq_push(&f->vq, 0, 0), 0);
    }
    assert_int_equal(f->vq.last_avail_idx, 2);
    assert_int_equal(guest_used_idx(&f->g), 2);
    assert_false(f->vq.broken);
}

static void indirect_tables(void **state)
{
    struct fixture *f = *state;
    /* A direct readable buffer, then an indirect table: readable, writable, writable. */
    guest_desc_at(&f->g, ITABLE, 0, GUEST_BUF, 10, R | N, 2);
    guest_desc_at(&f->g, ITABLE, 2, GUEST_BUF + 0x100, 20, W | N, 1);
    guest_desc_at(&f->g, ITABLE, 1, GUEST_BUF + 0x200, 30, W, 0);
    guest_desc(&f->g, 0, GUEST_BUF + 0x300, 4, R | N, 6);
    guest_desc(&f->g, 6, ITABLE, 3 * 16, I | W, 0);   /* WRITE on it is ignored */
    guest_offer(&f->g, 0);
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
    assert_int_equal(f->chain.nr_segs, 4);
    assert_int_equal(f->chain.nr_read, 2);
    assert_int_equal(f->chain.read_bytes, 14);
    assert_int_equal(f->chain.write_bytes, 50);
    assert_int_equal(f->chain.seg[3].gpa, GUEST_BUF + 0x200);
    assert_false(f->vq.broken);
}

static void indirect_not_negotiated(void **state)
{
    struct fixture *f = *state;
    f->vq.indirect = false;
    guest_desc_at(&f->g, ITABLE, 0, GUEST_BUF, 10, W, 0);
    guest_desc(&f->g, 0, ITABLE, 16, I, 0);
    guest_offer(&f->g, 0);
    pop_breaks(f);
}

static void indirect_malformed(void **state)
{
    struct fixture *f = *state;
    guest_desc_at(&f->g, ITABLE, 0, GUEST_BUF, 10, W, 0);
    struct { uint64_t addr; uint32_t len; uint16_t flags; } bad[] = {
        { ITABLE, 16, I | N },                  /* INDIRECT with NEXT */
        { ITABLE, 0, I },                       /* empty table */
        { ITABLE, 24, I },                      /* not a multiple of 16 */
        { ITABLE, 16 * (VS_VQ_MAX_SEGS + 1), I },       /* too many entries */
        { GUEST_RAM - 16, 32, I },              /* runs past RAM */
        { UINT64_MAX - 15, 32, I },             /* addr + len overflows */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        teardown(state);
        setup(state);
        f = *state;
        guest_desc_at(&f->g, ITABLE, 0, GUEST_BUF, 10, W, 0);
        guest_desc(&f->g, 0, bad[k].addr, bad[k].len, bad[k].flags, 1);
        guest_desc(&f->g, 1, GUEST_BUF, 10, W, 0);
        guest_offer(&f->g, 0);
        pop_breaks(f);
    }
}

static void indirect_nested_loop_and_next_out_of_table(void **state)
{
    struct fixture *f = *state;
    /* Nested: an indirect table entry that is itself INDIRECT. */
    guest_desc_at(&f->g, ITABLE, 0, ITABLE + 0x100, 16, I, 0);
    guest_desc(&f->g, 0, ITABLE, 16, I, 0);
    guest_offer(&f->g, 0);
    pop_breaks(f);

    teardown(state);
    setup(state);
    f = *state;
    /* A loop inside a 2-entry indirect table. */
    guest_desc_at(&f->g, ITABLE, 0, GUEST_BUF, 8, R | N, 1);
    guest_desc_at(&f->g, ITABLE, 1, GUEST_BUF, 8, R | N, 0);
    guest_desc(&f->g, 0, ITABLE, 32, I, 0);
    guest_offer(&f->g, 0);
    pop_breaks(f);

    teardown(state);
    setup(state);
    f = *state;
    /* next beyond the indirect table (but inside the queue's table size). */
    guest_desc_at(&f->g, ITABLE, 0, GUEST_BUF, 8, R | N, 2);
    guest_desc(&f->g, 0, ITABLE, 32, I, 0);
    guest_offer(&f->g, 0);
    pop_breaks(f);
}

static void hostile_available_index(void **state)
{
    struct fixture *f = *state;
    guest_desc(&f->g, 0, GUEST_BUF, 8, W, 0);
    guest_set_avail_idx(&f->g, QSIZE + 1);          /* more entries than the queue has */
    pop_breaks(f);
    assert_int_equal(vs_vq_pending(&f->vq), -EIO);
}

static void hostile_head_and_next(void **state)
{
    struct fixture *f = *state;
    guest_offer(&f->g, QSIZE);                      /* head outside the table */
    pop_breaks(f);

    teardown(state);
    setup(state);
    f = *state;
    guest_desc(&f->g, 0, GUEST_BUF, 8, R | N, 0xffff);   /* next outside the table */
    guest_offer(&f->g, 0);
    pop_breaks(f);
}

static void loops_are_found(void **state)
{
    struct fixture *f = *state;
    guest_desc(&f->g, 0, GUEST_BUF, 8, R | N, 0);   /* points at itself */
    guest_offer(&f->g, 0);
    pop_breaks(f);

    teardown(state);
    setup(state);
    f = *state;
    /* 2 -> 4 -> 7 -> 2: a chain that would be longer than the queue. */
    guest_desc(&f->g, 2, GUEST_BUF, 8, R | N, 4);
    guest_desc(&f->g, 4, GUEST_BUF, 8, R | N, 7);
    guest_desc(&f->g, 7, GUEST_BUF, 8, R | N, 2);
    guest_offer(&f->g, 2);
    pop_breaks(f);

    teardown(state);
    setup(state);
    f = *state;
    /* A loop of empty buffers (no buffer limit would ever stop it). */
    guest_desc(&f->g, 0, GUEST_BUF, 0, R | N, 1);
    guest_desc(&f->g, 1, GUEST_BUF, 0, R | N, 0);
    guest_offer(&f->g, 0);
    pop_breaks(f);
}

static void buffers_outside_ram(void **state)
{
    struct { uint64_t addr; uint32_t len; } bad[] = {
        { GUEST_RAM, 1 },                     /* just past RAM */
        { GUEST_RAM - 4, 8 },                 /* straddles the end */
        { UINT64_MAX - 2, 16 },               /* addr + len overflows */
        { 1ull << 48, 4096 },                 /* far away */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        if (k) {
            teardown(state);
            setup(state);
        }
        struct fixture *f = *state;
        guest_desc(&f->g, 0, GUEST_BUF, 8, R | N, 1);
        guest_desc(&f->g, 1, bad[k].addr, bad[k].len, W, 0);
        guest_offer(&f->g, 0);
        pop_breaks(f);
    }
}

static void chains_larger_than_4gib(void **state)
{
    struct fixture *f = *state;
    /* Pretend RAM is 16 GiB (the device never touches the buffers while walking). */
    f->g.mem.size = 16ull << 30;
    guest_desc(&f->g, 0, 1ull << 30, 3u << 30, R | N, 1);
    guest_desc(&f->g, 1, 5ull << 30, 3u << 30, W, 0);
    guest_offer(&f->g, 0);
    pop_breaks(f);
    f->g.mem.size = GUEST_RAM;
}

static void zero_length_buffers(void **state)
{
    struct fixture *f = *state;
    /* An empty buffer is allowed and holds nothing, wherever it points. */
    guest_desc(&f->g, 0, GUEST_BUF, 8, R | N, 1);
    guest_desc(&f->g, 1, UINT64_MAX, 0, R | N, 2);
    guest_desc(&f->g, 2, GUEST_BUF + 8, 8, W, 0);
    guest_offer(&f->g, 0);
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
    assert_int_equal(f->chain.nr_segs, 2);
    assert_int_equal(f->chain.read_bytes, 8);
    assert_int_equal(f->chain.write_bytes, 8);
    assert_false(f->vq.broken);
    /* A chain of nothing but an empty buffer: taken, with no buffers. */
    guest_desc(&f->g, 3, GUEST_BUF, 0, W, 0);
    guest_offer(&f->g, 3);
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
    assert_int_equal(f->chain.nr_segs, 0);
    assert_int_equal(vs_vq_chain_write(&f->vq, &f->chain, 0, "x", 1), 0);
    assert_false(f->vq.broken);
}

static void readable_after_writable_and_no_write_into_readable(void **state)
{
    struct fixture *f = *state;
    /* The device never writes into a device-readable buffer. */
    memset(guest_ptr(&f->g, GUEST_BUF), 0x55, 16);
    guest_desc(&f->g, 0, GUEST_BUF, 16, R, 0);
    guest_offer(&f->g, 0);
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
    assert_int_equal(vs_vq_chain_write(&f->vq, &f->chain, 0, "xxxx", 4), 0);
    assert_int_equal(guest_ptr(&f->g, GUEST_BUF)[0], 0x55);
    /* A readable buffer after a writable one breaks the queue. */
    guest_desc(&f->g, 1, GUEST_BUF, 8, W | N, 2);
    guest_desc(&f->g, 2, GUEST_BUF + 8, 8, R, 0);
    guest_offer(&f->g, 1);
    pop_breaks(f);
}

static void event_idx_suppresses_and_asks(void **state)
{
    struct fixture *f = *state;
    f->vq.event_idx = true;
    for (uint16_t i = 0; i < 4; i++) {
        guest_desc(&f->g, i, GUEST_BUF + 16u * i, 16, W, 0);
        guest_offer(&f->g, i);
    }
    guest_set_used_event(&f->g, 1);   /* interrupt once used idx passes 1, i.e. reaches 2 */
    bool wanted[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
        assert_int_equal(guest_avail_event(&f->g), i + 1);   /* notify me on the next one */
        assert_int_equal(vs_vq_push(&f->vq, f->chain.head, 16), 0);
        wanted[i] = vs_vq_notify_driver(&f->vq);
    }
    /* The first decision is always yes (nothing known yet); then only on crossing 1. */
    assert_true(wanted[0]);
    assert_true(wanted[1]);
    assert_false(wanted[2]);
    assert_false(wanted[3]);
    /* A batch that crosses used_event as a whole. */
    guest_set_used_event(&f->g, 5);
    for (uint16_t i = 0; i < 3; i++)
        guest_offer(&f->g, i);
    while (vs_vq_pop(&f->vq, &f->chain) > 0)
        assert_int_equal(vs_vq_push(&f->vq, f->chain.head, 1), 0);
    assert_int_equal(guest_used_idx(&f->g), 7);
    assert_true(vs_vq_notify_driver(&f->vq));
    assert_int_equal(f->interrupts, 3);
    assert_int_equal(guest_avail_event(&f->g), 7);
}

static void no_interrupt_flag_without_event_idx(void **state)
{
    struct fixture *f = *state;
    guest_desc(&f->g, 0, GUEST_BUF, 16, W, 0);
    guest_put16(&f->g, GUEST_AVAIL, VS_VQ_AVAIL_F_NO_INTERRUPT);
    guest_offer(&f->g, 0);
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
    assert_int_equal(vs_vq_push(&f->vq, 0, 16), 0);
    assert_false(vs_vq_notify_driver(&f->vq));
    guest_put16(&f->g, GUEST_AVAIL, 0);
    guest_offer(&f->g, 0);
    assert_int_equal(vs_vq_pending(&f->vq), 1);
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 1);
    assert_int_equal(vs_vq_push(&f->vq, 0, 16), 0);
    assert_true(vs_vq_notify_driver(&f->vq));
    assert_int_equal(f->interrupts, 1);
    assert_int_equal(vs_vq_pending(&f->vq), 0);
}

static void layout_checks(void **state)
{
    struct fixture *f = *state;
    char why[128];
    struct vs_virtqueue q = f->vq;
    q.size = 6;
    assert_false(vs_vq_layout_ok(&q, QSIZE, why, sizeof(why)));      /* not a power of two */
    q.size = 16;
    assert_false(vs_vq_layout_ok(&q, QSIZE, why, sizeof(why)));      /* above the maximum */
    q = f->vq;
    q.desc_gpa = GUEST_DESC + 8;
    assert_false(vs_vq_layout_ok(&q, QSIZE, why, sizeof(why)));      /* misaligned */
    q = f->vq;
    q.used_gpa = GUEST_RAM - 8;
    assert_false(vs_vq_layout_ok(&q, QSIZE, why, sizeof(why)));      /* outside RAM */
    assert_non_null(strstr(why, "guest RAM"));
    f->vq.avail_gpa = UINT64_MAX - 1;
    assert_int_equal(vs_vq_check_layout(&f->vq, QSIZE), -EIO);
    assert_broken(f);
}

static void not_ready_takes_nothing(void **state)
{
    struct fixture *f = *state;
    guest_desc(&f->g, 0, GUEST_BUF, 16, W, 0);
    guest_offer(&f->g, 0);
    f->vq.ready = false;
    assert_int_equal(vs_vq_pop(&f->vq, &f->chain), 0);
    assert_int_equal(vs_vq_push(&f->vq, 0, 0), -EIO);
    assert_false(f->vq.broken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(normal_chain_read_write_and_used_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(chain_of_queue_size_is_fine_and_ring_wraps, setup, teardown),
        cmocka_unit_test_setup_teardown(indirect_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(indirect_not_negotiated, setup, teardown),
        cmocka_unit_test_setup_teardown(indirect_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(indirect_nested_loop_and_next_out_of_table, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_available_index, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_head_and_next, setup, teardown),
        cmocka_unit_test_setup_teardown(loops_are_found, setup, teardown),
        cmocka_unit_test_setup_teardown(buffers_outside_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(chains_larger_than_4gib, setup, teardown),
        cmocka_unit_test_setup_teardown(zero_length_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(readable_after_writable_and_no_write_into_readable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(event_idx_suppresses_and_asks, setup, teardown),
        cmocka_unit_test_setup_teardown(no_interrupt_flag_without_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(layout_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(not_ready_takes_nothing, setup, teardown),
    };
    vs_log_set_level(VS_LOG_ERROR);   /* each broken queue logs a warning */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
