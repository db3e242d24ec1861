/* Page compression codecs: none (a copy), LZ4 and zstd. Each context keeps its codec's
 * state (LZ4 hash table, zstd compression and decompression contexts) so that a stream
 * thread allocates once and reuses it for every batch. Decompression input comes from the
 * network: every length is checked, the output must be exactly the expected size, and
 * the libraries are only ever given dst's real capacity. */
#include "codec/codec.h"
#include "common/error.h"

#include <limits.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

/* lz4.c clamps acceleration to this (LZ4_ACCELERATION_MAX, not exported by lz4.h). */
#define VS_LZ4_ACCEL_MAX 65537

struct vs_codec_ctx {
    enum vs_codec codec;
    int level;            /* lz4: acceleration >= 1; zstd: compression level */
    void *lz4_state;      /* LZ4_sizeofState() bytes */
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
};

static const char *const names[VS_CODEC_COUNT] = { "none", "lz4", "zstd" };

uint32_t vs_codec_supported_mask(void)
{
    return (1u << VS_CODEC_NONE) | (1u << VS_CODEC_LZ4) | (1u << VS_CODEC_ZSTD);
}

const char *vs_codec_name(unsigned codec)
{
    return codec < VS_CODEC_COUNT ? names[codec] : "?";
}

int vs_codec_parse(const char *text, enum vs_codec *out)
{
    for (unsigned i = 0; text && i < VS_CODEC_COUNT; i++) {
        if (!strcmp(text, names[i])) {
            *out = (enum vs_codec)i;
            return 0;
        }
    }
    return vs_fail(EINVAL, "unknown compression codec '%s'; use none, lz4 or zstd",
                   text ? text : "(null)");
}

/* The level a context uses for (codec, level), or an error naming the valid range. */
static int check_level(enum vs_codec codec, int level, int *out)
{
    switch (codec) {
    case VS_CODEC_NONE:
        if (level != 0)
            return vs_fail(EINVAL, "compression level %d given for codec none; it takes "
                           "no level (use 0)", level);
        *out = 0;
        return 0;
    case VS_CODEC_LZ4:
        if (level < 0 || level > VS_LZ4_ACCEL_MAX)
            return vs_fail(EINVAL, "lz4 acceleration %d is out of range; use 1..%d "
                           "(0 = default 1, higher = faster, less compression)", level,
                           VS_LZ4_ACCEL_MAX);
        *out = level ? level : 1;
        return 0;
    case VS_CODEC_ZSTD:
        if (level != 0 && (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()))
            return vs_fail(EINVAL, "zstd level %d is out of range; use %d..%d (0 = "
                           "default 1)", level, ZSTD_minCLevel(), ZSTD_maxCLevel());
        *out = level ? level : 1;
        return 0;
    default:
        return vs_fail(EINVAL, "compression codec %d is unknown; use 0 (none), 1 (lz4) or "
                       "2 (zstd)", (int)codec);
    }
}

int vs_codec_ctx_new(struct vs_codec_ctx **out, enum vs_codec codec, int level)
{
    *out = NULL;
    int lvl = 0, rc = check_level(codec, level, &lvl);
    if (rc < 0)
        return rc;
    struct vs_codec_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return vs_fail(ENOMEM, "out of memory for a %s compression context", names[codec]);
    ctx->codec = codec;
    ctx->level = lvl;
    int ok = 1;
    if (codec == VS_CODEC_LZ4)
        ok = (ctx->lz4_state = malloc((size_t)LZ4_sizeofState())) != NULL;
    else if (codec == VS_CODEC_ZSTD)
        ok = (ctx->zc = ZSTD_createCCtx()) && (ctx->zd = ZSTD_createDCtx());
    if (!ok) {
        vs_codec_ctx_free(ctx);
        return vs_fail(ENOMEM, "out of memory for a %s compression context", names[codec]);
    }
    *out = ctx;
    return 0;
}

void vs_codec_ctx_free(struct vs_codec_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->lz4_state);
    ZSTD_freeCCtx(ctx->zc);
    ZSTD_freeDCtx(ctx->zd);
    free(ctx);
}

size_t vs_codec_bound(enum vs_codec codec, size_t len)
{
    switch (codec) {
    case VS_CODEC_NONE:
        return len;
    case VS_CODEC_LZ4:
        /* 0 when len exceeds what LZ4 can take in one call (LZ4_MAX_INPUT_SIZE). */
        return len > LZ4_MAX_INPUT_SIZE ? 0 : (size_t)LZ4_compressBound((int)len);
    case VS_CODEC_ZSTD: {
        size_t b = ZSTD_compressBound(len);
        return ZSTD_isError(b) ? 0 : b;
    }
    default:
        return 0;
    }
}

