/* Shared between the parts of one random trial (random_trial.c: set-up and tear-down,
 * random_watch.c: the fault and the settling, random_verdict.c: the judgement). */
#ifndef VS_RANDOM_INTERNAL_H
#define VS_RANDOM_INTERNAL_H

#include "harness.h"
#include "host_harness.h"
#include "proxy.h"
#include "random_plan.h"
#include "random_trial.h"

struct disk_watch;

/* One vmshift process of the trial: the source VM or the destination. On the daemon path
 * it is not our child (vmshiftd started it), and vm.dir is empty. */
struct rt_peer {
    struct vm_proc vm;      /* pid (0 once gone), sock, stderr_path */
    bool child;             /* started by us: waitpid gives its exit status */
    bool gone;
    int exit_status;        /* -1 unknown (not our child) */
    bool killed;            /* SIGKILLed by the runner's fault */
    double gone_at;
};

/* What the last look at both sides found. */
struct rt_look {
    bool src_alive, dst_alive;
    char src_state[24], src_mig[24], dst_state[24], dst_in[24];
    double src_iterations;
};

struct rt_ctx {
    const struct rplan *p;
    struct rt_result *r;
    struct rt_peer src, dst;
    struct host_proc hosts[2];              /* daemon path: A (source), B (destination) */
    bool host_up[2];
    struct test_proxy *proxy;
    int target_port;
    char to[64];
    char report_path[160];                  /* direct path: the receiver's --report */
    char static_digest[24], full_digest[24]; /* before the migration */
    char src_ram_digest[24];                /* the last ram-digest the source reported */
    bool dup_seen, fired, postcopy_sent, settled;
    double t_migrate, t_status_seen, t_fired, t_paused_seen;
    struct rt_look look;
    char disk_path[200], disk_spec[220];    /* device RD_DISK: the shared disk */
    bool two_writers;                       /* both sides were seen writing it at once */
    struct disk_watch *disk_watch;          /* samples both sides' descriptors of it */
    char nic_host_ns[32], nic_client_ns[32];    /* device RD_NIC: the namespaces */
    char nic_src_spec[96], nic_dst_spec[96];    /* the two sides' --nic */
    char note[256];                         /* what happened on the way, for the detail */
};

/* random_trial.c */
bool rt_peer_alive(struct rt_peer *x);
struct json_object *rt_ask(struct rt_peer *x, const char *cmd, struct json_object *args);
bool rt_logged(const struct rt_peer *x, const char *text);
void rt_note(struct rt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The digests of the RAM above the workload range (fixed) and of all RAM ("" if the
 * process did not answer). */
void rt_digests(struct rt_peer *x, const struct rplan *p, char *fixed, char *full, size_t n);

/* random_watch.c: strike and settle; fills c->look with the final view. */
void rt_watch(struct rt_ctx *c);
void rt_look(struct rt_ctx *c, struct rt_look *l);
/* The same, the destination only when dst_too (then its fields stay empty). */
void rt_look_sides(struct rt_ctx *c, struct rt_look *l, bool dst_too);

/* random_verdict.c: classify, check the survivor, scan the logs (after every process
 * stopped, for the sanitizer reports). */
void rt_judge(struct rt_ctx *c);
void rt_scan_logs(struct rt_ctx *c, const char *const *paths, unsigned n);

/* random_disk.c: the shared disk of a device trial. */
void rt_disk_create(struct rt_ctx *c, const char *work_dir);
/* From the migrate request: the thread that watches both sides' descriptors. */
void rt_disk_watch(struct rt_ctx *c);
/* At each look: the two statuses (either may be NULL) and the two processes' descriptors. */
void rt_disk_look(struct rt_ctx *c, struct json_object *dst_st, struct json_object *src_st);
/* After the trial, w runs the VM: false and why when a disk check failed. */
bool rt_disk_judge(struct rt_ctx *c, struct rt_peer *w, char *why, size_t n);
bool rt_disk_judge_none(struct rt_ctx *c, char *why, size_t n);

/* random_nic.c: the NIC of a device trial. Setup builds the namespaces and enters the
 * hosts' one (the trial then runs there); wait_ready: the VM answers at the source. */
void rt_nic_setup(struct rt_ctx *c, const char *pid_file);
const char *rt_nic_append(void);
void rt_nic_wait_ready(struct rt_ctx *c);
/* After the trial: the VM answers ping and UDP echo where it runs. */
bool rt_nic_judge(struct rt_ctx *c, char *why, size_t n);
void rt_nic_teardown(struct rt_ctx *c);

#endif
