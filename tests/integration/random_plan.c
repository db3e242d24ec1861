#include "random_plan.h"

#include <stdio.h>
#include <string.h>

/* splitmix64: small, fast, and the same sequence everywhere for a seed. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned below(uint64_t *s, unsigned n)
{
    return (unsigned)(next_u64(s) % n);
}

/* An index into weights[0..n), drawn with those weights. */
static unsigned weighted(uint64_t *s, const unsigned *weights, unsigned n)
{
    unsigned total = 0;
    for (unsigned i = 0; i < n; i++)
        total += weights[i];
    unsigned r = below(s, total);
    for (unsigned i = 0; i < n; i++) {
        if (r < weights[i])
            return i;
        r -= weights[i];
    }
    return n - 1;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Named fault points the random trials pick from (src/common/fault.h); the resolving
 * points (src.resolve, dst.in_doubt) are reached only after another fault. */
static const char *const points[] = {
    "src.handshake", "src.pass", "src.switchover", "src.state", "src.digest", "src.verdict",
    "src.commit", "src.committed", "src.granted", "dst.hello", "dst.pass_end", "dst.state",
    "dst.digest", "dst.verified", "dst.commit", "dst.claimed", "dst.granted", "dst.resumed",
};

static void draw_point(struct rplan *p, uint64_t *s)
{
    const char *point = points[below(s, COUNT(points))];
    bool per_pass = !strcmp(point, "src.pass") || !strcmp(point, "dst.pass_end");
    unsigned n = per_pass ? below(s, 3) : 0;
    static const unsigned action_w[] = { 40, 35, 25 };
    unsigned action = weighted(s, action_w, COUNT(action_w));
    p->point_side = point[0] == 'd';
    if (action == 0)
        snprintf(p->point, sizeof(p->point), "%s:%u:kill", point, n);
    else if (action == 1)
        snprintf(p->point, sizeof(p->point), "%s:%u:cut", point, n);
    else
        snprintf(p->point, sizeof(p->point), "%s:%u:stall=%u", point, n, 1000 + below(s, 7000));
}

static void draw_when(struct rplan *p, uint64_t *s)
{
    static const unsigned when_w[] = { 50, 35, 15 };
    p->when = (enum rp_when)weighted(s, when_w, COUNT(when_w));
    unsigned window_ms = (unsigned)(rplan_expected_s(p) * 1200);
    if (p->when == RW_TIME) {
        p->when_ms = below(s, window_ms + 1);
    } else if (p->when == RW_STATUS) {
        static const char *const precopy[] = { "active", "switchover", "verifying", "completed" };
        static const char *const postcopy[] = { "active", "switchover", "verifying",
                                                "postcopy-active", "completed" };
        p->when_status = p->strategy == RP_POSTCOPY ? postcopy[below(s, COUNT(postcopy))]
                                                    : precopy[below(s, COUNT(precopy))];
        p->when_ms = below(s, 51);
    } else {
        p->when_pass = 1 + below(s, 3);
        p->when_ms = below(s, 101);
    }
}

static void draw_fault(struct rplan *p, uint64_t *s)
{
    /* Every kind equally often, apart from a few control trials without a fault; the
     * daemon is killed only where there is one. */
    static const unsigned fault_w[RF_COUNT] = { 4, 16, 16, 16, 16, 16, 16, 16 };
    do
        p->fault = (enum rp_fault)weighted(s, fault_w, RF_COUNT);
    while (p->fault == RF_KILL_DAEMON && p->path != RP_DAEMON);
    draw_when(p, s);
    p->stall_ms = 500 + below(s, 9500);
    p->corrupt_dir = below(s, 4) == 0;        /* mostly the data direction */
    p->corrupt_conn = below(s, 4);
    p->corrupt_pos = (uint32_t)next_u64(s);
    p->daemon = below(s, 2);
    draw_point(p, s);
}

/* Percent of the direct-path trials that get a disk, and a NIC. Device trials take longer
 * (a disk's guest checks blocks; a NIC's needs its network built and probed), and the CI
 * sample (seeds 1000..1019) must stay short on a loaded host. */
#define DISK_SHARE 20
#define NIC_SHARE 10

/* The device, from a stream of its own: the plan's other choices stay those of the seed. */
static void draw_device(struct rplan *p)
{
    uint64_t s = p->seed ^ 0xa0761d6478bd642fULL;
    unsigned r = below(&s, 100);
    if (p->path != RP_DIRECT)
        return;
    if (r < DISK_SHARE) {
        p->device = RD_DISK;
        p->workload = RP_DISK;
    } else if (r < DISK_SHARE + NIC_SHARE) {
        p->device = RD_NIC;
        p->workload = RP_NET;
    }
}

void rplan_draw(struct rplan *p, uint64_t seed)
{
    uint64_t s = seed;
    memset(p, 0, sizeof(*p));
    p->seed = seed;
    p->path = below(&s, 4) == 0 ? RP_DAEMON : RP_DIRECT;
    static const unsigned mem_w[] = { 55, 30, 15 };
    p->mem_mib = 64u << weighted(&s, mem_w, COUNT(mem_w));
    p->vcpus = 1 + below(&s, 2);
    p->workload = (enum rp_workload)below(&s, 4);
    p->range_mib = 4u << below(&s, 3);
    p->rate = below(&s, 10) < 7 ? 0 : 2000;
    p->streams = 1 + below(&s, 4);
    p->codec = (enum rp_codec)below(&s, 4);
    p->security = (enum rp_security)below(&s, 3);
    p->strategy = (enum rp_strategy)below(&s, 3);
    /* A cap that stretches the migration over a few seconds, at most four. */
    static const unsigned bw[] = { 0, 32, 64, 128 };
    do
        p->max_bw_mib = bw[below(&s, COUNT(bw))];
    while (p->max_bw_mib && p->mem_mib / p->max_bw_mib > 4);
    static const unsigned precopy_limit[] = { 300, 100, 30 }, throttle_limit[] = { 20, 50 };
    p->downtime_limit = p->strategy == RP_PRECOPY ? precopy_limit[below(&s, 3)] :
                        p->strategy == RP_THROTTLE ? throttle_limit[below(&s, 2)] : 0;
    p->postcopy_at_ms = -1;
    if (p->strategy == RP_POSTCOPY && below(&s, 2))
        p->postcopy_at_ms = (int)below(&s, (unsigned)(rplan_expected_s(p) * 800) + 1);
    draw_fault(p, &s);
    draw_device(p);
}

double rplan_expected_s(const struct rplan *p)
{
    double rate_mib_s = p->max_bw_mib ? p->max_bw_mib : 150;
    return 0.3 + p->mem_mib / rate_mib_s;
}

const char *rplan_fault_name(enum rp_fault f)
{
    static const char *const names[RF_COUNT] = { "none", "cut", "stall", "corrupt", "kill-src",
                                                 "kill-dst", "kill-daemon", "point" };
    return f < RF_COUNT ? names[f] : "?";
}

const char *rplan_workload_name(enum rp_workload w)
{
    static const char *const names[] = { "idle", "once", "verify", "continuous", "disk", "net" };
    return names[w];
}

const char *rplan_device_name(enum rp_device d)
{
    static const char *const names[] = { "", " +disk(shared)", " +nic" };
    return names[d];
}

const char *rplan_codec_name(enum rp_codec c)
{
    static const char *const names[] = { "none", "lz4", "zstd", "auto" };
    return names[c];
}

static const char *when_text(const struct rplan *p, char *buf, unsigned len)
{
    if (p->fault == RF_POINT)
        snprintf(buf, len, "%s in the %s", p->point, p->point_side ? "destination" : "source");
    else if (p->fault == RF_NONE)
        snprintf(buf, len, "-");
    else if (p->when == RW_TIME)
        snprintf(buf, len, "@%ums", p->when_ms);
    else if (p->when == RW_STATUS)
        snprintf(buf, len, "@%s+%ums", p->when_status, p->when_ms);
    else
        snprintf(buf, len, "@pass%u+%ums", p->when_pass, p->when_ms);
    return buf;
}

const char *rplan_describe(const struct rplan *p, char *buf, unsigned len)
{
    static const char *const sec[] = { "insecure", "psk", "cert" };
    static const char *const strat[] = { "pre-copy", "throttle", "post-copy" };
    char when[96], extra[48] = "";
    if (p->fault == RF_STALL)
        snprintf(extra, sizeof(extra), " %ums", p->stall_ms);
    else if (p->fault == RF_CORRUPT)
        snprintf(extra, sizeof(extra), " %s conn%u", p->corrupt_dir ? "->src" : "->dst",
                 p->corrupt_conn);
    else if (p->fault == RF_KILL_DAEMON)
        snprintf(extra, sizeof(extra), " %s-host", p->daemon ? "dst" : "src");
    char pc[24] = "";
    if (p->postcopy_at_ms >= 0)
        snprintf(pc, sizeof(pc), "@%dms", p->postcopy_at_ms);
    snprintf(buf, len, "%s %uM %ucpu %s/%uM%s%s %s %ux%s %s%s dl=%u bw=%uM | %s%s %s",
             p->path == RP_DAEMON ? "vmshiftd" : "direct", p->mem_mib, p->vcpus,
             rplan_workload_name(p->workload), p->range_mib, p->rate ? "@2000pps" : "",
             rplan_device_name(p->device),
             sec[p->security], p->streams, rplan_codec_name(p->codec), strat[p->strategy], pc,
             p->downtime_limit, p->max_bw_mib, rplan_fault_name(p->fault), extra,
             when_text(p, when, sizeof(when)));
    return buf;
}
