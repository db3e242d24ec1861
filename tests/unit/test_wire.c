/* Unit tests: the migration stream writer and its hostile-input parser (src/wire/), over
 * a socketpair. Hostile records are written as raw bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/error.h"
#include "expect_error.h"
#include "transport/channel.h"
#include "wire/format.h"
#include "wire/reader.h"
#include "wire/writer.h"

#define PG VS_WIRE_PAGE_SIZE

struct fixture {
    struct vs_channel *tx, *rx;   /* tx: the sending end, rx: the reading end */
    struct vs_wire_writer w;
    struct vs_wire_reader r;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int sv[2];
    if (!f || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if (vs_channel_from_fd(sv[0], "the-destination", &f->tx) < 0 ||
        vs_channel_from_fd(sv[1], "the-source", &f->rx) < 0)
        return -1;
    if (vs_wire_writer_init(&f->w, f->tx) < 0)
        return -1;
    vs_wire_reader_init(&f->r, f->rx);
    vs_clear_error();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    vs_wire_writer_destroy(&f->w);
    vs_channel_close(f->tx);
    vs_channel_close(f->rx);
    free(f);
    return 0;
}

static void seal(struct vs_wire_header *h)
{
    h->header_sum = 0;
    h->header_sum = XXH32(h, sizeof(*h), 0);
}

static struct vs_wire_header raw_header(unsigned type, uint32_t length, uint64_t seq,
                                        const void *payload)
{
    struct vs_wire_header h = { .magic = VS_WIRE_MAGIC, .type = (uint16_t)type,
                                .length = length, .seq = seq };
    h.payload_sum = length && payload ? XXH3_64bits(payload, length) : 0;
    seal(&h);
    return h;
}

