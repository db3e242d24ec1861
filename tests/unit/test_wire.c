/* Unit tests: the migration stream writer and its reader (src/wire/) over a socketpair:
 * every record type round trip, pages into RAM, the writer's own checks, HELLO and reason
 * validation. Hostile input: test_wire_hostile.c. */
#include "wire_fixture.h"

static void round_trip_every_record_type(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_hello hello = { .version_major = VS_WIRE_VERSION_MAJOR, .page_size = PG,
                                   .ram_size = 64 << 20, .nr_vcpus = 2, .boot_id = { 7 },
                                   .nr_streams = 4, .codecs = 1u << VS_CODEC_LZ4 };
    struct vs_wire_hello_reply reply = { .accepted = 1, .boot_id = { 9 } };
    struct vs_wire_pass_end pe = { .pass = 3, .final = 1, .pages_sent = 12345 };
    uint8_t vcpu[8 + 40];
    struct vs_wire_vcpu_state vs = { .index = 1 };
    memcpy(vcpu, &vs, sizeof(vs));
    for (size_t i = 8; i < sizeof(vcpu); i++)
        vcpu[i] = (uint8_t)i;
    uint8_t machine[24] = { 1, 2, 3 };
    struct vs_wire_digest dig = { 11, 22, 33, 44 };
    struct vs_wire_verdict verdict = { .ok = 1 };
    struct vs_wire_resumed res = { 100, 200 };
    const char reason[] = "operator cancelled";
    strcpy(reply.reason, "fine");
    const struct { unsigned type; const void *p; uint32_t len; } recs[] = {
        { VS_REC_HELLO, &hello, sizeof(hello) },
        { VS_REC_HELLO_REPLY, &reply, sizeof(reply) },
        { VS_REC_PASS_END, &pe, sizeof(pe) },
        { VS_REC_VCPU_STATE, vcpu, sizeof(vcpu) },
        { VS_REC_MACHINE_STATE, machine, sizeof(machine) },
        { VS_REC_DIGEST, &dig, sizeof(dig) },
        { VS_REC_VERIFY_REPLY, &verdict, sizeof(verdict) },
        { VS_REC_COMMIT, NULL, 0 },
        { VS_REC_RESUMED, &res, sizeof(res) },
        { VS_REC_ABORT, reason, sizeof(reason) },
    };
    size_t n = sizeof(recs) / sizeof(recs[0]);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vs_wire_send(&f->w, recs[i].type, recs[i].p, recs[i].len), 0);

    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        struct vs_wire_header h;
        uint8_t buf[512];
        assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
        assert_int_equal(h.type, recs[i].type);
        assert_int_equal(h.seq, i);
        assert_int_equal(h.length, recs[i].len);
        assert_int_equal(f->r.record_offset, offset);
        if (recs[i].type == VS_REC_VCPU_STATE || recs[i].type == VS_REC_MACHINE_STATE ||
            recs[i].type == VS_REC_COMMIT || recs[i].type == VS_REC_ABORT)
            assert_int_equal(vs_wire_read_payload(&f->r, &h, buf, sizeof(buf)), 0);
        else
            assert_int_equal(vs_wire_read_fixed(&f->r, &h, recs[i].type, buf, recs[i].len), 0);
        if (recs[i].len)
            assert_memory_equal(buf, recs[i].p, recs[i].len);
        offset += sizeof(h) + recs[i].len;
        assert_int_equal(f->r.offset, offset);
    }
    assert_int_equal(f->r.offset, f->tx->bytes_sent);
    assert_int_equal(f->rx->bytes_received, f->tx->bytes_sent);
    assert_int_equal(vs_wire_check_hello(&hello), 0);
    assert_int_equal(vs_wire_check_reason(reason, sizeof(reason)), 0);
}

struct page_job {
    struct vs_wire_writer *w;
    const uint8_t *ram;
    const uint64_t *gpa;
    uint32_t count;
    int rc;
};

static void *send_pages_thread(void *arg)
{
    struct page_job *j = arg;
    j->rc = vs_wire_send_pages(j->w, j->ram, j->gpa, j->count, 5);
    return NULL;
}

