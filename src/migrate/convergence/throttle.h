/* The throttle of `--converge throttle`: turns the dirty-rate budget the convergence model
 * asks for (src/migrate/convergence/converge_model.c) into per-vCPU settings of the vCPU throttle
 * (src/vmm/vcpu_throttle.c), corrects them pass by pass from what the guest really
 * dirtied, and records what it cost the guest.
 *
 * With the KVM dirty ring each vCPU gets a dirty limit: one cap for all, chosen so that
 * the vCPUs together stay within the budget (those dirtying less than the cap are not
 * touched). Without the ring every vCPU sleeps the same fraction of its time.
 *
 * From the start of the migration two samplers record, every 100 ms, the time the vCPUs
 * slept for the throttle and the pages the guest workload wrote (its telemetry): the
 * throttle level over time and the guest's progress, from which the guest's lost progress
 * (the vMotion write-up's "I/O halt time") is computed against its rate before the
 * throttle began. */
#ifndef VS_THROTTLE_H
#define VS_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include "migrate/convergence/bw_sampler.h"
#include "vmm/vm.h"

#define VS_THROTTLE_SAMPLE_MS 100

struct vs_throttle {
    struct vs_vm *vm;
    bool dirty_limit;                  /* per-vCPU dirty limits (ring), else sleeps */
    bool engaged;                      /* applied at least once */
    bool released;
    uint64_t start_ns;                 /* when it was first applied */
    unsigned start_sample;             /* the sample index then */
    double demand[VS_MAX_VCPUS];       /* bytes/s each vCPU dirties unthrottled (sleep
                                          mode: demand[0] for the whole VM) */
    double asked;                      /* VM-wide bytes/s asked for in the last pass */
    double gain;                       /* correction for enforcement that lets more through */
    double sleep_fraction;             /* sleep mode: what the vCPUs sleep now */
    double cap;                        /* dirty-limit mode: bytes/s per vCPU now, 0 = none */
    double max_percent;                /* the deepest level so far */
    struct vs_bw_sampler slept;        /* cumulative ns slept by all vCPUs */
    struct vs_bw_sampler guest;        /* cumulative guest pages written */
};

/* Start sampling (at the start of the migration). */
int vs_throttle_init(struct vs_throttle *t, struct vs_vm *vm);
/* Set the throttle for the next pass: the guest may dirty budget bytes/s in all. The last
 * pass's measurement: vm_rate (bytes/s, distinct pages) and, with the ring, each vCPU's
 * rate (vcpu_rate, bytes/s; NULL without the ring). saturated: the pass found the whole
 * working set dirty, so vm_rate is only a lower bound of what the guest would dirty. */
int vs_throttle_apply(struct vs_throttle *t, double budget, double vm_rate,
                      const double *vcpu_rate, bool saturated);
/* Full speed again (switchover, rollback, end). Idempotent. */
void vs_throttle_release(struct vs_throttle *t);
/* Stop sampling; the samples stay until vs_throttle_free. */
void vs_throttle_stop(struct vs_throttle *t);
void vs_throttle_free(struct vs_throttle *t);

/* The level now: share of the vCPUs' time spent in throttle sleeps over the last
 * sample interval, in percent (also kept in max_percent when it is the deepest). */
double vs_throttle_percent_now(struct vs_throttle *t);
/* The guest's pages/s before the throttle began (0 when unknown: too few samples). */
double vs_throttle_guest_baseline(struct vs_throttle *t);
/* Guest progress lost to the throttle until sample `until` (e.g. the switchover), in ms. */
double vs_throttle_guest_stall_ms(struct vs_throttle *t, unsigned until);

#endif
