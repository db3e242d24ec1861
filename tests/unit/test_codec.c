/* Unit tests: the page compression codecs and the --compress auto decider
 * (src/codec/). Decompression is fed hostile input; a canary after dst catches overruns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "common/error.h"
#include "expect_error.h"

#define PG 4096u
#define BATCH (1024u * PG)   /* one full CPAGES record: 4 MiB */
#define CANARY 64u

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fill_random(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)next();
}

/* Words and numbers, like logs or config files in guest memory. */
static void fill_text(uint8_t *p, size_t len)
{
    static const char *words[] = { "the ", "page ", "dirty ", "migration ", "stream ",
                                   "vcpu ", "kernel: ", "error ", "0x7f3a", "= ", "\n",
                                   "memory ", "of ", "and ", "INFO ", "1234 " };
    size_t i = 0;
    while (i < len) {
        const char *w = words[next() % 16];
        for (size_t k = 0; w[k] && i < len; k++)
            p[i++] = (uint8_t)w[k];
    }
}

/* A guest-like batch: zero, text, code-like, pointer-table and random pages. */
static void fill_batch(uint8_t *p)
{
    for (unsigned pg = 0; pg < 1024; pg++) {
        uint8_t *q = p + (size_t)pg * PG;
        switch (pg % 8) {
        case 0: case 1: memset(q, 0, PG); break;
        case 2: case 3: fill_text(q, PG); break;
        case 4: /* pointers into one region, 8-byte aligned */
            for (unsigned i = 0; i < PG / 8; i++) {
                uint64_t v = 0xffff888000000000ULL + (next() & 0xfffff8);
                memcpy(q + i * 8, &v, 8);
            }
            break;
        case 5: /* code-like: a few opcodes with small random immediates */
            for (unsigned i = 0; i < PG; i += 4) {
                static const uint8_t ops[4][3] = { { 0x48, 0x89, 0xe5 }, { 0x48, 0x8b, 0x45 },
                                                   { 0xe8, 0x00, 0x00 }, { 0x0f, 0x1f, 0x44 } };
                memcpy(q + i, ops[next() % 4], 3);
                q[i + 3] = (uint8_t)(next() & 0x1f);
            }
            break;
        default: fill_random(q, PG); break;
        }
    }
}

static void check_canary(const uint8_t *p, uint8_t byte)
{
    for (unsigned i = 0; i < CANARY; i++)
        assert_int_equal(p[i], byte);
}

/* Compress then decompress len bytes; returns the compressed size. */
static size_t round_trip(enum vs_codec codec, const uint8_t *src, size_t len)
{
    struct vs_codec_ctx *ctx;
    assert_int_equal(vs_codec_ctx_new(&ctx, codec, 0), 0);
    size_t cap = vs_codec_bound(codec, len), clen = 0;
    assert_true(cap >= len);
    uint8_t *c = malloc(cap), *out = malloc(len + CANARY);
    assert_true(c && out);
    memset(out + len, 0xa5, CANARY);
    assert_int_equal(vs_codec_compress(ctx, src, len, c, cap, &clen), 0);
    assert_true(clen <= cap);
    assert_int_equal(vs_codec_decompress(ctx, c, clen, out, len), 0);
    assert_memory_equal(out, src, len);
    check_canary(out + len, 0xa5);
    /* The context is reusable. */
    assert_int_equal(vs_codec_compress(ctx, src, len, c, cap, &clen), 0);
    assert_int_equal(vs_codec_decompress(ctx, c, clen, out, len), 0);
    assert_memory_equal(out, src, len);
    free(c);
    free(out);
    vs_codec_ctx_free(ctx);
    return clen;
}

static void round_trips(void **state)
{
    (void)state;
    uint8_t *buf = malloc(BATCH);
    assert_non_null(buf);
    for (unsigned codec = 0; codec < VS_CODEC_COUNT; codec++) {
        fill_random(buf, BATCH);
        size_t rnd = round_trip(codec, buf, BATCH);
        memset(buf, 0, BATCH);
        size_t zero = round_trip(codec, buf, BATCH);
        fill_text(buf, BATCH);
        size_t text = round_trip(codec, buf, BATCH);
        fill_batch(buf);
        size_t batch = round_trip(codec, buf, BATCH);
        round_trip(codec, buf, PG);
        print_message("    %-4s: random %zu, zero %zu, text %zu, batch %zu of %u bytes\n",
                      vs_codec_name(codec), rnd, zero, text, batch, BATCH);
        if (codec == VS_CODEC_NONE) {
            assert_true(rnd == BATCH && zero == BATCH && text == BATCH && batch == BATCH);
        } else {
            assert_true(rnd <= vs_codec_bound(codec, BATCH));
            assert_true(zero < BATCH / 100);
            assert_true(text < BATCH / 2);
            assert_true(batch < BATCH * 3 / 4);
        }
    }
    free(buf);
}

