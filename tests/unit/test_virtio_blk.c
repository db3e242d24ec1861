/* Unit tests: virtio-blk (src/vmm/virtio/virtio_blk.c, blk_request.c, blk_backend.c) on a
 * real file, driven through the virtio-mmio transport as a guest driver would, with its I/O
 * thread running: the configuration space, reads and writes reaching the file and coming
 * back (also scattered over many buffers), GET_ID; every chain taken returned exactly once;
 * a reset drops what is in flight; a pause completes what was taken and takes nothing
 * more; the migration record refuses a disk of another size; a released disk is closed; a
 * destination's disk is read-only and idle until activated. Hostile requests:
 * test_virtio_blk_hostile.c. */
#include "blk_fixture.h"

/* ---- Tests ---- */

static void config_space(void **state)
{
    struct fixture *f = *state;
    uint64_t cap = 0;
    uint32_t seg_max = 0, blk_size = 0;
    for (unsigned i = 0; i < 8; i++)   /* byte by byte, as some drivers read */
        cap |= (uint64_t)(uint8_t)rd(&f->t, VS_VIRTIO_MMIO_CONFIG + i) << (8 * i);
    seg_max = rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CFG_SEG_MAX);
    blk_size = rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CFG_BLK_SIZE);
    assert_int_equal(cap, CAPACITY);
    assert_int_equal(seg_max, VS_VIRTIO_BLK_QUEUE_MAX - 2);
    assert_int_equal(blk_size, 512);
    assert_int_equal(rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CFG_MAX_DISCARD_SEG),
                     VS_BLK_MAX_RANGES);
    wr(&f->t, VS_VMMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t features = rd(&f->t, VS_VMMIO_DEVICE_FEATURES);
    assert_true(features & VS_VIRTIO_BLK_F_FLUSH);
    assert_true(features & VS_VIRTIO_BLK_F_DISCARD);
    assert_true(features & VS_VIRTIO_BLK_F_WRITE_ZEROES);
    assert_false(features & VS_VIRTIO_BLK_F_RO);
    /* Past the configuration space: reads 0, counted. */
    uint64_t bad = f->t.bad_accesses;
    assert_int_equal(rd(&f->t, VS_VIRTIO_MMIO_CONFIG + VS_VIRTIO_BLK_CONFIG_BYTES), 0);
    assert_int_equal(f->t.bad_accesses, bad + 1);
}

static void write_then_read(void **state)
{
    struct fixture *f = *state;
    uint8_t *data = guest_ptr(&f->g, buf(0, DATA_OFF));
    for (unsigned i = 0; i < 4096; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 10, 4096, false), VS_BLK_S_OK);
    assert_int_equal(guest_used_len(&f->g, (uint16_t)(f->used_seen - 1)), 1);
    uint8_t back[4096];
    file_read(f, 10 * 512, back, sizeof(back));
    assert_memory_equal(back, data, sizeof(back));

    memset(data, 0, 4096);
    assert_int_equal(run_request(f, VS_BLK_T_IN, 10, 4096, true), VS_BLK_S_OK);
    assert_int_equal(guest_used_len(&f->g, (uint16_t)(f->used_seen - 1)), 4097);
    assert_memory_equal(back, data, sizeof(back));
    /* The device's write into guest RAM is noted for migration. */
    uint64_t bits[GUEST_PAGE_WORDS];
    guest_collect_writes(&f->g, bits);
    assert_true(page_noted(bits, buf(0, DATA_OFF)));

    assert_int_equal(run_request(f, VS_BLK_T_FLUSH, 0, 0, false), VS_BLK_S_OK);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.writes, 1);
    assert_int_equal(st.reads, 1);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(st.bytes_written, 4096);
    assert_int_equal(st.refused, 0);
}