static void raw_write(struct fixture *f, const void *buf, size_t len)
{
    assert_int_equal(send(f->tx->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void raw_record(struct fixture *f, const struct vs_wire_header *h, const void *payload,
                       size_t len)
{
    raw_write(f, h, sizeof(*h));
    if (len)
        raw_write(f, payload, len);
}

/* One valid DIGEST record (#0, 64 bytes on the wire) so later errors have offset 64. */
static void send_one_digest(struct fixture *f)
{
    struct vs_wire_digest d = { .ram_xxh3 = 1, .vcpu_xxh3 = 2, .machine_xxh3 = 3, .pause_ns = 4 };
    assert_int_equal(vs_wire_send(&f->w, VS_REC_DIGEST, &d, sizeof(d)), 0);
    struct vs_wire_header h;
    struct vs_wire_digest got;
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    assert_int_equal(vs_wire_read_fixed(&f->r, &h, VS_REC_DIGEST, &got, sizeof(got)), 0);
    assert_memory_equal(&d, &got, sizeof(d));
}

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

static void bad_magic(void **state)
{
    struct fixture *f = *state;
    send_one_digest(f);
    struct vs_wire_header h = raw_header(VS_REC_COMMIT, 0, 1, NULL);
    h.magic = 0xdeadbeef;
    seal(&h);
    raw_record(f, &h, NULL, 0);
    expect_msg(vs_wire_read_header(&f->r, &h), "bad magic 0xdeadbeef", "at offset 64");
    expect_msg(-1, "expecting #1", "not a vmshift migration stream");
}

static void bad_header_checksum(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_header h = raw_header(VS_REC_COMMIT, 0, 0, NULL);
    h.length = 1;   /* corrupted after sealing */
    raw_record(f, &h, NULL, 0);
    expect_msg(vs_wire_read_header(&f->r, &h), "header checksum mismatch", "at offset 0");
}

static void unknown_type(void **state)
{
    struct fixture *f = *state;
    send_one_digest(f);
    struct vs_wire_header h = raw_header(99, 0, 1, NULL);
    raw_record(f, &h, NULL, 0);
    expect_msg(vs_wire_read_header(&f->r, &h), "record #1 (type 99) at offset 64",
               "unknown record type 99");
}

static void nonzero_flags(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_header h = raw_header(VS_REC_COMMIT, 0, 0, NULL);
    h.flags = 1;
    seal(&h);
    raw_record(f, &h, NULL, 0);
    expect_msg(vs_wire_read_header(&f->r, &h), "record #0 (COMMIT) at offset 0",
               "flags 0x0001");
}

static void skipped_seq(void **state)
{
    struct fixture *f = *state;
    send_one_digest(f);
    struct vs_wire_header h = raw_header(VS_REC_COMMIT, 0, 3, NULL);
    raw_record(f, &h, NULL, 0);
    expect_msg(vs_wire_read_header(&f->r, &h), "record #3 (COMMIT) at offset 64",
               "expected #1, got #3");
}

static void repeated_seq(void **state)
{
    struct fixture *f = *state;
    send_one_digest(f);
    struct vs_wire_header h = raw_header(VS_REC_COMMIT, 0, 0, NULL);
    raw_record(f, &h, NULL, 0);
    expect_msg(vs_wire_read_header(&f->r, &h), "out of order", "expected #1, got #0");
}

static void oversized_lengths(void **state)
{
    struct fixture *f = *state;
    const struct { unsigned type; uint32_t len; const char *name; } cases[] = {
        { VS_REC_PAGES, 8 + VS_WIRE_MAX_PAGES * (8 + PG) + 1, "length 4202505" },
        { VS_REC_PAGES, 8 + 8 + PG - 1, "length 4111" },
        { VS_REC_ZERO_PAGES, 8 + VS_WIRE_MAX_PAGES * 8 + 8, "length 8208" },
        { VS_REC_MACHINE_STATE, VS_WIRE_MAX_STATE + 1, "length 1048577" },
        { VS_REC_VCPU_STATE, 8, "length 8 " },
        { VS_REC_ABORT, VS_WIRE_MAX_REASON + 1, "length 257" },
        { VS_REC_COMMIT, 1, "length 1 " },
        { VS_REC_ABORT, 0xffffffffu, "length 4294967295" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vs_wire_header h = raw_header(cases[i].type, cases[i].len, f->r.next_seq, NULL);
        h.payload_sum = 0;
        seal(&h);
        raw_record(f, &h, NULL, 0);
        expect_msg(vs_wire_read_header(&f->r, &h), cases[i].name,
                   vs_wire_type_name(cases[i].type));
        /* The stream is now in an unknown state; restart it for the next case. */
        f->r.offset = 0;
    }
}

static void fixed_record_wrong_size(void **state)
{
    struct fixture *f = *state;
    uint8_t junk[31] = { 0 };
    struct vs_wire_header h = raw_header(VS_REC_DIGEST, sizeof(junk), 0, junk);
    raw_record(f, &h, junk, sizeof(junk));
    expect_msg(vs_wire_read_header(&f->r, &h), "record #0 (DIGEST)",
               "exactly 32 bytes");
}

static void fixed_record_wrong_type(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_pass_end pe = { 1, 0, 10 };
    assert_int_equal(vs_wire_send(&f->w, VS_REC_PASS_END, &pe, sizeof(pe)), 0);
    struct vs_wire_header h;
    struct vs_wire_digest d;
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_fixed(&f->r, &h, VS_REC_DIGEST, &d, sizeof(d)),
               "expected DIGEST, got PASS_END", "record #0");
    uint8_t small[4];
    expect_msg(vs_wire_read_payload(&f->r, &h, small, sizeof(small)), "16 bytes",
               "4-byte buffer");
}

/* A PAGES record from raw parts: info, gpa list, npages_data pages of pattern bytes. */
static void raw_pages(struct fixture *f, unsigned type, uint32_t count, uint32_t len,
                      const uint64_t *gpa, uint32_t ngpa, uint32_t npages_data, int flip)
{
    size_t total = 8 + ngpa * 8 + (size_t)npages_data * PG;
    uint8_t *p = calloc(1, total);
    struct vs_wire_pages info = { count, 0 };
    memcpy(p, &info, 8);
    memcpy(p + 8, gpa, ngpa * 8);
    for (size_t i = 8 + ngpa * 8; i < total; i++)
        p[i] = (uint8_t)(i * 7);
    struct vs_wire_header h = raw_header(type, len, 0, p);
    if (flip)
        p[total - 100] ^= 1;
    raw_record(f, &h, p, total);
    free(p);
}

static void pages_count_disagrees_with_length(void **state)
{
    struct fixture *f = *state;
    uint8_t ram[8 * PG];
    uint64_t gpa[3] = { 0, PG, 2 * PG }, got[VS_WIRE_MAX_PAGES];
    struct vs_wire_header h;
    struct vs_wire_pages info;
    raw_pages(f, VS_REC_PAGES, 3, 8 + 2 * (8 + PG), gpa, 2, 2, 0);
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_pages(&f->r, &h, ram, sizeof(ram), &info, got),
               "page count 3 needs a payload of 12320 bytes", "record #0 (PAGES) at offset 0");
}

static void pages_count_zero(void **state)
{
    struct fixture *f = *state;
    uint8_t ram[8 * PG];
    uint64_t gpa[2] = { 0, 0 }, got[VS_WIRE_MAX_PAGES];
    struct vs_wire_header h;
    struct vs_wire_pages info;
    raw_pages(f, VS_REC_ZERO_PAGES, 0, 16, gpa, 1, 0, 0);
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_pages(&f->r, &h, ram, sizeof(ram), &info, got),
               "page count 0", "ZERO_PAGES");
}

/* One bad gpa at index 1 of a 2-page record against a RAM of ram_size bytes. */
static void bad_gpa_case(struct fixture *f, unsigned type, uint64_t bad, uint64_t ram_size,
                         const char *n1, const char *n2)
{
    uint8_t *ram = calloc(1, ram_size);
    uint64_t gpa[2] = { PG, bad }, got[VS_WIRE_MAX_PAGES];
    uint32_t per = type == VS_REC_PAGES ? 8 + PG : 8;
    struct vs_wire_header h;
    struct vs_wire_pages info;
    raw_pages(f, type, 2, 8 + 2 * per, gpa, 2, type == VS_REC_PAGES ? 2 : 0, 0);
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_pages(&f->r, &h, ram, ram_size, &info, got), n1, n2);
    /* Nothing was written to RAM before the list was validated. */
    for (uint64_t i = 0; i < ram_size; i++)
        assert_int_equal(ram[i], 0);
    free(ram);
}