static void pages_land_in_ram(void **state)
{
    struct fixture *f = *state;
    const uint64_t npages = VS_WIRE_MAX_PAGES + 64, ram_size = npages * PG;
    uint8_t *src = malloc(ram_size), *dst = calloc(1, ram_size);
    uint64_t *gpa = malloc(VS_WIRE_MAX_PAGES * sizeof(uint64_t));
    uint64_t *got = malloc(VS_WIRE_MAX_PAGES * sizeof(uint64_t));
    assert_true(src && dst && gpa && got);
    for (uint64_t i = 0; i < ram_size / 8; i++)
        ((uint64_t *)src)[i] = i * 0x9e3779b97f4a7c15ULL + 1;

    /* A scattered record (runs, gaps, a backwards jump), then a full, in-order one. */
    const uint64_t scattered[] = { 5, 6, 7, 20, 2, 1087, 40, 41 };
    uint32_t counts[2] = { sizeof(scattered) / sizeof(scattered[0]), VS_WIRE_MAX_PAGES };
    for (int rec = 0; rec < 2; rec++) {
        for (uint32_t i = 0; i < counts[rec]; i++)
            gpa[i] = (rec == 0 ? scattered[i] : 30 + i) * PG;
        struct page_job job = { &f->w, src, gpa, counts[rec], -1 };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, send_pages_thread, &job), 0);
        struct vs_wire_header h;
        struct vs_wire_pages info;
        int rc = vs_wire_read_header(&f->r, &h);
        if (rc == 0)
            rc = vs_wire_read_pages(&f->r, &h, dst, ram_size, &info, got);
        pthread_join(t, NULL);
        assert_int_equal(job.rc, 0);
        assert_int_equal(rc, 0);
        assert_int_equal(h.type, VS_REC_PAGES);
        assert_int_equal(info.count, counts[rec]);
        assert_int_equal(info.pass, 5);
        assert_memory_equal(got, gpa, counts[rec] * sizeof(uint64_t));
        for (uint32_t i = 0; i < counts[rec]; i++)
            assert_memory_equal(dst + gpa[i], src + gpa[i], PG);
    }
    /* Pages never sent stay untouched. */
    for (uint64_t p = 0; p < npages; p++) {
        if (p == 2 || (p >= 5 && p <= 7) || p == 20 || p == 1087 || (p >= 30 && p < 30 + 1024))
            continue;
        for (uint64_t b = 0; b < PG; b++)
            assert_int_equal(dst[p * PG + b], 0);
    }
    assert_int_equal(f->r.offset, f->tx->bytes_sent);
    free(src);
    free(dst);
    free(gpa);
    free(got);
}

static void zero_pages_round_trip(void **state)
{
    struct fixture *f = *state;
    uint8_t ram[16 * PG];
    memset(ram, 0xaa, sizeof(ram));
    const uint64_t gpa[] = { 0, 15 * PG, 3 * PG };
    uint64_t got[VS_WIRE_MAX_PAGES];
    assert_int_equal(vs_wire_send_zero_pages(&f->w, gpa, 3, 2), 0);
    struct vs_wire_header h;
    struct vs_wire_pages info;
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    assert_int_equal(h.type, VS_REC_ZERO_PAGES);
    assert_int_equal(h.length, 8 + 3 * 8);
    assert_int_equal(vs_wire_read_pages(&f->r, &h, ram, sizeof(ram), &info, got), 0);
    assert_int_equal(info.count, 3);
    assert_int_equal(info.pass, 2);
    assert_memory_equal(got, gpa, sizeof(gpa));
    for (size_t i = 0; i < sizeof(ram); i++)
        assert_int_equal(ram[i], 0xaa);   /* zeroing is the caller's job */
}

