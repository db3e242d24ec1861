/* The guest's split-virtqueue driver side (guest/virtq.c), compiled for the host, playing
 * the device by hand: buffers are posted as the spec says, and every used entry a device
 * must not return (twice, unknown, too long, an index jumping back or too far) is caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "virtq.h"

#define BUF_LEN 32

static struct vs_vq_rings rings;
static struct vs_vq q;

static void setup_queue(uint16_t size, uint16_t buffers)
{
    memset(&rings, 0, sizeof(rings));
    vs_vq_init(&q, &rings, size);
    for (uint16_t id = 0; id < buffers; id++)
        vs_vq_post(&q, id, 0x1000 + id * BUF_LEN, BUF_LEN);
}

/* The device returns buffer id with len bytes. */
static void device_use(uint32_t id, uint32_t len)
{
    struct vs_vq_used_elem *e = (struct vs_vq_used_elem *)&rings.used.ring[rings.used.idx % q.size];
    e->id = id;
    e->len = len;
    rings.used.idx++;
}

static void posts_writable_buffers_in_order(void **state)
{
    (void)state;
    setup_queue(16, 8);
    assert_int_equal(rings.avail.idx, 8);
    assert_int_equal(rings.avail.flags, 0);
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(rings.avail.ring[i], i);
        assert_int_equal(rings.desc[i].addr, 0x1000 + i * BUF_LEN);
        assert_int_equal(rings.desc[i].len, BUF_LEN);
        assert_int_equal(rings.desc[i].flags, VS_VQ_DESC_F_WRITE);
    }
    assert_int_equal(q.outstanding, 8);
}

/* A virtio-blk request: header, data, status, linked in order, returned under its head
 * with at most its writable bytes. */
static void posts_chains(void **state)
{
    (void)state;
    const char *why = "";
    uint16_t id;
    uint32_t len;
    setup_queue(16, 0);
    struct vs_vq_desc d[3] = {
        { .addr = 0x5000, .len = 16, .flags = 0, .next = 9 },    /* next is ignored */
        { .addr = 0x6000, .len = 4096, .flags = VS_VQ_DESC_F_WRITE },
        { .addr = 0x5010, .len = 1, .flags = VS_VQ_DESC_F_WRITE },
    };
    vs_vq_post_chain(&q, 4, d, 3);
    assert_int_equal(rings.avail.idx, 1);
    assert_int_equal(rings.avail.ring[0], 4);
    assert_int_equal(rings.desc[4].flags, VS_VQ_DESC_F_NEXT);
    assert_int_equal(rings.desc[4].next, 5);
    assert_int_equal(rings.desc[5].flags, VS_VQ_DESC_F_NEXT | VS_VQ_DESC_F_WRITE);
    assert_int_equal(rings.desc[5].next, 6);
    assert_int_equal(rings.desc[6].flags, VS_VQ_DESC_F_WRITE);
    assert_int_equal(rings.desc[6].addr, 0x5010);
    device_use(4, 4098);   /* one byte more than it can have written */
    assert_int_equal(vs_vq_used_new(&q, &why), 1);
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), -1);
    assert_int_equal(id, 4);
    assert_int_equal(len, 4097);
    vs_vq_post_chain(&q, 4, d, 3);
    device_use(4, 4097);
    assert_int_equal(vs_vq_used_new(&q, &why), 1);
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), 0);
    assert_int_equal(len, 4097);
    assert_int_equal(q.outstanding, 0);
}

static void takes_used_entries(void **state)
{
    (void)state;
    const char *why = "";
    uint16_t id;
    uint32_t len;
    setup_queue(16, 8);
    assert_int_equal(vs_vq_used_new(&q, &why), 0);
    device_use(3, 10);
    device_use(0, BUF_LEN);
    assert_int_equal(vs_vq_used_new(&q, &why), 2);
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), 0);
    assert_int_equal(id, 3);
    assert_int_equal(len, 10);
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), 0);
    assert_int_equal(id, 0);
    assert_int_equal(len, BUF_LEN);
    assert_int_equal(q.outstanding, 6);
    assert_int_equal(vs_vq_used_new(&q, &why), 0);
}

static void a_request_completed_twice_is_caught(void **state)
{
    (void)state;
    const char *why = "";
    uint16_t id;
    uint32_t len;
    setup_queue(16, 8);
    device_use(5, 4);
    device_use(5, 4);
    assert_int_equal(vs_vq_used_new(&q, &why), 2);
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), 0);
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), -1);
    assert_int_equal(id, VS_VQ_NO_ID);
    assert_non_null(strstr(why, "completed twice"));
    assert_int_equal(q.outstanding, 7);
}

static void unknown_and_too_long_entries_are_caught(void **state)
{
    (void)state;
    const char *why = "";
    uint16_t id;
    uint32_t len;
    setup_queue(8, 4);
    device_use(9, 4);                /* beyond the queue */
    device_use(2, BUF_LEN + 1);      /* more than the buffer holds */
    assert_int_equal(vs_vq_used_new(&q, &why), 2);
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), -1);
    assert_int_equal(id, VS_VQ_NO_ID);
    assert_non_null(strstr(why, "no buffer"));
    assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), -1);
    assert_int_equal(id, 2);                  /* returned all the same: it may be reposted */
    assert_int_equal(len, BUF_LEN);
    assert_non_null(strstr(why, "more bytes"));
    assert_int_equal(q.outstanding, 3);
}

static void used_index_jumps_are_caught(void **state)
{
    (void)state;
    const char *why = "";
    setup_queue(16, 4);
    rings.used.idx = 5;              /* 5 entries, 4 buffers outstanding */
    assert_int_equal(vs_vq_used_new(&q, &why), -1);
    assert_non_null(strstr(why, "past the buffers outstanding"));
    rings.used.idx = (uint16_t)-1;   /* backwards */
    assert_int_equal(vs_vq_used_new(&q, &why), -1);
    assert_non_null(strstr(why, "backwards"));
}

/* The 16-bit indices wrap; a small queue cycles through them many times. */
static void indices_wrap(void **state)
{
    (void)state;
    const char *why = "";
    uint16_t id;
    uint32_t len;
    setup_queue(4, 4);
    for (unsigned round = 0; round < 70000; round++) {
        uint32_t want = (round * 7) % 4;
        device_use(want, round % BUF_LEN);
        assert_int_equal(vs_vq_used_new(&q, &why), 1);
        assert_int_equal(vs_vq_take_used(&q, &id, &len, &why), 0);
        assert_int_equal(id, want);
        assert_int_equal(len, round % BUF_LEN);
        vs_vq_post(&q, id, 0x1000 + id * BUF_LEN, BUF_LEN);
    }
    assert_int_equal(q.outstanding, 4);
    assert_int_equal(rings.avail.idx, (uint16_t)(70000 + 4));
    assert_int_equal(q.last_used, (uint16_t)70000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posts_writable_buffers_in_order),
        cmocka_unit_test(takes_used_entries),
        cmocka_unit_test(posts_chains),
        cmocka_unit_test(a_request_completed_twice_is_caught),
        cmocka_unit_test(unknown_and_too_long_entries_are_caught),
        cmocka_unit_test(used_index_jumps_are_caught),
        cmocka_unit_test(indices_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