/* Decompress hostile input into a dst of exactly expect bytes followed by a canary. */
static int hostile(struct vs_codec_ctx *ctx, const void *src, size_t len, size_t expect)
{
    uint8_t *dst = malloc(expect + CANARY);
    assert_non_null(dst);
    memset(dst + expect, 0x5a, CANARY);
    int rc = vs_codec_decompress(ctx, src, len, dst, expect);
    check_canary(dst + expect, 0x5a);
    free(dst);
    if (rc < 0)
        assert_true(strlen(vs_last_error()) > 0);
    return rc;
}

static void hostile_input(void **state)
{
    (void)state;
    const size_t n = 64 * 1024;
    uint8_t *src = malloc(n), *c = malloc(vs_codec_bound(VS_CODEC_ZSTD, n) + 1024);
    uint8_t *bad = malloc(vs_codec_bound(VS_CODEC_ZSTD, n) + 1024);
    assert_true(src && c && bad);
    for (unsigned codec = VS_CODEC_LZ4; codec < VS_CODEC_COUNT; codec++) {
        struct vs_codec_ctx *ctx;
        size_t clen;
        assert_int_equal(vs_codec_ctx_new(&ctx, codec, 0), 0);
        fill_text(src, n);
        assert_int_equal(vs_codec_compress(ctx, src, n, c, vs_codec_bound(codec, n), &clen), 0);
        assert_int_equal(hostile(ctx, c, clen, n), 0);
        /* Truncated (down to nothing at all); the expected size wrong both ways. */
        const size_t lens[] = { clen - 1, clen / 2, 3, 0, clen, clen, clen, clen, clen };
        const size_t expects[] = { n, n, n, n, n - 1, n / 2, n + 1, 2 * n, 0 };
        for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
            expect_msg(hostile(ctx, c, lens[i], expects[i]), vs_codec_name(codec),
                       i == 3 ? "no compressed data" : "corrupt");
        /* Trailing bytes after a valid stream. */
        memcpy(bad, c, clen);
        memset(bad + clen, 0x41, 64);
        assert_true(hostile(ctx, bad, clen + 64, n) < 0);
        /* Structural corruption that cannot decode: lz4 literal lengths that run past the
         * input; a zstd frame without its magic or claiming another size. */
        memcpy(bad, c, clen);
        if (codec == VS_CODEC_LZ4) {
            memset(bad, 0xff, 16);
        } else {
            bad[0] ^= 0xff;
            assert_true(hostile(ctx, bad, clen, n) < 0);
            memcpy(bad, c, clen);
            bad[5] ^= 0x01;   /* frame content size field (after magic and descriptor) */
        }
        assert_true(hostile(ctx, bad, clen, n) < 0);
        /* Random corruption: lz4 blocks and zstd frames carry no checksum of their own (the
         * wire's record checksum covers that), so a flipped literal may still decode; but
         * it must never overrun, crash or produce a wrong size. */
        unsigned errors = 0;
        for (unsigned i = 0; i < 300; i++) {
            memcpy(bad, c, clen);
            for (unsigned k = 0; k < 1 + i % 4; k++)
                bad[next() % clen] ^= (uint8_t)(1 + next() % 255);
            errors += hostile(ctx, bad, clen, n) < 0;
        }
        assert_true(errors > 0);
        /* Garbage of assorted sizes. */
        for (unsigned i = 0; i < 100; i++) {
            size_t len = 1 + next() % 4096;
            fill_random(bad, len);
            assert_true(hostile(ctx, bad, len, n) < 0);
        }
        vs_codec_ctx_free(ctx);
    }
    free(src);
    free(c);
    free(bad);
}

static void lengths_and_capacity(void **state)
{
    (void)state;
    uint8_t src[PG], dst[PG];
    for (unsigned codec = 0; codec < VS_CODEC_COUNT; codec++) {
        struct vs_codec_ctx *ctx;
        size_t clen = 7;
        assert_int_equal(vs_codec_ctx_new(&ctx, codec, 0), 0);
        fill_random(src, PG);
        expect_msg(vs_codec_compress(ctx, src, PG, dst, 100, &clen), vs_codec_name(codec),
                   "100-byte");
        assert_int_equal(clen, 0);
        vs_codec_ctx_free(ctx);
    }
    /* none: the input is the output, so only its length can be wrong. */
    struct vs_codec_ctx *ctx;
    assert_int_equal(vs_codec_ctx_new(&ctx, VS_CODEC_NONE, 0), 0);
    expect_msg(hostile(ctx, src, PG, PG - 1), "got 4096 bytes", "exactly 4095");
    expect_msg(hostile(ctx, src, PG - 1, PG), "got 4095 bytes", "exactly 4096");
    assert_int_equal(hostile(ctx, src, PG, PG), 0);
    vs_codec_ctx_free(ctx);
}

