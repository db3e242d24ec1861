/* Unit tests: the migration stream's reader against hostile input (src/wire/reader.c):
 * records written as raw bytes with a bad magic, checksum, type, flags, sequence, length,
 * page list or payload, cut short, or never sent; each refused with a message naming the
 * record, its offset and what was wrong. */
#include "wire_fixture.h"

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

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
