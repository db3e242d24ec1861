/* Unit tests of the page records added by stream format v2: PAGES sent straight from RAM
 * (META_SUM), CPAGES (compressed), and the reader's rules for them, over a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <xxhash.h>

#include "expect_error.h"
#include "wire_pair.h"
#include "codec/codec.h"
#include "transport/channel.h"
#include "wire/format.h"
#include "wire/reader.h"
#include "wire/writer.h"

#define PG VS_WIRE_PAGE_SIZE
#define NPAGES 64

struct fixture {
    struct vs_channel *tx, *rx;
    struct vs_wire_writer w;
    struct vs_wire_reader r;
    uint8_t *src, *dst;
    uint64_t got[VS_WIRE_MAX_PAGES];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || wire_stream_open(&f->tx, &f->rx, &f->w, &f->r) < 0)
        return -1;
    f->r.codecs = (1u << VS_CODEC_LZ4) | (1u << VS_CODEC_ZSTD);
    f->src = malloc(NPAGES * PG);
    f->dst = calloc(NPAGES, PG);
    for (size_t i = 0; i < NPAGES * PG / 8; i++)   /* compressible: small counters */
        ((uint64_t *)f->src)[i] = i % 5000;
    vs_clear_error();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wire_stream_close(f->tx, f->rx, &f->w, &f->r);
    free(f->src);
    free(f->dst);
    free(f);
    return 0;
}

static const uint64_t list[] = { 3 * PG, 4 * PG, 5 * PG, 9 * PG, 1 * PG, 63 * PG };
#define NLIST (sizeof(list) / sizeof(list[0]))

static void direct_pages_land_in_ram(void **state)
{
    struct fixture *f = *state;
    for (int sum_data = 0; sum_data <= 1; sum_data++) {
        memset(f->dst, 0, NPAGES * PG);
        assert_int_equal(vs_wire_send_pages_direct(&f->w, f->src, list, NLIST, 2, sum_data), 0);
        struct vs_wire_header h;
        struct vs_wire_pages info;
        assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
        assert_int_equal(h.flags, sum_data ? 0 : VS_WIRE_FLAG_META_SUM);
        assert_int_equal(vs_wire_read_pages(&f->r, &h, f->dst, NPAGES * PG, &info, f->got), 0);
        assert_int_equal(info.count, NLIST);
        for (size_t i = 0; i < NLIST; i++)
            assert_memory_equal(f->dst + list[i], f->src + list[i], PG);
        assert_int_equal(f->dst[0], 0);   /* page 0 was not sent */
    }
}

/* With META_SUM the page list is still covered: a flipped list entry is caught. */
static void meta_sum_covers_the_list(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_pages info = { .count = 1, .pass = 0 };
    uint64_t gpa = 2 * PG;
    uint8_t payload[8 + 8 + PG];
    memcpy(payload, &info, 8);
    memcpy(payload + 8, &gpa, 8);
    memset(payload + 16, 0x5a, PG);
    struct vs_wire_header h = { .magic = VS_WIRE_MAGIC, .type = VS_REC_PAGES,
                                .flags = VS_WIRE_FLAG_META_SUM, .length = sizeof(payload) };
    h.payload_sum = XXH3_64bits(payload, 16);
    gpa = 7 * PG;                         /* corrupted after summing */
    memcpy(payload + 8, &gpa, 8);
    h.header_sum = XXH32(&h, sizeof(h), 0);
    assert_int_equal(vs_channel_write(f->tx, &h, sizeof(h)), 0);
    assert_int_equal(vs_channel_write(f->tx, payload, sizeof(payload)), 0);
    struct vs_wire_header got;
    assert_int_equal(vs_wire_read_header(&f->r, &got), 0);
    expect_msg(vs_wire_read_pages(&f->r, &got, f->dst, NPAGES * PG, &info, f->got),
               "payload checksum mismatch", "PAGES");
}

static void meta_sum_only_on_pages(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_header h = { .magic = VS_WIRE_MAGIC, .type = VS_REC_COMMIT,
                                .flags = VS_WIRE_FLAG_META_SUM };
    h.header_sum = XXH32(&h, sizeof(h), 0);
    assert_int_equal(vs_channel_write(f->tx, &h, sizeof(h)), 0);
    expect_msg(vs_wire_read_header(&f->r, &h), "flags 0x0001 are not allowed on COMMIT", NULL);
}

