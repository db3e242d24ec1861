/* One trial of the random fault campaign (scripts/faults.sh), drawn from a seed: the VM,
 * how it migrates, and which fault strikes when. The same seed always draws the same plan
 * (what happens afterwards depends on timing, which is the point of trying many). */
#ifndef VS_RANDOM_PLAN_H
#define VS_RANDOM_PLAN_H

#include <stdbool.h>
#include <stdint.h>

enum rp_path { RP_DIRECT, RP_DAEMON };     /* vmshift run/receive, or through two vmshiftd */
/* RP_DISK and RP_NET only with their device (vCPU 0 runs the device's workload, the
 * other vCPUs verify the range meanwhile; net: every vCPU idles between frames). */
enum rp_workload { RP_IDLE, RP_ONCE, RP_VERIFY, RP_CONTINUOUS, RP_DISK, RP_NET };
/* A device of the VM: a virtio-blk disk on a file both sides reach (--disk FILE,shared),
 * or a virtio-net NIC on a TAP of a bridge on each side. Drawn from a stream of its own,
 * so every other choice of a seed is what it was before devices were drawn. */
enum rp_device { RD_NONE, RD_DISK, RD_NIC };
enum rp_codec { RP_NONE, RP_LZ4, RP_ZSTD, RP_AUTO };
enum rp_security { RP_INSECURE, RP_PSK, RP_CERT };
enum rp_strategy { RP_PRECOPY, RP_THROTTLE, RP_POSTCOPY };
enum rp_fault {
    RF_NONE,          /* control trial: no fault */
    RF_CUT,           /* the proxy shuts every open connection down */
    RF_STALL,         /* the proxy holds every byte in flight for stall_ms */
    RF_CORRUPT,       /* the proxy flips one byte of one connection */
    RF_KILL_SRC,      /* SIGKILL the source's vmshift */
    RF_KILL_DST,      /* SIGKILL the destination's vmshift */
    RF_KILL_DAEMON,   /* SIGKILL one vmshiftd (daemon path only) */
    RF_POINT,         /* a named fault point (VMSHIFT_FAULT) in one process */
    RF_COUNT
};
/* When the runner strikes (RF_POINT strikes where its point is reached instead). */
enum rp_when {
    RW_TIME,          /* when_ms after the migrate request */
    RW_STATUS,        /* when_ms after the source's migration status is first when_status */
    RW_PASS,          /* when_ms after the source reports when_pass finished passes */
};

struct rplan {
    uint64_t seed;
    enum rp_path path;
    unsigned mem_mib, vcpus, range_mib;       /* the workload range: 4 MiB + range_mib */
    enum rp_workload workload;
    enum rp_device device;                    /* direct path only (vmshiftd's vm-start has
                                                 no --disk or --nic field) */
    unsigned rate;                            /* guest pages/s, 0 = full speed */
    unsigned streams;
    enum rp_codec codec;
    enum rp_security security;
    enum rp_strategy strategy;
    unsigned max_bw_mib;                      /* pre-copy cap, MiB/s, 0 = none */
    unsigned downtime_limit;                  /* ms */
    int postcopy_at_ms;                       /* post-copy: start-postcopy this long after
                                                 the migrate request (-1: only converge) */
    enum rp_fault fault;
    enum rp_when when;
    unsigned when_ms, when_pass;
    const char *when_status;
    unsigned stall_ms;                        /* RF_STALL */
    unsigned corrupt_dir, corrupt_conn;       /* RF_CORRUPT: 0 to the destination, 1 back */
    uint32_t corrupt_pos;
    unsigned daemon;                          /* RF_KILL_DAEMON: 0 source host, 1 destination */
    unsigned point_side;                      /* RF_POINT: 0 source, 1 destination */
    char point[64];                           /* RF_POINT: the VMSHIFT_FAULT value */
};

void rplan_draw(struct rplan *p, uint64_t seed);
/* One line: "64M 2cpu verify/8M psk 2x lz4 pre-copy bw=32M | cut @status=active+12ms". */
const char *rplan_describe(const struct rplan *p, char *buf, unsigned len);
/* The fault's short name for the table ("cut", "kill-src", "point", ...). */
const char *rplan_fault_name(enum rp_fault f);
const char *rplan_workload_name(enum rp_workload w);
const char *rplan_device_name(enum rp_device d);
const char *rplan_codec_name(enum rp_codec c);
/* Seconds a migration of this plan should take without a fault (the window for RW_TIME). */
double rplan_expected_s(const struct rplan *p);

#endif
