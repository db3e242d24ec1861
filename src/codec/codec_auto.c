/* --compress auto: per batch, compress or send raw, whichever the stream's own
 * measurements say is faster. Pure logic (the caller owns the clock), so it is tested
 * with simulated links and codecs.
 *
 * Sending n bytes raw costs n / link; compressed it costs n / comp + n * ratio / link.
 * Dividing by n: compress iff 1/comp + ratio/link < (1 - margin) / link, i.e.
 * link/comp + ratio < 1 - margin. So incompressible data (ratio >= 1) is never worth it,
 * and a link much faster than the codec (link/comp >= 1 - margin) never is either. */
#include "codec/codec.h"

#include <string.h>

#define AUTO_WEIGHT      0.25   /* EWMA weight of a new sample */
#define AUTO_WARMUP      2      /* samples of the link and of the codec before trusting */
#define AUTO_MAX_RATIO   2.0    /* clamp for ratio samples (headers on tiny batches) */

void vs_codec_auto_init(struct vs_codec_auto *a)
{
    memset(a, 0, sizeof(*a));
    a->probe_every = 32;
    a->margin = 0.1;
}

static double ewma(double old, double sample, uint32_t samples)
{
    return samples ? old + AUTO_WEIGHT * (sample - old) : sample;
}

/* What the model prefers from the current estimates: 1 compress, 0 raw. */
static int model(const struct vs_codec_auto *a)
{
    if (a->ratio >= 1.0 || a->comp_bps <= 0.0)
        return 0;
    if (a->link_bps <= 0.0)
        return 1;   /* a link measured as stalled: anything that shrinks the data helps */
    double margin = a->margin < 0.0 ? 0.0 : a->margin >= 1.0 ? 0.99 : a->margin;
    return a->link_bps / a->comp_bps + a->ratio < 1.0 - margin;
}

int vs_codec_auto_decide(struct vs_codec_auto *a)
{
    uint32_t n = a->batches++;
    int d;
    if (a->link_samples < AUTO_WARMUP || a->comp_samples < AUTO_WARMUP) {
        /* Warm-up: alternate, starting with compression, until both are measured. */
        d = n == 0 ? 1 : !a->last;
    } else {
        d = model(a);
        /* Now and then try the other mode, so that a change of link speed or of the
         * data's compressibility shows up in the estimates. */
        if (a->probe_every && n % a->probe_every == 0)
            d = !d;
    }
    a->last = d;
    return d;
}

void vs_codec_auto_feed_link(struct vs_codec_auto *a, double bps)
{
    if (bps <= 0.0)
        return;
    a->link_bps = ewma(a->link_bps, bps, a->link_samples);
    a->link_samples++;
}

void vs_codec_auto_feed(struct vs_codec_auto *a, size_t raw_len, size_t wire_len,
                        uint64_t send_ns, uint64_t comp_ns)
{
    if (raw_len == 0)
        return;
    /* The link rate counts bytes that crossed the channel, compressed or not. */
    if (wire_len && send_ns) {
        double bps = (double)wire_len * 1e9 / (double)send_ns;
        a->link_bps = ewma(a->link_bps, bps, a->link_samples);
        a->link_samples++;
    }
    if (comp_ns) {
        double bps = (double)raw_len * 1e9 / (double)comp_ns;
        double ratio = (double)wire_len / (double)raw_len;
        if (ratio > AUTO_MAX_RATIO)
            ratio = AUTO_MAX_RATIO;
        a->comp_bps = ewma(a->comp_bps, bps, a->comp_samples);
        a->ratio = ewma(a->ratio, ratio, a->comp_samples);
        a->comp_samples++;
    }
}
