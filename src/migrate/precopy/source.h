/* The outgoing side of a live migration: a thread that runs the source state machine
 * (setup -> pre-copy passes -> switchover -> verify -> commit, or rollback) for a VM.
 * docs/state-machine.md describes the states and what each failure does. */
#ifndef VS_SOURCE_H
#define VS_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include "migrate/report.h"
#include "transport/dialer.h"
#include "transport/security.h"
#include "vmm/vm.h"

#define VS_DOWNTIME_MAX_STEPS 8

/* What to do when pre-copy stops converging: nothing (fail as "not converging" after
 * max_passes), slow the guest, switch to post-copy, or auto: slow the guest, and switch
 * to post-copy when the throttle would take away more than VS_CONV_AUTO_MAX_THROTTLE of
 * its dirtying (src/migrate/convergence/converge_model.h). */
enum vs_converge { VS_CONVERGE_NONE, VS_CONVERGE_THROTTLE, VS_CONVERGE_POSTCOPY,
                   VS_CONVERGE_AUTO };

struct vs_migration_opts {
    char to[128];               /* "HOST:PORT" of `vmshift receive` */
    uint64_t downtime_limit_ms; /* switch over when the rest can be sent within this */
    uint64_t downtime_schedule_ms[VS_DOWNTIME_MAX_STEPS]; /* raised to these, in order, each
                                   time the passes stop shrinking */
    uint32_t nr_downtime_steps;
    uint64_t max_downtime_ms;   /* never switch over when more is expected; 0 = no limit */
    uint32_t max_passes;        /* pre-copy passes before giving up as "not converging";
                                   0 = go on until it converges or is cancelled */
    int timeout_ms;             /* connect, and any wait for the peer */
    uint64_t max_bandwidth;     /* bytes/s during pre-copy, 0 = unlimited (the blackout
                                   pass is never capped: it is downtime) */
    uint32_t streams;           /* TCP connections, 1..VS_WIRE_MAX_STREAMS (0: default) */
    int compress;               /* enum vs_codec, or VS_COMPRESS_AUTO */
    bool zerocopy;              /* MSG_ZEROCOPY for page data */
    bool with_disks;            /* copy the disks not on shared storage with the RAM */
    bool disk_reread;           /* the disks' digest: re-read in the blackout (x-disk-verify
                                   blackout), not from the blocks' hashes as sent (after) */
    enum vs_converge converge;   /* what to do when pre-copy stops converging */
    struct vs_security_opts security;   /* TLS or --insecure (mode must be set) */
    char ctl_path[108];         /* this VM's control socket, for the recovery commands
                                   the messages give ("": unknown) */
    struct vs_dialer dialer;    /* how to reach `to` (connect NULL: TCP, secured as
                                   `security` says); the engine opens no socket itself */
};

#define VS_COMPRESS_AUTO 100    /* --compress auto: zstd, per batch when it pays */

void vs_migration_default_opts(struct vs_migration_opts *o);

struct vs_migration;

/* Start migrating vm in a new thread. Only one migration per VM at a time. */
int vs_migration_start(struct vs_migration **out, struct vs_vm *vm,
                       const struct vs_migration_opts *opts);
/* Ask the migration to stop and roll back (refused once the source has committed). */
int vs_migration_cancel(struct vs_migration *m);
/* A consistent copy of the counters, and whether the thread has finished. */
void vs_migration_stats(struct vs_migration *m, struct vs_migration_stats *out, bool *finished);
/* Wait for the thread and free. */
void vs_migration_free(struct vs_migration *m);
/* The operator takes the VM back after the migration ended `unconfirmed` because the
 * destination claimed it and then was provably gone (its process died): the VM, paused
 * here since the switchover, runs here again. Only the operator can know that the
 * destination never started it (docs/state-machine.md, "What needs an operator");
 * refused in every other case. */
int vs_migration_reclaim(struct vs_migration *m);

#endif
