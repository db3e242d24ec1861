/* The stream collector for the net-stream tests: a child process inside a network
 * namespace (setns) with a UDP socket bound to a port, taking the guest's numbered
 * datagrams (guest/net_stream.h) and counting, from the first datagram on:
 *  - received: datagrams of the stream (right magic, seed of the first one);
 *  - lost: numbers below the highest seen that never came (a late one stops being lost);
 *  - duplicated: a number that came again; reordered: a number below the highest seen
 *    (arriving late, not a duplicate);
 *  - the longest times between two consecutive datagrams (by the kernel's arrival stamps,
 *    so a collector the host schedules late still measures the network's gaps).
 * Counts are live in a shared page; the stop drains for a moment, then they are final. */
#ifndef VS_NET_COLLECTOR_H
#define VS_NET_COLLECTOR_H

#include <stdint.h>
#include <sys/types.h>

#define COLLECTOR_MAX_SEQ (1u << 22)    /* numbers beyond this count as malformed */
#define COLLECTOR_GAPS 8                /* the longest gaps kept */

struct stream_gap {
    double at_ms;                       /* wall clock (CLOCK_REALTIME) of the datagram
                                           before the gap, ms */
    double ms;
};

struct stream_stats {
    uint64_t received, lost, duplicated, reordered;
    uint64_t foreign;                   /* magic right, another seed: another VM instance */
    uint64_t malformed;                 /* too short, wrong magic, number out of range */
    uint64_t highest;                   /* highest number seen + 1 (0: none yet) */
    uint64_t seed;                      /* of the first datagram */
    double first_ms, last_ms;           /* wall clock of the first and the last datagram */
    struct stream_gap gaps[COLLECTOR_GAPS];   /* longest first */
};

struct collector {
    pid_t pid;                          /* 0: not running */
    struct stream_stats *live;          /* shared with the child */
};

/* Start collecting on UDP port (any address) in netns; fails the test if it cannot bind. */
void collector_start(struct collector *c, const char *netns, uint16_t port);
/* The counts so far (a copy; fields may be a datagram apart from each other). */
void collector_snapshot(const struct collector *c, struct stream_stats *out);
/* Stop (after a drain of late datagrams) and take the final counts. */
void collector_stop(struct collector *c, struct stream_stats *out);
/* Kill it if it still runs (cleanup on any exit path); no result. */
void collector_kill(struct collector *c);

#endif
