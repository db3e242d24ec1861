/* Page compression codecs for the migration stream: none, LZ4 and zstd, behind one
 * interface. One vs_codec_ctx per stream thread (contexts are not shared). Decompression
 * treats its input as hostile: it must produce exactly the expected number of bytes or
 * fail with a clear error, never write past dst, never abort. */
#ifndef VS_CODEC_H
#define VS_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum vs_codec {
    VS_CODEC_NONE = 0,
    VS_CODEC_LZ4 = 1,
    VS_CODEC_ZSTD = 2,
    VS_CODEC_COUNT = 3,
};

/* Bit (1u << codec) for each codec this build supports (NONE always). */
uint32_t vs_codec_supported_mask(void);

/* "none", "lz4", "zstd"; "?" if out of range. */
const char *vs_codec_name(unsigned codec);

/* Parse "none", "lz4" or "zstd" (not "auto": the CLI handles that). */
int vs_codec_parse(const char *text, enum vs_codec *out);

struct vs_codec_ctx;

/* A context for one codec; level 0 = the codec's fast default (lz4 acceleration 1,
 * zstd level 1). */
int vs_codec_ctx_new(struct vs_codec_ctx **out, enum vs_codec codec, int level);
void vs_codec_ctx_free(struct vs_codec_ctx *ctx);

/* Worst-case compressed size of len input bytes. */
size_t vs_codec_bound(enum vs_codec codec, size_t len);

/* Compress src[0..len) into dst (cap bytes, >= vs_codec_bound); *out_len = bytes written. */
int vs_codec_compress(struct vs_codec_ctx *ctx, const void *src, size_t len, void *dst,
                      size_t cap, size_t *out_len);

/* Decompress src[0..len) into dst, which must come out exactly expect bytes long. */
int vs_codec_decompress(struct vs_codec_ctx *ctx, const void *src, size_t len, void *dst,
                        size_t expect);

/* --compress auto: decides per batch whether compressing pays, from measurements of the
 * stream's own send rate and the codec's speed and ratio (no guessing). Pure logic: the
 * caller measures, this decides. One per stream thread.
 *
 * Model: sending n raw bytes takes n / link_rate; compressing them takes n / comp_rate
 * and sending the result takes n * ratio / link_rate (ratio = compressed/raw). Compress
 * when that is faster than sending raw by a margin. Estimates are exponentially weighted
 * moving averages. Until both modes have been measured it tries each; afterwards it
 * re-probes the mode it is not using every `probe_every` batches so a change of link or
 * data is noticed. */
struct vs_codec_auto {
    double link_bps;        /* raw bytes/s the stream achieved while sending (EWMA) */
    double comp_bps;        /* input bytes/s the codec compressed (EWMA) */
    double ratio;           /* compressed/raw (EWMA), 0..~1.01 */
    uint32_t link_samples, comp_samples;
    uint32_t batches;       /* decisions made */
    uint32_t probe_every;   /* default 32 */
    double margin;          /* compress only if predicted time < (1 - margin) * raw; 0.1 */
    int last;               /* last decision: 1 compress, 0 raw */
};

void vs_codec_auto_init(struct vs_codec_auto *a);
/* Should the next batch be compressed? */
int vs_codec_auto_decide(struct vs_codec_auto *a);
/* Feed back one batch: raw_len input bytes; wire_len bytes actually written to the
 * channel; send_ns time spent writing them (0: no link sample from this batch); comp_ns
 * time spent compressing (0 when the batch was sent raw). */
void vs_codec_auto_feed(struct vs_codec_auto *a, size_t raw_len, size_t wire_len,
                        uint64_t send_ns, uint64_t comp_ns);
/* Feed a link rate measured by the transport (bytes/s), e.g. TCP's delivery rate while
 * the sender was not the bottleneck. Better than send_ns: a write into a socket buffer
 * with room returns at memory speed whatever the link. */
void vs_codec_auto_feed_link(struct vs_codec_auto *a, double bps);

#endif
