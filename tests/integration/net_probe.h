/* Network probes for the networked-VM tests, each a child process inside a network
 * namespace (setns), with real sockets:
 *  - the prober: every interval an ICMP echo request (raw socket) and a UDP datagram (to
 *    port 7777) to a target, both numbered; it counts replies per number, so losses,
 *    duplicates and the longest silence are known;
 *  - the capture: an AF_PACKET socket on one interface, counting the RARPs and gratuitous
 *    ARPs for a MAC that arrive there (announcements after a move);
 *  - the tagged ping: ICMP echo requests built by hand in 802.1Q-tagged (or untagged)
 *    frames on an AF_PACKET socket, for hosts whose kernel has no VLAN interfaces;
 *  - the UDP blast: datagrams at a set rate to a target that echoes them, and the rate
 *    the echoes come back at (a NIC's rate limit).
 * Each runs until stopped (SIGTERM), then writes its result through a pipe. */
#ifndef VS_NET_PROBE_H
#define VS_NET_PROBE_H

#include <stdint.h>
#include <sys/types.h>

#define NET_PROBE_MAX 8192              /* numbered probes per run, at most */

struct probe_result {
    uint32_t ping_sent, ping_replied, ping_dups;    /* replied: distinct numbers answered */
    uint32_t udp_sent, udp_replied, udp_dups;
    uint32_t ping_lost, udp_lost;       /* unanswered, of those sent after the first answered
                                           one (the target was up) */
    double max_gap_ms;                  /* the longest time without any reply, after the first */
    double max_gap_at_ms;               /* when it began, after the prober started */
    uint32_t replies_last_second;       /* replies in the last second before the stop */
};

struct capture_result {
    uint32_t rarp, garp;                /* for the MAC, arriving on the interface */
    uint32_t frames;                    /* everything that arrived */
};

struct probe {
    pid_t pid;                          /* 0: not running */
    int fd;                             /* the result's pipe */
    volatile uint32_t *live;            /* prober: replies so far (shared page) */
};

/* Start the prober in netns, towards IPv4 target, every interval_ms. */
void probe_start(struct probe *p, const char *netns, const char *target, unsigned interval_ms);
/* Replies the running prober has seen so far (from a shared page). */
uint32_t probe_replies(const struct probe *p);
/* Stop it and take its result (fails the test if it died). */
void probe_stop(struct probe *p, struct probe_result *out);

/* Start a capture in netns on interface ifname for announcements of mac. */
void capture_start(struct probe *p, const char *netns, const char *ifname, const uint8_t mac[6]);
void capture_stop(struct probe *p, struct capture_result *out);

/* count echo requests, one every interval_ms, from ifname in netns (its MAC, source
 * address src_ip) to dst_mac/dst_ip, tagged with VLAN vid (0: untagged); then the replies
 * that came back in that VLAN (in *wrong_vlan those in another: none should). */
struct tagged_ping {
    const char *netns, *ifname;
    uint8_t dst_mac[6];
    const char *src_ip, *dst_ip;
    uint16_t vid;
};
uint32_t tagged_ping(const struct tagged_ping *t, unsigned count, unsigned interval_ms,
                     uint32_t *wrong_vlan);

/* The UDP blast: `size`-byte datagrams to target:7777 at bytes_per_s for seconds. */
struct blast_result {
    uint32_t sent, echoed;
    uint32_t echoed_in_window;          /* echoes that arrived in the window below */
    double window_s;                    /* from 1 s after the start to the end of sending */
};
void udp_blast_start(struct probe *p, const char *netns, const char *target, unsigned size,
                     uint64_t bytes_per_s, double seconds);
/* Wait for it to end and take its result. */
void udp_blast_wait(struct probe *p, struct blast_result *out);

/* Kill a probe or capture still running (cleanup on any exit path); no result. */
void probe_kill(struct probe *p);

#endif
