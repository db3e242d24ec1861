/* A token bucket: a NIC's rate limit in one direction (virtio_net.c). Bytes flow while
 * the bucket is not in debt; each frame is charged after it went, so a frame larger than
 * the bucket never waits forever and the long-run rate is exact: over any time T at most
 * burst + rate * T + one frame. Pure: the caller gives the time. */
#ifndef VS_NET_RATE_H
#define VS_NET_RATE_H

#include <stddef.h>
#include <stdint.h>

#define VS_TB_BURST_NS 10000000ull      /* the bucket holds 10 ms at the rate ... */
#define VS_TB_MIN_BURST 3072u           /* ... and at least two full-size frames */

struct vs_token_bucket {
    uint64_t rate;                      /* bytes per second; 0: no limit */
    double burst;                       /* bytes the bucket holds when full */
    double tokens;                      /* bytes it may send now (negative: in debt) */
    uint64_t last_ns;                   /* when tokens was last brought up to date */
};

/* A full bucket for rate bytes/s (0: unlimited) at now_ns. */
void vs_tb_init(struct vs_token_bucket *b, uint64_t rate, uint64_t now_ns);
/* 0 if a frame may go at now_ns, else the nanoseconds until one may. */
uint64_t vs_tb_wait(struct vs_token_bucket *b, uint64_t now_ns);
/* A frame of len bytes went. */
void vs_tb_charge(struct vs_token_bucket *b, size_t len);

#endif