/* Data split over many small buffers, the status byte sharing the last one. */
static void scattered_buffers(void **state)
{
    struct fixture *f = *state;
    put_header(f, 0, VS_BLK_T_OUT, 100);
    uint8_t *data = guest_ptr(&f->g, buf(0, DATA_OFF));
    for (unsigned i = 0; i < 2048; i++)
        data[i] = (uint8_t)(i ^ 0x5a);
    guest_desc(&f->g, 0, buf(0, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 1);
    for (uint16_t i = 0; i < 16; i++)   /* 16 x 128 bytes */
        guest_desc(&f->g, 1 + i, buf(0, DATA_OFF) + 128u * i, 128, VS_VQ_DESC_F_NEXT, 2 + i);
    guest_desc(&f->g, 17, buf(0, STATUS_OFF), 1, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 0);
    notify(f);
    wait_used(f, 1);
    assert_int_equal(*guest_ptr(&f->g, buf(0, STATUS_OFF)), VS_BLK_S_OK);
    /* Read it back into one writable buffer of 2049 bytes: data, then the status. */
    put_header(f, 1, VS_BLK_T_IN, 100);
    uint64_t in = buf(1, DATA_OFF);
    memset(guest_ptr(&f->g, in), 0xcc, 2049);
    guest_desc(&f->g, 20, buf(1, HDR_OFF), 16, VS_VQ_DESC_F_NEXT, 21);
    guest_desc(&f->g, 21, in, 2049, VS_VQ_DESC_F_WRITE, 0);
    guest_offer(&f->g, 20);
    notify(f);
    wait_used(f, 1);
    assert_memory_equal(guest_ptr(&f->g, in), data, 2048);
    assert_int_equal(*guest_ptr(&f->g, in + 2048), VS_BLK_S_OK);
}

static void get_id(void **state)
{
    struct fixture *f = *state;
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0xff, 64);
    assert_int_equal(run_request(f, VS_BLK_T_GET_ID, 0, 20, true), VS_BLK_S_OK);
    const char *name = strrchr(f->path, '/') + 1;
    assert_memory_equal(guest_ptr(&f->g, buf(0, DATA_OFF)), name, strlen(name));
    assert_int_equal(*guest_ptr(&f->g, buf(0, DATA_OFF) + strlen(name)), 0);
    assert_int_equal(guest_used_len(&f->g, (uint16_t)(f->used_seen - 1)), 21);
}

/* More requests than the device keeps in flight, in one notification: each comes back
 * exactly once, in some order, and each wrote its own sectors. */
static void every_request_once(void **state)
{
    struct fixture *f = *state;
    enum { N = 40 };   /* 120 descriptors of the queue's 128; the device keeps 32 in flight */
    for (unsigned i = 0; i < N; i++) {
        memset(guest_ptr(&f->g, buf(i, DATA_OFF)), (int)(i + 1), 1024);
        queue_request(f, i, VS_BLK_T_OUT, 2u * i, 1024, false);
    }
    notify(f);
    wait_used(f, N);
    unsigned seen[N] = { 0 };
    for (uint16_t n = 0; n < N; n++) {
        uint32_t id = guest_used_id(&f->g, n);
        assert_true(id % 3 == 0 && id / 3 < N);
        seen[id / 3]++;
    }
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);
        assert_int_equal(*guest_ptr(&f->g, buf(i, STATUS_OFF)), VS_BLK_S_OK);
        uint8_t s[1024];
        file_read(f, i * 1024u, s, sizeof(s));
        assert_int_equal(s[0], i + 1);
        assert_int_equal(s[1023], i + 1);
    }
    usleep(20000);
    assert_int_equal(guest_used_idx(&f->g), N);   /* nothing returned twice */
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.writes, N);
    assert_int_equal(st.in_flight, 0);
}

/* A reset with requests queued: afterwards nothing is in flight and nothing more comes
 * back on the old ring; the device works again once the driver sets it up. */
static void reset_in_flight(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0; i < 12; i++)
        queue_request(f, i, VS_BLK_T_IN, i, 4096, true);
    notify(f);
    wr(&f->t, VS_VMMIO_STATUS, 0);
    uint16_t returned = guest_used_idx(&f->g);
    usleep(50000);
    assert_int_equal(guest_used_idx(&f->g), returned);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.in_flight, 0);
    memset(guest_ptr(&f->g, GUEST_USED), 0, 0x1000);
    memset(guest_ptr(&f->g, GUEST_AVAIL), 0, 0x1000);
    f->g.avail_idx = 0;
    f->used_seen = 0;
    start_driver(f);
    assert_int_equal(run_request(f, VS_BLK_T_FLUSH, 0, 0, false), VS_BLK_S_OK);
}