static void compressed_round_trip(enum vs_codec codec)
{
    void *st = NULL;
    assert_int_equal(setup(&st), 0);
    struct fixture *f = st;
    struct vs_codec_ctx *ctx;
    assert_int_equal(vs_codec_ctx_new(&ctx, codec, 0), 0);
    assert_int_equal(vs_wire_gather(&f->w, f->src, list, NLIST), 0);
    size_t cap = vs_codec_bound(codec, NLIST * PG), len = 0;
    uint8_t *c = malloc(cap);
    assert_int_equal(vs_codec_compress(ctx, f->w.page_buf, NLIST * PG, c, cap, &len), 0);
    assert_true(len < NLIST * PG / 2);
    assert_int_equal(vs_wire_send_cpages(&f->w, list, NLIST, 1, codec, c, len), 0);
    struct vs_wire_header h;
    struct vs_wire_cpages info;
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    assert_int_equal(h.type, VS_REC_CPAGES);
    assert_int_equal(vs_wire_read_cpages(&f->r, &h, f->dst, NPAGES * PG, &info, f->got), 0);
    assert_int_equal(info.codec, codec);
    for (size_t i = 0; i < NLIST; i++)
        assert_memory_equal(f->dst + list[i], f->src + list[i], PG);

    /* Compressed data that does not decompress to exactly the pages is refused, even with
     * a valid checksum (the source computed it over the bad bytes). */
    assert_int_equal(vs_wire_send_cpages(&f->w, list, NLIST, 1, codec, c, len / 2), 0);
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_cpages(&f->r, &h, f->dst, NPAGES * PG, &info, f->got),
               "record #1 (CPAGES)", NULL);
    /* A codec the handshake did not agree is refused before anything is decoded. */
    f->r.codecs = 1u << (codec == VS_CODEC_LZ4 ? VS_CODEC_ZSTD : VS_CODEC_LZ4);
    assert_int_equal(vs_wire_send_cpages(&f->w, list, NLIST, 1, codec, c, len), 0);
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    expect_msg(vs_wire_read_cpages(&f->r, &h, f->dst, NPAGES * PG, &info, f->got),
               "was not agreed in the handshake", NULL);
    free(c);
    vs_codec_ctx_free(ctx);
    teardown(&st);
}

static void lz4_pages(void **state)
{
    (void)state;
    compressed_round_trip(VS_CODEC_LZ4);
}

static void zstd_pages(void **state)
{
    (void)state;
    compressed_round_trip(VS_CODEC_ZSTD);
}

/* A hostile CPAGES whose length leaves no data, or more data than the pages could ever
 * need, is refused from its header fields. */
static void cpages_hostile_lengths(void **state)
{
    struct fixture *f = *state;
    uint8_t payload[16 + 8 + 4];
    struct vs_wire_cpages info = { .count = 1, .codec = VS_CODEC_LZ4 };
    uint64_t gpa = 0;
    memcpy(payload, &info, 16);
    memcpy(payload + 16, &gpa, 8);
    struct vs_wire_header h = { .magic = VS_WIRE_MAGIC, .type = VS_REC_CPAGES,
                                .length = 16 + 8 + 4 };
    h.payload_sum = XXH3_64bits(payload, sizeof(payload));
    h.header_sum = XXH32(&h, sizeof(h), 0);
    info.count = 2;                 /* 2 pages need a 32-byte list: no data left */
    memcpy(payload, &info, 16);
    assert_int_equal(vs_channel_write(f->tx, &h, sizeof(h)), 0);
    assert_int_equal(vs_channel_write(f->tx, payload, sizeof(payload)), 0);
    struct vs_wire_header got;
    struct vs_wire_cpages gi;
    assert_int_equal(vs_wire_read_header(&f->r, &got), 0);
    expect_msg(vs_wire_read_cpages(&f->r, &got, f->dst, NPAGES * PG, &gi, f->got),
               "2 pages with a payload of 28 bytes", NULL);

}

/* Longer than any CPAGES may be: refused by the header alone, before any allocation. */
static void cpages_too_long(void **state)
{
    struct fixture *f = *state;
    struct vs_wire_header big = { .magic = VS_WIRE_MAGIC, .type = VS_REC_CPAGES,
                                  .length = 16 + VS_WIRE_MAX_PAGES * (8 + PG) + 65537 };
    big.header_sum = XXH32(&big, sizeof(big), 0);
    assert_int_equal(vs_channel_write(f->tx, &big, sizeof(big)), 0);
    expect_msg(vs_wire_read_header(&f->r, &big), "out of range", "CPAGES");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(direct_pages_land_in_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(meta_sum_covers_the_list, setup, teardown),
        cmocka_unit_test_setup_teardown(meta_sum_only_on_pages, setup, teardown),
        cmocka_unit_test(lz4_pages),
        cmocka_unit_test(zstd_pages),
        cmocka_unit_test_setup_teardown(cpages_hostile_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(cpages_too_long, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