static void writer_rejects_bad_page_lists(void **state)
{
    struct fixture *f = *state;
    uint8_t ram[4 * PG] = { 0 };
    uint64_t gpa[2] = { 0, 0x1001 };
    expect_msg(vs_wire_send_pages(&f->w, ram, gpa, 0, 0), "0 pages", NULL);
    expect_msg(vs_wire_send_zero_pages(&f->w, gpa, VS_WIRE_MAX_PAGES + 1, 0), "1025 pages", NULL);
    expect_msg(vs_wire_send_pages(&f->w, ram, gpa, 2, 0), "0x1001", NULL);
    expect_msg(vs_wire_send(&f->w, 99, NULL, 0), "99", NULL);
    /* Nothing was sent and no sequence number was used. */
    send_one_digest(f);
}


static void hello_validation(void **state)
{
    (void)state;
    const struct vs_wire_hello good = { .version_major = VS_WIRE_VERSION_MAJOR,
                                        .version_minor = 7, .page_size = PG,
                                        .ram_size = 16 * PG, .nr_vcpus = 32,
                                        .nr_streams = 16 };
    assert_int_equal(vs_wire_check_hello(&good), 0);   /* another minor is fine */
    struct vs_wire_hello h = good;
    h.version_major = 3;
    h.version_minor = 0;
    expect_msg(vs_wire_check_hello(&h), "stream version 3.0 is not supported", "speaks 2.x");
    h.version_major = 1;
    expect_msg(vs_wire_check_hello(&h), "stream version 1.0 is not supported",
               "upgrade the source");
    h = good;
    h.page_size = 8192;
    expect_msg(vs_wire_check_hello(&h), "page size 8192", NULL);
    h = good;
    h.nr_vcpus = 0;
    expect_msg(vs_wire_check_hello(&h), "0 vCPUs", NULL);
    h.nr_vcpus = 33;
    expect_msg(vs_wire_check_hello(&h), "33 vCPUs", NULL);
    h = good;
    h.ram_size = 4097;
    expect_msg(vs_wire_check_hello(&h), "RAM size 4097", NULL);
    h.ram_size = 0;
    expect_msg(vs_wire_check_hello(&h), "RAM size 0", NULL);
    h = good;
    h.features = 0x8;   /* 0x1..0x4 are POSTCOPY, DEVICES, DISKS */
    expect_msg(vs_wire_check_hello(&h), "feature bits 0x8", NULL);
    h = good;
    h.nr_streams = 0;
    expect_msg(vs_wire_check_hello(&h), "0 streams is out of range 1..16", NULL);
    h.nr_streams = 17;
    expect_msg(vs_wire_check_hello(&h), "17 streams", NULL);
    h = good;
    h.codecs = 1u << 9;
    expect_msg(vs_wire_check_hello(&h), "unknown codec bits 0x200", NULL);

    /* Extra streams must name the session and fit its stream count. */
    h = good;
    h.nr_streams = 3;
    memset(h.session, 0xab, sizeof(h.session));
    struct vs_wire_stream_hello sh = { .index = 2, .nr_streams = 3 };
    memcpy(sh.session, h.session, sizeof(sh.session));
    assert_int_equal(vs_wire_check_stream_hello(&sh, &h), 0);
    sh.index = 3;
    expect_msg(vs_wire_check_stream_hello(&sh, &h), "stream 3 of 3", NULL);
    sh.index = 0;
    expect_msg(vs_wire_check_stream_hello(&sh, &h), "stream 0 of 3", NULL);
    sh.index = 1;
    sh.nr_streams = 4;
    expect_msg(vs_wire_check_stream_hello(&sh, &h), "stream 1 of 4", NULL);
    sh.nr_streams = 3;
    sh.session[5] ^= 1;
    expect_msg(vs_wire_check_stream_hello(&sh, &h), "another migration session", NULL);
}

static void reason_validation(void **state)
{
    (void)state;
    char reason[VS_WIRE_MAX_REASON];
    memset(reason, 'x', sizeof(reason));
    expect_msg(vs_wire_check_reason(reason, sizeof(reason)), "not NUL-terminated", "256");
    reason[sizeof(reason) - 1] = '\0';
    assert_int_equal(vs_wire_check_reason(reason, sizeof(reason)), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(round_trip_every_record_type),
        T(pages_land_in_ram),
        T(zero_pages_round_trip),
        T(writer_rejects_bad_page_lists),
        T(hello_validation),
        T(reason_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