/* A pause with requests in flight returns once every one of them is back, each once, and
 * the state then saves; chains still in the ring wait for the resume. */
static void quiesce_completes_what_was_taken(void **state)
{
    struct fixture *f = *state;
    enum { N = 40 };
    for (unsigned i = 0; i < N; i++) {
        memset(guest_ptr(&f->g, buf(i, DATA_OFF)), (int)(0x80 + i), 4096);
        queue_request(f, i, VS_BLK_T_OUT, 8u * i, 4096, false);
    }
    notify(f);
    vs_virtio_blk_quiesce(f->d);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_int_equal(st.in_flight, 0);
    uint16_t back = guest_used_idx(&f->g);
    assert_true(back >= VS_VIRTIO_BLK_MAX_INFLIGHT && back <= N);
    assert_int_equal(st.writes, back);
    assert_int_equal(vs_virtio_blk_vmstate.pre_save(f->d), 0);
    usleep(20000);
    assert_int_equal(guest_used_idx(&f->g), back);   /* nothing moves while paused */
    assert_int_equal(vs_virtio_blk_activate(f->d), 0);
    wait_used(f, N);
    unsigned seen[N] = { 0 };
    for (uint16_t n = 0; n < N; n++)
        seen[guest_used_id(&f->g, n) / 3]++;
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
}

/* Paused: nothing is taken, and the state saves; resumed: what waited is served. */
static void quiesce_and_state(void **state)
{
    struct fixture *f = *state;
    vs_virtio_blk_quiesce(f->d);
    queue_request(f, 0, VS_BLK_T_FLUSH, 0, 0, false);
    notify(f);
    usleep(20000);
    assert_int_equal(guest_used_idx(&f->g), 0);
    assert_int_equal(vs_virtio_blk_vmstate.pre_save(f->d), 0);
    assert_int_equal(f->d->rec.capacity, CAPACITY);
    assert_int_equal(f->d->rec.in_flight, 0);
    assert_int_equal(vs_virtio_blk_activate(f->d), 0);
    wait_used(f, 1);

    /* A source's record of a disk of another size, or read-only, is refused. */
    f->d->rec.capacity = CAPACITY + 8;
    expect_msg(vs_virtio_blk_vmstate.post_load(f->d, 1), "sectors", "same disk");
    f->d->rec.capacity = CAPACITY;
    f->d->rec.ro = 1;
    expect_msg(vs_virtio_blk_vmstate.post_load(f->d, 1), "(ro)", NULL);
    f->d->rec.ro = 0;
    f->d->rec.in_flight = 2;
    expect_msg(vs_virtio_blk_vmstate.post_load(f->d, 1), "in flight", NULL);
    f->d->rec.in_flight = 0;
    memcpy(f->d->rec.id, "source-disk-id", 15);
    assert_int_equal(vs_virtio_blk_vmstate.post_load(f->d, 1), 0);
    assert_int_equal(run_request(f, VS_BLK_T_GET_ID, 0, 20, true), VS_BLK_S_OK);
    assert_string_equal((char *)guest_ptr(&f->g, buf(0, DATA_OFF)), "source-disk-id");
}

/* Released (the VM was handed over): the file is closed; activated again, reopened. */
static void release_and_reopen(void **state)
{
    struct fixture *f = *state;
    vs_virtio_blk_release(f->d);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_false(st.open);
    assert_int_equal(vs_virtio_blk_activate(f->d), 0);
    vs_virtio_blk_stats(f->d, &st);
    assert_true(st.open && st.writable && st.running);
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x99, 512);
    assert_int_equal(run_request(f, VS_BLK_T_OUT, 3, 512, false), VS_BLK_S_OK);
}

/* A migration's destination: the file is open read-only and no chain is taken until the
 * VM is its own (activate), then the disk is writable and the waiting chain is served. */