int vs_codec_compress(struct vs_codec_ctx *ctx, const void *src, size_t len, void *dst,
                      size_t cap, size_t *out_len)
{
    *out_len = 0;
    const char *name = vs_codec_name(ctx->codec);
    switch (ctx->codec) {
    case VS_CODEC_NONE:
        if (cap < len)
            return vs_fail(ENOSPC, "none: %zu bytes do not fit the %zu-byte output buffer; "
                           "size it with vs_codec_bound()", len, cap);
        if (len)
            memcpy(dst, src, len);
        *out_len = len;
        return 0;
    case VS_CODEC_LZ4: {
        if (len > LZ4_MAX_INPUT_SIZE)
            return vs_fail(EINVAL, "lz4: cannot compress %zu bytes in one call (at most "
                           "%d); split the input", len, LZ4_MAX_INPUT_SIZE);
        int dcap = cap > INT_MAX ? INT_MAX : (int)cap;
        int n = LZ4_compress_fast_extState(ctx->lz4_state, src, dst, (int)len, dcap,
                                           ctx->level);
        if (n <= 0)
            return vs_fail(ENOSPC, "lz4: compressing %zu bytes did not fit the %zu-byte "
                           "output buffer (need up to %zu); size it with vs_codec_bound()",
                           len, cap, vs_codec_bound(VS_CODEC_LZ4, len));
        *out_len = (size_t)n;
        return 0;
    }
    case VS_CODEC_ZSTD: {
        size_t n = ZSTD_compressCCtx(ctx->zc, dst, cap, src, len, ctx->level);
        if (ZSTD_isError(n))
            return vs_fail(ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? ENOSPC : EIO,
                           "zstd: compressing %zu bytes at level %d into a %zu-byte buffer "
                           "failed: %s", len, ctx->level, cap, ZSTD_getErrorName(n));
        *out_len = n;
        return 0;
    }
    default:
        return vs_fail(EINVAL, "%s: not a usable compression context", name);
    }
}

static int zstd_decompress(struct vs_codec_ctx *ctx, const void *src, size_t len, void *dst,
                           size_t expect)
{
    /* A frame that declares its size must declare exactly expect: say so clearly instead
     * of reporting a generic "destination buffer too small". */
    unsigned long long declared = ZSTD_getFrameContentSize(src, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR)
        return vs_fail(EBADMSG, "zstd: %zu bytes of compressed data do not start with a "
                       "complete zstd frame header; the data is corrupt or not zstd", len);
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != expect)
        return vs_fail(EBADMSG, "zstd: the frame says it holds %llu bytes, expected exactly "
                       "%zu; the data is corrupt or does not belong to this record",
                       declared, expect);
    size_t n = ZSTD_decompressDCtx(ctx->zd, dst, expect, src, len);
    if (ZSTD_isError(n))
        return vs_fail(EBADMSG, "zstd: decompressing %zu bytes into %zu bytes failed: %s; the "
                       "data is corrupt or truncated", len, expect, ZSTD_getErrorName(n));
    if (n != expect)
        return vs_fail(EBADMSG, "zstd: %zu bytes of compressed data gave %zu bytes, expected "
                       "exactly %zu; the data is corrupt or truncated", len, n, expect);
    return 0;
}

int vs_codec_decompress(struct vs_codec_ctx *ctx, const void *src, size_t len, void *dst,
                        size_t expect)
{
    const char *name = vs_codec_name(ctx->codec);
    if (ctx->codec != VS_CODEC_NONE && len == 0)
        return vs_fail(EBADMSG, "%s: no compressed data (0 bytes) for %zu expected bytes",
                       name, expect);
    switch (ctx->codec) {
    case VS_CODEC_NONE:
        if (len != expect)
            return vs_fail(EBADMSG, "none: got %zu bytes, expected exactly %zu; the data "
                           "is truncated or does not belong to this record", len, expect);
        if (len)
            memcpy(dst, src, len);
        return 0;
    case VS_CODEC_LZ4: {
        if (len > INT_MAX || expect > INT_MAX)
            return vs_fail(EMSGSIZE, "lz4: %zu compressed bytes into %zu bytes is beyond "
                           "what lz4 handles in one call (%d)", len, expect, INT_MAX);
        /* LZ4_decompress_safe never writes beyond expect bytes and fails on input that
         * would produce more. */
        int n = LZ4_decompress_safe(src, dst, (int)len, (int)expect);
        if (n < 0)
            return vs_fail(EBADMSG, "lz4: %zu bytes of compressed data are malformed "
                           "(stopped near input byte %d) or decode to more than %zu bytes; "
                           "the data is corrupt or not lz4", len, -n - 1, expect);
        if ((size_t)n != expect)
            return vs_fail(EBADMSG, "lz4: %zu bytes of compressed data gave %d bytes, "
                           "expected exactly %zu; the data is corrupt or truncated", len,
                           n, expect);
        return 0;
    }
    case VS_CODEC_ZSTD:
        return zstd_decompress(ctx, src, len, dst, expect);
    default:
        return vs_fail(EINVAL, "%s: not a usable compression context", name);
    }
}
