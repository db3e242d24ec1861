/* Convergence of one outgoing migration: after every pre-copy pass the pass loop
 * (source.c) hands the pass's numbers here. This measures the guest's dirty rate (for the
 * VM, and per vCPU with the KVM dirty ring), recomputes the expected downtime and total
 * time with the model (converge_model.c), decides under the user's policy (downtime
 * schedule, hard maximum, --converge) what comes next, and drives the throttle
 * (throttle.c). Everything it learns goes into the migration's stats (report "conv"). */
#ifndef VS_CONVERGE_H
#define VS_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>
#include "migrate/convergence/converge_model.h"
#include "migrate/convergence/throttle.h"

/* The fixed part of a downtime the model adds to the last transfer (vCPU and device
 * state, finishing the digests, the verdict, resume): measured, typically 20-80 ms here. */
#define VS_CONV_SWITCHOVER_MS 50.0
/* ... and the set-up before pass 0 (connect, handshake, dirty-log start). */
#define VS_CONV_SETUP_MS 30.0

struct vs_migration;

struct vs_convergence {
    struct vs_conv_policy policy;
    struct vs_conv_state state;
    struct vs_throttle throttle;
    bool started;
    uint64_t pass_start_ns;
    uint64_t queued0;                         /* bytes in the send queues at the pass start */
    uint64_t slept0_ns;                       /* throttle sleeps at the pass start */
    uint64_t ring_pages0[VS_MAX_VCPUS];       /* per-vCPU ring counts at the pass start */
    double working_set;                       /* the most a pass found dirty (bytes) */
    bool force_pass;                          /* a switchover was called off: one more pass */
};

/* Set up from the migration's options; starts the throttle's samplers. */
int vs_converge_init(struct vs_migration *m);
/* Right before a pre-copy pass starts. */
void vs_converge_pass_start(struct vs_migration *m);
/* After the sync that follows a pre-copy pass: dirty_pages are pending now. Decides,
 * updates the stats, and sets the throttle for the next pass when that is the strategy.
 * Returns 0 and the action, or an error. */
int vs_converge_after_pass(struct vs_migration *m, uint64_t dirty_pages,
                           enum vs_conv_action *action);
/* The "not converging" error of a migration that gave up. */
int vs_converge_give_up(struct vs_migration *m);
/* At the switchover, after the sync with the vCPUs stopped: false when the transfer now
 * expected exceeds --max-downtime (the switchover is called off, pre-copy goes on). */
bool vs_converge_switchover_ok(struct vs_migration *m, uint64_t dirty_pages);
/* The vCPUs run at full speed again (switchover, rollback). */
void vs_converge_release(struct vs_migration *m);
/* The migration ended: stop sampling and fill in the final throttle figures. */
void vs_converge_finish(struct vs_migration *m);
void vs_converge_free(struct vs_migration *m);
/* Copy what changes while the migration runs into a stats snapshot (m->lock held). */
void vs_converge_snapshot(struct vs_migration *m, struct vs_migration_stats *out);

#endif
