/* How many streams a migration uses when the user does not say (--streams 0): one per
 * online CPU, at most VS_WIRE_MAX_STREAMS (16), and when the speed of the link towards the
 * destination is known, at most one per 5 Gbit/s of it (a stream carries 5-10 Gbit/s on
 * one core: more streams than that only share the link). At least one. */
#ifndef VS_STREAM_COUNT_H
#define VS_STREAM_COUNT_H

#include <stdint.h>

#define VS_STREAM_LINK_SHARE_BPS 5000000000ULL   /* 5 Gbit/s of link per stream */

/* The choice for cpus online CPUs and a link of link_bps bits/s (0: unknown). */
uint32_t vs_stream_count_choose(long cpus, uint64_t link_bps);
/* The speed of the interface this host would use to reach host (a name or address), from
 * /sys/class/net/IF/speed, in bits/s; 0 when unknown (loopback, virtual links, errors). */
uint64_t vs_link_speed_towards(const char *host);
/* vs_stream_count_choose for this host and the link towards to ("HOST:PORT"). */
uint32_t vs_stream_count_default(const char *to);

#endif
