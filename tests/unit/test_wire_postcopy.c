/* Unit tests of the post-copy records (stream format 2.1): round trips, and the reader's
 * refusal of hostile or unsolicited ones, over a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <xxhash.h>

#include "expect_error.h"
#include "wire_pair.h"
#include "transport/channel.h"
#include "wire/format.h"
#include "wire/reader.h"
#include "wire/writer.h"

#define PG VS_WIRE_PAGE_SIZE
#define NPAGES 60                     /* not a multiple of 64: the bitmap has a tail */
#define RAM ((uint64_t)NPAGES * PG)

struct fixture {
    struct vs_channel *tx, *rx;
    struct vs_wire_writer w;
    struct vs_wire_reader r;
    uint8_t *ram, *buf;
    uint64_t gpa[VS_WIRE_MAX_PAGES];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || wire_stream_open(&f->tx, &f->rx, &f->w, &f->r) < 0)
        return -1;
    f->r.postcopy = true;
    f->ram = malloc(RAM);
    f->buf = malloc((size_t)VS_WIRE_MAX_PAGES * PG);
    for (size_t i = 0; i < RAM; i++)
        f->ram[i] = (uint8_t)(i * 7 + i / PG);
    vs_clear_error();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wire_stream_close(f->tx, f->rx, &f->w, &f->r);
    free(f->ram);
    free(f->buf);
    free(f);
    return 0;
}

static struct vs_wire_header next(struct fixture *f)
{
    struct vs_wire_header h;
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    return h;
}

static void unsolicited_records_are_refused(void **state)
{
    struct fixture *f = *state;
    f->r.postcopy = false;   /* HELLO_REPLY did not agree VS_FEATURE_POSTCOPY */
    struct vs_wire_postcopy_end e = { .pages = 1 };
    assert_int_equal(vs_wire_send(&f->w, VS_REC_POSTCOPY_END, &e, sizeof(e)), 0);
    struct vs_wire_header h;
    expect_msg(vs_wire_read_header(&f->r, &h), "POSTCOPY_END", "not agreed in the handshake");
}

static void pages_round_trip(void **state)
{
    struct fixture *f = *state;
    const uint64_t list[] = { 3 * PG, 4 * PG, 9 * PG, 20 * PG, 59 * PG };   /* last 2 zero */
    assert_int_equal(vs_wire_send_postcopy_pages(&f->w, f->ram, list, 5, 2, true), 0);
    struct vs_wire_header h = next(f);
    struct vs_wire_postcopy_pages info;
    assert_int_equal(vs_wire_read_postcopy_pages(&f->r, &h, RAM, &info, f->gpa, f->buf), 0);
    assert_int_equal(info.count, 5);
    assert_int_equal(info.zero, 2);
    assert_int_equal(info.urgent, 1);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(f->buf + i * PG, f->ram + list[i], PG);
    assert_memory_equal(f->gpa, list, sizeof(list));
}

/* A POSTCOPY_PAGES record with a well-formed checksum but the given head and list. */
static struct vs_wire_header hostile_pages(struct fixture *f, struct vs_wire_postcopy_pages in,
                                           const uint64_t *list, uint32_t nlist, uint32_t ndata)
{
    size_t len = (size_t)nlist * 8 + (size_t)ndata * PG;
    uint8_t *tail = calloc(1, len);
    memcpy(tail, list, (size_t)nlist * 8);
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_PAGES, &in, sizeof(in), tail,
                                        len), 0);
    free(tail);
    return next(f);
}

static void pages_hostile_counts(void **state)
{
    struct fixture *f = *state;
    uint64_t list[2] = { 0, PG };
    struct vs_wire_postcopy_pages info;
    struct vs_wire_header h = hostile_pages(f, (struct vs_wire_postcopy_pages){ 2, 3, 0, 0 },
                                            list, 2, 0);
    expect_msg(vs_wire_read_postcopy_pages(&f->r, &h, RAM, &info, f->gpa, f->buf),
               "3 zero pages of 2", "at most the count");
}