static void incoming_read_only_until_activated(void **state)
{
    struct fixture *f = *state;
    vs_virtio_blk_close(f->d);
    vs_virtio_mmio_destroy(&f->t);
    assert_int_equal(vs_virtio_blk_open(f->d, f->path, true, &f->g.mem), 0);
    struct vs_irq_line irq = { .set = line_set };
    assert_int_equal(vs_virtio_mmio_init(&f->t, "virtio-blk0", &f->d->ops, f->d, &f->g.mem, irq), 0);
    assert_int_equal(vs_virtio_blk_start(f->d, &f->t), 0);
    memset(guest_ptr(&f->g, GUEST_USED), 0, 0x1000);
    memset(guest_ptr(&f->g, GUEST_AVAIL), 0, 0x1000);
    f->g.avail_idx = 0;
    start_driver(f);
    struct vs_virtio_blk_stats st;
    vs_virtio_blk_stats(f->d, &st);
    assert_true(st.open);
    assert_false(st.writable);
    assert_false(st.running);
    memset(guest_ptr(&f->g, buf(0, DATA_OFF)), 0x5a, 512);
    queue_request(f, 0, VS_BLK_T_OUT, 1, 512, false);
    notify(f);
    usleep(20000);
    assert_int_equal(guest_used_idx(&f->g), 0);
    assert_true(file_all_zero(f));
    assert_int_equal(vs_virtio_blk_activate(f->d), 0);
    wait_used(f, 1);
    assert_int_equal(*guest_ptr(&f->g, buf(0, STATUS_OFF)), VS_BLK_S_OK);
    vs_virtio_blk_stats(f->d, &st);
    assert_true(st.writable && st.running);
    uint8_t s[512];
    file_read(f, 512, s, sizeof(s));
    assert_int_equal(s[0], 0x5a);
}

static void spec_parsing(void **state)
{
    (void)state;
    struct vs_blk_spec s;
    assert_int_equal(vs_blk_spec_parse("/d/x.img", &s), 0);
    assert_string_equal(s.path, "/d/x.img");
    assert_false(s.shared || s.ro);
    assert_int_equal(vs_blk_spec_parse("x.img,shared,ro", &s), 0);
    assert_true(s.shared && s.ro);
    assert_int_equal(s.reconnect_s, VS_BLK_RECONNECT_DEFAULT_S);
    assert_int_equal(vs_blk_spec_parse("nbd://h/e,reconnect=0,shared", &s), 0);
    assert_true(s.shared && s.reconnect_s == 0);
    assert_int_equal(vs_blk_spec_parse("nbd://h/e,reconnect=3600", &s), 0);
    assert_int_equal(s.reconnect_s, 3600);
    expect_msg(vs_blk_spec_parse("x.img,reconnect=3601", &s), "reconnect=3601", "0 to 3600");
    expect_msg(vs_blk_spec_parse("x.img,reconnect=-1", &s), "reconnect=-1", NULL);
    expect_msg(vs_blk_spec_parse("x.img,reconnect=5s", &s), "reconnect=5s", NULL);
    expect_msg(vs_blk_spec_parse("x.img,reconnect=", &s), "reconnect= wants seconds", NULL);
    expect_msg(vs_blk_spec_parse("x.img,rw", &s), "unknown option 'rw'", "FILE[,shared][,ro]");
    expect_msg(vs_blk_spec_parse(",ro", &s), "no file", NULL);
    expect_msg(vs_blk_spec_parse("x.img,", &s), "unknown option ''", NULL);
    struct vs_virtio_blk *d = malloc(sizeof(*d));
    expect_msg(vs_virtio_blk_open(d, "/nonexistent/disk.img", false, NULL), "/nonexistent/disk.img",
               "create it");
    free(d);
}

int main(void)
{
    vs_log_set_level(VS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(config_space, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(write_then_read, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(scattered_buffers, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(get_id, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(every_request_once, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(reset_in_flight, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(quiesce_and_state, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(quiesce_completes_what_was_taken, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(release_and_reopen, setup_rw, teardown),
        cmocka_unit_test_setup_teardown(incoming_read_only_until_activated, setup_rw, teardown),
        cmocka_unit_test(spec_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