static void names_levels_and_mask(void **state)
{
    (void)state;
    enum vs_codec c;
    for (unsigned i = 0; i < VS_CODEC_COUNT; i++) {
        assert_int_equal(vs_codec_parse(vs_codec_name(i), &c), 0);
        assert_int_equal(c, i);
    }
    assert_string_equal(vs_codec_name(VS_CODEC_ZSTD), "zstd");
    assert_string_equal(vs_codec_name(VS_CODEC_COUNT), "?");
    c = VS_CODEC_LZ4;
    expect_msg(vs_codec_parse("gzip", &c), "'gzip'", "none, lz4 or zstd");
    expect_msg(vs_codec_parse("", &c), "none, lz4 or zstd", NULL);
    assert_true(vs_codec_parse("auto", &c) < 0);
    assert_int_equal(c, VS_CODEC_LZ4);
    assert_int_equal(vs_codec_supported_mask(), 7);

    struct vs_codec_ctx *ctx = (void *)1;
    expect_msg(vs_codec_ctx_new(&ctx, VS_CODEC_ZSTD, 99), "zstd level 99", NULL);
    assert_null(ctx);
    expect_msg(vs_codec_ctx_new(&ctx, VS_CODEC_LZ4, -1), "lz4 acceleration -1", NULL);
    expect_msg(vs_codec_ctx_new(&ctx, (enum vs_codec)7, 0), "codec 7", NULL);
    uint8_t buf[PG];
    fill_text(buf, PG);
    assert_int_equal(vs_codec_ctx_new(&ctx, VS_CODEC_ZSTD, 3), 0);
    vs_codec_ctx_free(ctx);
    vs_codec_ctx_free(NULL);
    assert_true(round_trip(VS_CODEC_LZ4, buf, PG) < PG);
}

/* --compress auto against a simulated link and codec (rates in bytes/s; ratio =
 * compressed/raw). Returns how many of the batches [from, n) were compressed. */
struct sim { double link, comp, ratio; };

static unsigned simulate(struct vs_codec_auto *a, struct sim s, unsigned n, unsigned from)
{
    unsigned compressed = 0;
    for (unsigned i = 0; i < n; i++) {
        int d = vs_codec_auto_decide(a);
        size_t wire = d ? (size_t)(BATCH * s.ratio) : BATCH + 8192;
        uint64_t comp_ns = d ? (uint64_t)(BATCH / s.comp * 1e9) : 0;
        vs_codec_auto_feed(a, BATCH, wire, (uint64_t)(wire / s.link * 1e9), comp_ns);
        compressed += d && i >= from;
    }
    return compressed;
}

static void auto_decides_from_measurements(void **state)
{
    (void)state;
    struct vs_codec_auto a;
    /* 200 batches, judged after a warm-up of 8; probes of the other mode every 32. */
    const struct { struct sim s; int compress; } cases[] = {
        { { 100e6, 1e9, 0.3 }, 1 },   /* slow link, compressible data, fast codec */
        { { 4e9, 1e9, 0.3 }, 0 },     /* link faster than the codec */
        { { 100e6, 1e9, 1.0 }, 0 },   /* incompressible data */
        { { 100e6, 1e9, 1.05 }, 0 },  /* data that grows */
        { { 100e6, 120e6, 0.3 }, 0 }, /* codec barely faster than the link */
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vs_codec_auto_init(&a);
        unsigned c = simulate(&a, cases[i].s, 200, 8);
        unsigned other = cases[i].compress ? 192 - c : c;   /* decisions against the model */
        print_message("    link %.0f MB/s, codec %.0f MB/s, ratio %.2f: %u of 192 compressed\n",
                      cases[i].s.link / 1e6, cases[i].s.comp / 1e6, cases[i].s.ratio, c);
        assert_int_equal(other, 6);   /* the probes at batches 32, 64, ..., 192 */
        assert_int_equal(a.batches, 200);
        assert_true(a.link_samples == 200 && a.comp_samples >= 4);
    }
}

static void auto_follows_changes(void **state)
{
    (void)state;
    struct vs_codec_auto a;
    struct sim fast = { 4e9, 1e9, 0.3 }, slow = { 100e6, 1e9, 0.3 };
    struct sim noise = { 100e6, 1e9, 1.0 };
    /* The link slows down: raw batches measure it at once. */
    vs_codec_auto_init(&a);
    assert_int_equal(simulate(&a, fast, 100, 0), 2 + 3);   /* warm-up + probes */
    assert_true(simulate(&a, slow, 20, 10) == 10);
    /* The data becomes compressible: a few probes notice (then only raw probes remain). */
    vs_codec_auto_init(&a);
    simulate(&a, noise, 100, 0);
    assert_int_equal(simulate(&a, slow, 150, 100), 50 - 1);
    /* Incompressible again: a few compressed batches' poor ratio stops it. */
    assert_int_equal(simulate(&a, noise, 100, 10), 2);   /* probes only */
    /* Zero-length and zero-time feedback is ignored, never divides by zero. */
    vs_codec_auto_init(&a);
    vs_codec_auto_feed(&a, 0, 0, 0, 0);
    vs_codec_auto_feed(&a, BATCH, BATCH, 0, 0);
    assert_int_equal(a.link_samples + a.comp_samples, 0);
    vs_codec_auto_feed(&a, BATCH, 100 * BATCH, 1000, 1000);
    assert_true(a.ratio <= 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips),
        cmocka_unit_test(hostile_input),
        cmocka_unit_test(lengths_and_capacity),
        cmocka_unit_test(names_levels_and_mask),
        cmocka_unit_test(auto_decides_from_measurements),
        cmocka_unit_test(auto_follows_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