static void pages_hostile_length(void **state)
{
    struct fixture *f = *state;
    uint64_t list[2] = { 0, PG };
    struct vs_wire_postcopy_pages info;
    struct vs_wire_header h = hostile_pages(f, (struct vs_wire_postcopy_pages){ 2, 0, 0, 0 },
                                            list, 2, 1);   /* one page of data for two */
    expect_msg(vs_wire_read_postcopy_pages(&f->r, &h, RAM, &info, f->gpa, f->buf),
               "2 pages of which 2 carry data", "but the header says");
}

static void pages_hostile_address(void **state)
{
    struct fixture *f = *state;
    uint64_t list[1] = { RAM };    /* one page past the end */
    struct vs_wire_postcopy_pages info;
    struct vs_wire_header h = hostile_pages(f, (struct vs_wire_postcopy_pages){ 1, 1, 0, 0 },
                                            list, 1, 0);
    expect_msg(vs_wire_read_postcopy_pages(&f->r, &h, RAM, &info, f->gpa, f->buf),
               "outside guest RAM", "POSTCOPY_PAGES");
}

static void pages_hostile_urgent_flag(void **state)
{
    struct fixture *f = *state;
    uint64_t list[1] = { PG + 8 };
    struct vs_wire_postcopy_pages info;
    struct vs_wire_header h = hostile_pages(f, (struct vs_wire_postcopy_pages){ 1, 1, 7, 0 },
                                            list, 1, 0);
    expect_msg(vs_wire_read_postcopy_pages(&f->r, &h, RAM, &info, f->gpa, f->buf),
               "urgent 7", NULL);
}

static void pages_corrupted_data(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_postcopy_pages in = { .count = 1 };
    uint8_t payload[sizeof(in) + 8 + PG];
    uint64_t gpa = 2 * PG;
    memcpy(payload, &in, sizeof(in));
    memcpy(payload + sizeof(in), &gpa, 8);
    memset(payload + sizeof(in) + 8, 0x33, PG);
    struct vs_wire_header h = { .magic = VS_WIRE_MAGIC, .type = VS_REC_POSTCOPY_PAGES,
                                .length = sizeof(payload) };
    h.payload_sum = XXH3_64bits(payload, sizeof(payload));
    payload[sizeof(payload) - 1] ^= 1;          /* flipped in transit */
    h.header_sum = XXH32(&h, sizeof(h), 0);
    assert_int_equal(vs_channel_write(f->tx, &h, sizeof(h)), 0);
    assert_int_equal(vs_channel_write(f->tx, payload, sizeof(payload)), 0);
    struct vs_wire_header got = next(f);
    struct vs_wire_postcopy_pages info;
    expect_msg(vs_wire_read_postcopy_pages(&f->r, &got, RAM, &info, f->gpa, f->buf),
               "payload checksum mismatch", "POSTCOPY_PAGES");
}

static void start_bitmap_round_trip(void **state)
{
    struct fixture *f = *state;
    uint64_t map = (1ULL << 3) | (1ULL << 59), got = 0;
    struct vs_wire_postcopy_start ps = { .pause_ns = 5, .missing_pages = 2, .pass = 4 }, out;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_START, &ps, sizeof(ps), &map,
                                        8), 0);
    struct vs_wire_header h = next(f);
    assert_int_equal(vs_wire_read_postcopy_start(&f->r, &h, RAM, &out, &got), 0);
    assert_int_equal(got, map);
    assert_int_equal(out.missing_pages, 2);
}

static void start_bitmap_beyond_ram(void **state)
{
    struct fixture *f = *state;
    uint64_t map = 1ULL << 62, got;      /* page 62 of a 60-page RAM */
    struct vs_wire_postcopy_start ps = { .missing_pages = 1 }, out;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_START, &ps, sizeof(ps), &map,
                                        8), 0);
    struct vs_wire_header h = next(f);
    expect_msg(vs_wire_read_postcopy_start(&f->r, &h, RAM, &out, &got), "beyond guest RAM",
               NULL);
}

