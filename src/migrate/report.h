/* The counters of one migration (one struct per migration, with units in the names) and
 * their JSON form. Field names follow QEMU's query-migrate where they mean the same. */
#ifndef VS_REPORT_H
#define VS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_REPORT_MAX_PASSES 64
#define VS_REPORT_MAX_STREAMS 16
#define VS_REPORT_MAX_VCPUS 32
#define VS_REPORT_MAX_STEPS 8

struct json_object;

struct vs_pass_stats {
    uint32_t pass;
    uint64_t dirty_pages;      /* pages to send at the start of the pass */
    uint64_t sent_pages;       /* with data */
    uint64_t zero_pages;       /* sent as "all zero" */
    uint64_t skipped_pages;    /* never written (holes of RAM): not sent at all */
    uint64_t bytes;            /* bytes written to the channel during the pass */
    uint64_t duration_ns;
    uint64_t dirtied_pages;    /* pages the guest dirtied meanwhile (next pass's work) */
    uint64_t sync_ns;          /* collecting the dirty log before this pass */
    bool final;                /* the blackout pass, with the vCPUs stopped */
    double limit_ms;           /* the downtime limit in force after the pass */
    double throttle_pct;       /* share of vCPU time slept for the throttle during it */
    double expected_total_ms;  /* the prediction made after it (0: not converging) */
    uint64_t disk_blocks;      /* disk blocks sent in the pass (--with-disks), zero ones too */
    uint64_t disk_bytes;       /* bytes of those disk records (also counted in bytes) */
    uint64_t first_rx_ns;      /* destination: CLOCK_MONOTONIC when the pass's first record
                                  arrived on any stream (not in the JSON report) */
};

/* --converge and what it did (src/migrate/convergence/converge.c, throttle.c). */
struct vs_converge_stats {
    const char *strategy;         /* --converge: "none", "throttle", "postcopy" */
    const char *state;            /* the last decision: "converging", "stalled",
                                     "throttling", "switchover", "not-converging",
                                     "postcopy" */
    const char *tracking;         /* "dirty-log" or "dirty-ring" */
    double expected_total_ms;     /* predicted total time; 0 = not predictable */
    uint32_t expected_passes;     /* pre-copy passes the prediction still expects */
    uint64_t max_downtime_ms;     /* 0 = none */
    uint64_t schedule_ms[VS_REPORT_MAX_STEPS];
    uint32_t nr_steps, steps_used;
    uint32_t switchover_retries;  /* switchovers called off because the final sync found
                                     more than max_downtime allows */
    uint32_t nr_vcpus;
    double vcpu_dirty_rate[VS_REPORT_MAX_VCPUS];  /* pages/s in the last pass (ring only) */
    /* The throttle. */
    const char *throttle_mode;    /* "none", "dirty-limit", "sleep" */
    uint64_t throttle_start_ns;   /* relative to start_ns; 0 = never throttled */
    double throttle_pct;          /* level now */
    double throttle_max_pct;
    double vcpu_dirty_limit[VS_REPORT_MAX_VCPUS];   /* pages/s now, 0 = none */
    double guest_baseline_pps;    /* guest pages/s before the throttle */
    double guest_stall_ms;        /* guest progress lost to the throttle, as time */
    /* Every VS_THROTTLE_SAMPLE_MS: cumulative vCPU ns slept, cumulative guest pages. */
    uint32_t sample_ms, nr_samples;
    const uint64_t *slept_ns;
    const uint64_t *guest_pages;
};

/* Post-copy: what happened after the destination started running the VM. */
struct vs_postcopy_stats {
    bool active;               /* the migration switched to post-copy */
    uint64_t at_ns;            /* when the source paused for it, relative to start_ns */
    uint64_t time_ns;          /* destination VM running -> every page present */
    uint64_t missing_pages;    /* pages the destination lacked at the switch */
    uint64_t requested_pages;  /* asked for on demand (faults sent as PAGE_REQUEST) */
    uint64_t urgent_pages;     /* source: sent as answers; destination: arrived as such */
    uint64_t background_pages; /* sent / arrived in the background stream */
    uint64_t urgent_bytes, background_bytes;
    uint64_t faults;           /* destination: faults on pages that were missing */
    uint64_t fault_wait_ns;    /* their total wait (fault -> page in place) */
    uint64_t fault_wait_max_ns;
    uint32_t resumes;          /* connections lost and resumed */
    bool verified_present;     /* destination: the final check found every page present */
};

/* Destination: one announcement round of a NIC after the VM started running here. */
#define VS_REPORT_MAX_ANNOUNCES 32
struct vs_announce_report {
    char nic[24];              /* "virtio-net1" */
    char tap[16];              /* its TAP on this host */
    uint32_t round;            /* 1 = the first */
    double at_ms;              /* after the VM started running here */
    bool rarp, garp, guest;    /* RARP sent, gratuitous ARP sent, the guest asked */
};

