/* Unit tests: virtio-blk against hostile requests (src/vmm/virtio/blk_request.c and the
 * device around it), on a real file with the I/O thread running: sectors past the end,
 * sector * 512 overflowing, data that is not whole sectors, writes to a read-only disk,
 * unknown types, bad DISCARD / WRITE_ZEROES segments: each answered with IOERR or UNSUPP,
 * the queue still usable and the file untouched. Chains that cannot carry a request (a
 * header too short or writable, a read-only status byte, a loop, a buffer outside RAM)
 * stop the queue instead, without an answer. */
#include "blk_fixture.h"

/* ---- Requests that get an error status ---- */

static void out_of_range_sectors(void **state)
{
    struct fixture *f = *state;
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x77, 4096);
    /* The last sector is fine; one past it, or a request running past it, is not. */
    assert_int_equal(run_request(f, VS_BLK_T_IN, CAPACITY - 1, 512, true), VS_BLK_S_OK);
    assert_int_equal(run_request(f, VS_BLK_T_IN, CAPACITY, 512, true), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, CAPACITY - 1, 1024, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, CAPACITY + 1000, 512, false), VS_BLK_S_IOERR);
    /* sector * 512 overflows 64 bits (a naive end check would wrap to a small offset). */
    assert_int_equal(run_request(f, VS_BLK_T_OUT, (UINT64_MAX / 512) + 1, 512, false),
                     VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, UINT64_MAX, 4096, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, UINT64_MAX - 7, 4096, false), VS_BLK_S_IOERR);
    /* Not a whole number of sectors. */
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 0, 100, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_IN, 0, 513, true), VS_BLK_S_IOERR);
    assert_true(file_all_zero(f));
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.refused, 8);
    assert_int_equal(st.writes, 0);
    assert_false(queue_broken(f));
}

static void unknown_type(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_request(f, 3, 0, 512, false), VS_BLK_S_UNSUPP);
    assert_int_equal(run_request(f, VS_BLK_T_SECURE_ERASE, 0, 16, false), VS_BLK_S_UNSUPP);
    assert_int_equal(run_request(f, 0xffffffffu, 0, 0, false), VS_BLK_S_UNSUPP);
    assert_true(file_all_zero(f));
    assert_false(queue_broken(f));
}

static void discard_and_write_zeroes(void **state)
{
    struct fixture *f = *state;
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0xab, 8192);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 64, 8192, false), VS_BLK_S_OK);
    /* Zero sectors 64..71 (keep them allocated), punch 72..79. */
    put_range(f, 0, 64, 8, 0);
    put_range(f, 1, 72, 8, VS_BLK_WZ_F_UNMAP);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 32, false), VS_BLK_S_OK);
    assert_true(file_all_zero(f));
    /* DISCARD takes no flags; segments must be whole, inside the disk, not too many. */
    put_range(f, 0, 0, 8, VS_BLK_WZ_F_UNMAP);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_UNSUPP);
    put_range(f, 0, CAPACITY - 4, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_IOERR);
    put_range(f, 0, UINT64_MAX - 2, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 16, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 15, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16 * (VS_BLK_MAX_RANGES + 1), false),
                     VS_BLK_S_IOERR);
    put_range(f, 0, 0, 8, 0x80);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 16, false), VS_BLK_S_UNSUPP);
    put_range(f, 0, 0, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_OK);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.write_zeroes, 1);
    assert_int_equal(st.discards, 1);
    assert_int_equal(st.refused, 6);
}

static void read_only_disk(void **state)
{
    struct fixture *f = *state;
    wr(&f->t, VS_VMMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t features = rd(&f->t, VS_VMMIO_DEVICE_FEATURES);
    assert_true(features & VS_VIRTIO_BLK_F_RO);
    assert_false(features & (VS_VIRTIO_BLK_F_DISCARD | VS_VIRTIO_BLK_F_WRITE_ZEROES));
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x11, 4096);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 0, 4096, false), VS_BLK_S_IOERR);
    put_range(f, 0, 0, 8, 0);
    assert_int_equal(run_request(f, VS_BLK_T_DISCARD, 0, 16, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_WRITE_ZEROES, 0, 16, false), VS_BLK_S_IOERR);
    assert_int_equal(run_request(f, VS_BLK_T_IN, 0, 4096, true), VS_BLK_S_OK);
    assert_int_equal(run_request(f, VS_BLK_T_FLUSH, 0, 0, false), VS_BLK_S_OK);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_false(st.writable);
    assert_int_equal(st.refused, 3);
}

/* ---- Chains that stop the queue ---- */

/* Chains that cannot carry a request stop the queue, without an answer. */
static void assert_breaks(struct fixture *f)
{
    notify(f);
    usleep(20000);
    assert_true(queue_broken(f));
    assert_int_equal(guest_used_idx(&f->g), f->used_seen);
    assert_true(file_all_zero(f));
}

static void header_too_short(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 8, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

static void header_in_writable_buffer(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_IN, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_WRITE | VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

static void status_read_only(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 0);
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x42, 512);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, DATA_OFF), 512, VS_VQ_DESC_F_NEXT, 2);
    guest_desc(&f->g, 2, buf(0, STATUS_OFF), 1, 0, 0);   /* not writable */
    guest_offer(&f->g, 0);
    assert_breaks(f);
    assert_int_equal(*guest_ptr(&f->g, buf(0, STATUS_OFF)), 0xee);
}

static void chain_loops(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, buf(0, DATA_OFF), 512, VS_VQ_DESC_F_NEXT, 0);   /* back to 0 */
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

static void buffer_outside_ram(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_IN, 0);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    guest_desc(&f->g, 1, GUEST_RAM - 256, 512, VS_VQ_DESC_F_WRITE | VS_VQ_DESC_F_NEXT, 2);
    guest_desc(&f->g, 2, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    assert_breaks(f);
}

int main(void)
{
    vs_log_set_level(VS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(out_of_range_sectors, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(unknown_type, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(discard_and_write_zeroes, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(read_only_disk, setup_ro, teardown),
        cmocka_unit_test_setup_teardown(header_too_short, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(header_in_writable_buffer, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(status_read_only, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(chain_loops, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(buffer_outside_ram, setup_rw, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