static void start_bitmap_count_lies(void **state)
{
    struct fixture *f = *state;
    uint64_t map = 7, got;
    struct vs_wire_postcopy_start ps = { .missing_pages = 2 }, out;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_START, &ps, sizeof(ps), &map,
                                        8), 0);
    struct vs_wire_header h = next(f);
    expect_msg(vs_wire_read_postcopy_start(&f->r, &h, RAM, &out, &got),
               "says 2 pages are missing but its bitmap marks 3", NULL);
}

static void start_bitmap_wrong_size(void **state)
{
    struct fixture *f = *state;
    uint64_t map[2] = { 1, 0 }, got[2];  /* 16 bytes for a 60-page RAM (8 expected) */
    struct vs_wire_postcopy_start ps = { .missing_pages = 1 }, out;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_START, &ps, sizeof(ps), map,
                                        16), 0);
    struct vs_wire_header h = next(f);
    expect_msg(vs_wire_read_postcopy_start(&f->r, &h, RAM, &out, got), "is exactly 32 bytes",
               NULL);
}

static void request_checks(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_page_request rq = { .count = 1 }, out;
    uint64_t gpa = 5 * PG;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_PAGE_REQUEST, &rq, sizeof(rq), &gpa, 8),
                     0);
    struct vs_wire_header h = next(f);
    assert_int_equal(vs_wire_read_page_request(&f->r, &h, RAM, &out, f->gpa), 0);
    assert_int_equal(f->gpa[0], 5 * PG);
    rq.count = 0;    /* one address, but "0 pages" */
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_PAGE_REQUEST, &rq, sizeof(rq), &gpa, 8),
                     0);
    h = next(f);
    expect_msg(vs_wire_read_page_request(&f->r, &h, RAM, &out, f->gpa), "request for 0 pages",
               NULL);
}

static void request_unaligned(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_page_request rq = { .count = 1 }, out;
    uint64_t gpa = 5 * PG + 1;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_PAGE_REQUEST, &rq, sizeof(rq), &gpa, 8),
                     0);
    struct vs_wire_header h = next(f);
    expect_msg(vs_wire_read_page_request(&f->r, &h, RAM, &out, f->gpa), "is not 4096-aligned",
               NULL);
}

static void resume_from_source_has_no_bitmap(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_postcopy_resume rq = { .nr_streams = 2, .missing_pages = 0 }, out;
    uint64_t map = 1;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_RESUME, &rq, sizeof(rq), &map,
                                        8), 0);
    struct vs_wire_header h = next(f);
    expect_msg(vs_wire_read_postcopy_resume(&f->r, &h, RAM, &out, NULL), "is exactly 32 bytes",
               NULL);
}

static void resume_reply_checks_streams(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_postcopy_resume rq = { .nr_streams = 0, .missing_pages = 1 }, out;
    uint64_t map = 1, got;
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_RESUME, &rq, sizeof(rq), &map,
                                        8), 0);
    struct vs_wire_header h = next(f);
    expect_msg(vs_wire_read_postcopy_resume(&f->r, &h, RAM, &out, &got),
               "0 streams is out of range", NULL);
}

static void digests_check_block_count(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_postcopy_digests pd = { .nblocks = 2 }, out;   /* 240 KiB = 1 block */
    uint64_t blocks[1] = { 42 }, got[1];
    assert_int_equal(vs_wire_send_parts(&f->w, VS_REC_POSTCOPY_DIGESTS, &pd, sizeof(pd), blocks,
                                        8), 0);
    struct vs_wire_header h = next(f);
    expect_msg(vs_wire_read_postcopy_digests(&f->r, &h, RAM, &out, got), "names 2 blocks",
               "expected 1");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(unsolicited_records_are_refused), T(pages_round_trip), T(pages_hostile_counts),
        T(pages_hostile_length), T(pages_hostile_address), T(pages_hostile_urgent_flag),
        T(pages_corrupted_data), T(start_bitmap_round_trip), T(start_bitmap_beyond_ram),
        T(start_bitmap_count_lies), T(start_bitmap_wrong_size), T(request_checks),
        T(request_unaligned), T(resume_from_source_has_no_bitmap),
        T(resume_reply_checks_streams), T(digests_check_block_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