static void gpa_unaligned(void **state)
{
    bad_gpa_case(*state, VS_REC_PAGES, 0x3001, 16 * PG, "page 1 of 2: gpa 0x3001",
                 "not 4096-aligned");
}

static void gpa_outside_ram(void **state)
{
    bad_gpa_case(*state, VS_REC_PAGES, 16 * PG, 16 * PG, "page 1 of 2: gpa 0x10000",
                 "outside guest RAM");
}

static void gpa_page_crosses_ram_end(void **state)
{
    /* RAM ends 100 bytes into the page at 0xa000: the page would run past it. */
    bad_gpa_case(*state, VS_REC_PAGES, 10 * PG, 10 * PG + 100, "gpa 0xa000",
                 "outside guest RAM");
}

static void gpa_wraps_around(void **state)
{
    bad_gpa_case(*state, VS_REC_ZERO_PAGES, 0xfffffffffffff000ULL, 16 * PG,
                 "gpa 0xfffffffffffff000", "outside guest RAM");
}

static void payload_checksum_mismatch_pages(void **state)
{
    struct fixture *f = *state;
    uint8_t ram[8 * PG];
    uint64_t gpa[2] = { 2 * PG, 6 * PG }, got[VS_WIRE_MAX_PAGES];
    struct vs_wire_header h;
    struct vs_wire_pages info;
    raw_pages(f, VS_REC_PAGES, 2, 8 + 2 * (8 + PG), gpa, 2, 2, 1);
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_pages(&f->r, &h, ram, sizeof(ram), &info, got),
               "payload checksum mismatch", "record #0 (PAGES) at offset 0");
}

static void payload_checksum_mismatch_fixed(void **state)
{
    struct fixture *f = *state;
    send_one_digest(f);
    struct vs_wire_digest d = { 1, 2, 3, 4 };
    struct vs_wire_header h = raw_header(VS_REC_DIGEST, sizeof(d), 1, &d);
    d.pause_ns ^= 0x100;
    raw_record(f, &h, &d, sizeof(d));
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_fixed(&f->r, &h, VS_REC_DIGEST, &d, sizeof(d)),
               "record #1 (DIGEST) at offset 64", "payload checksum mismatch");
}

static void eof_mid_header(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_header h = raw_header(VS_REC_COMMIT, 0, 0, NULL);
    raw_write(f, &h, 10);
    shutdown(f->tx->fd, SHUT_WR);
    expect_msg(vs_wire_read_header(&f->r, &h), "connection closed by the-source after 10 of 32",
               "record #0 header at offset 0");
}

static void eof_mid_payload(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_digest d = { 1, 2, 3, 4 };
    struct vs_wire_header h = raw_header(VS_REC_DIGEST, sizeof(d), 0, &d);
    raw_record(f, &h, &d, 20);
    shutdown(f->tx->fd, SHUT_WR);
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_fixed(&f->r, &h, VS_REC_DIGEST, &d, sizeof(d)),
               "connection closed by the-source after 20 of 32", "record #0 (DIGEST)");
}

static void silent_peer_times_out(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_header h;
    struct timespec t0, t1;
    assert_int_equal(vs_channel_set_timeout(f->rx, 200), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = vs_wire_read_header(&f->r, &h);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(rc, -ETIMEDOUT);
    expect_msg(rc, "no data from the-source for 200 ms", "record #0");
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms >= 150 && ms < 2000);
}

static void stuck_peer_send_times_out(void **state)
{
    struct fixture *f = *state;
    size_t len = 16 << 20;   /* far more than the socket buffers hold */
    uint8_t *buf = calloc(1, len);
    assert_non_null(buf);
    assert_int_equal(vs_channel_set_timeout(f->tx, 200), 0);
    int rc = vs_channel_write(f->tx, buf, len);
    free(buf);
    assert_int_equal(rc, -ETIMEDOUT);
    expect_msg(rc, "sending to the-destination timed out after", "of 16777216 bytes");
    assert_true(f->tx->bytes_sent > 0 && f->tx->bytes_sent < len);
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
        T(bad_magic),
        T(bad_header_checksum),
        T(unknown_type),
        T(nonzero_flags),
        T(skipped_seq),
        T(repeated_seq),
        T(oversized_lengths),
        T(fixed_record_wrong_size),
        T(fixed_record_wrong_type),
        T(pages_count_disagrees_with_length),
        T(pages_count_zero),
        T(gpa_unaligned),
        T(gpa_outside_ram),
        T(gpa_page_crosses_ram_end),
        T(gpa_wraps_around),
        T(payload_checksum_mismatch_pages),
        T(payload_checksum_mismatch_fixed),
        T(eof_mid_header),
        T(eof_mid_payload),
        T(silent_peer_times_out),
        T(stuck_peer_send_times_out),
        T(hello_validation),
        T(reason_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