/* Disks copied with the VM (`--with-disks`, src/migrate/disk/). */
struct vs_disk_report {
    uint32_t disks;            /* disks copied (0: none; no "disk" section) */
    uint64_t size_bytes;       /* their sizes, summed */
    uint64_t allocated_bytes;  /* source: found allocated (not holes) for the bulk pass */
    uint64_t blocks;           /* blocks sent (arrived) with data */
    uint64_t zero_blocks;      /* sent as all zero (no data); zero blocks of the bulk pass
                                  are not sent at all */
    uint64_t bytes;            /* bytes of the disk records */
    uint32_t passes;           /* passes that carried disk blocks */
    uint64_t bulk_ns;          /* source: the first (bulk) pass over the disks */
    uint64_t final_blocks;     /* blocks sent in the blackout */
    uint64_t digest_ns;        /* computing this side's disk digests */
    uint64_t digest;           /* the first disk's digest (both sides compare them all) */
    uint32_t audit;            /* source, x-disk-verify after: VS_DISK_AUDIT_* */
    uint64_t audit_ns;         /* re-reading the final disks after the commit */
    uint64_t audit_block;      /* the first block that differs (audit DIFFERS) */
};

enum { VS_DISK_AUDIT_NONE, VS_DISK_AUDIT_EQUAL, VS_DISK_AUDIT_DIFFERS };

struct vs_migration_stats {
    const char *status;        /* "setup", "active", "switchover", "verifying", "completed",
                                  "failed", "cancelled" */
    char error[512];
    char peer[128];
    uint64_t ram_total_bytes;
    const char *ram_pages;     /* destination: the page size guest RAM got, and why (static
                                  text; NULL: not known, e.g. the source's report) */
    uint32_t vcpus;
    uint64_t downtime_limit_ms;
    uint32_t max_passes;

    uint64_t start_ns;         /* CLOCK_MONOTONIC at start */
    uint64_t setup_ns;         /* connect + handshake + dirty log start */
    uint64_t total_ns;
    uint64_t downtime_ns;      /* source vCPU stop -> destination vCPU resume */
    bool downtime_exact;       /* both ends share a clock (same host); otherwise the
                                  destination counts from the switchover's first record */
    uint64_t blackout_send_ns; /* final pass, inside the downtime */
    uint64_t verify_ns;        /* state, digests and comparison, inside the downtime */
    uint64_t device_state_save_ns;  /* source: saving the machine's device state (blackout) */
    uint64_t device_state_load_ns;  /* destination: checking and loading it */
    uint64_t device_state_bytes;    /* the MACHINE_STATE blob */
    uint64_t dirty_log_start_ns;
    uint64_t last_sync_ns;

    uint64_t transferred_bytes;   /* everything written to the channel */
    uint64_t normal_pages;        /* pages sent with data */
    uint64_t zero_pages;          /* pages sent as zero ("duplicate" in QEMU) */
    uint64_t skipped_pages;       /* never-written pages, not sent at all */
    uint64_t remaining_bytes;     /* dirty bytes not yet sent */
    double mbps;                  /* megabits/s: of the last pass while running, of the
                                     whole migration in the final report */
    double dirty_pages_rate;      /* pages/s the guest dirtied during the last pass */
    double expected_downtime_ms;  /* remaining_bytes at the current throughput */

    /* Streams and codecs. */
    uint32_t nr_streams;
    uint64_t stream_bytes[VS_REPORT_MAX_STREAMS];   /* per stream, both directions' sender */
    const char *compress;         /* "none", "lz4", "zstd", "auto" */
    uint64_t compressed_pages;    /* pages sent in CPAGES records */
    uint64_t compressed_raw_bytes;    /* their size before ... */
    uint64_t compressed_wire_bytes;   /* ... and after compression */
    bool zerocopy;
    const char *security;         /* "tls-psk", "tls-cert", "insecure" */
    char tls_cipher[48];          /* the TLS 1.3 suite of stream 0 ("" without TLS) */
    bool ktls;                    /* the kernel encrypts stream 0's sends */
    uint64_t zerocopy_sends, zerocopy_copied;  /* MSG_ZEROCOPY sends, and those the kernel
                                                  copied anyway */
    /* Cost: CPU time of the migration's own work (not the guest's) on this side. */
    uint64_t cpu_ns;
    /* Throughput over time: cumulative bytes sent at every interval (owned by the
     * migration; valid while it exists). */
    const uint64_t *bw_bytes;
    uint32_t bw_count;
    uint32_t bw_interval_ms;
    uint64_t switchover_at_ns;    /* vCPUs stopped, relative to start_ns (0: not yet) */

    struct vs_converge_stats conv;

    uint64_t ram_digest;
    struct vs_disk_report disk;
    struct vs_postcopy_stats postcopy;
    unsigned nr_passes;
    struct vs_pass_stats passes[VS_REPORT_MAX_PASSES];
    unsigned nr_announces;
    struct vs_announce_report announces[VS_REPORT_MAX_ANNOUNCES];
};

/* Destination: the source's vCPUs stopped at at_ns (this host's CLOCK_MONOTONIC) ->
 * switchover_at_ns. */
void vs_report_note_switchover(struct vs_migration_stats *s, uint64_t at_ns);
/* The destination's vCPUs were released at resume_ns: the downtime from the switchover
 * (switchover_at_ns after start_ns; nothing if it is not known). */
void vs_report_note_resume(struct vs_migration_stats *s, uint64_t resume_ns);
/* The final throughput: transferred_bytes over total_ns, in mbps. */
void vs_report_note_total(struct vs_migration_stats *s);

/* The report as a JSON object (caller puts it). */
struct json_object *vs_report_json(const struct vs_migration_stats *s);
/* One progress line for terminals and logs. */
void vs_report_progress(const struct vs_migration_stats *s, char *buf, size_t len);

#endif
