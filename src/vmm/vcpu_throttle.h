/* Slowing vCPUs down so that a live migration converges (the mechanism; the policy is in
 * src/migrate/convergence/throttle.c). Two kinds, both enforced by the vCPU's own thread at its
 * throttle point, right before it enters KVM_RUN:
 *
 *  - sleep: the vCPU sleeps a fixed fraction of its time (QEMU's cpu-throttle, vMotion's
 *    stun): after running for C ns of thread CPU time it sleeps C * f / (1 - f).
 *  - dirty limit: with the KVM dirty ring, the vCPU may dirty at most L pages/s; its
 *    ring entries are counted and it sleeps until the pages it dirtied are "paid for"
 *    (a token bucket with 20 ms of burst). vCPUs that dirty less than L are not slowed
 *    at all (QEMU's dirty-limit).
 *
 * A ticker thread kicks every throttled vCPU out of KVM_RUN every 10 ms, so a guest that
 * never exits on its own still reaches its throttle point. */
#ifndef VS_VCPU_THROTTLE_H
#define VS_VCPU_THROTTLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define VS_THROTTLE_MAX_PERMILLE 990   /* sleeps never take more than 99% of a vCPU */

struct vs_vcpu_throttle {
    _Atomic uint32_t sleep_permille;   /* 0..VS_THROTTLE_MAX_PERMILLE */
    _Atomic uint64_t dirty_limit;      /* pages/s, 0 = none (needs the dirty ring) */
    atomic_uint_fast64_t slept_ns;     /* time slept for throttling, cumulative */
    /* Owned by the vCPU thread. */
    bool armed;                        /* marks below are current */
    uint64_t cpu_mark_ns;              /* thread CPU time at the last throttle point */
    uint64_t pages_mark;               /* ring pages already paid for */
    uint64_t paid_until_ns;            /* the pages so far may be dirtied until then */
};

struct vs_vm_throttle {
    atomic_bool active;                /* any vCPU has a throttle */
    pthread_t ticker;
    bool ticker_running;
    atomic_bool ticker_stop;
};

struct vs_vm;
struct vs_vcpu;

/* vCPU thread: sleep here if this vCPU owes throttle time. */
void vs_vcpu_throttle_point(struct vs_vcpu *v);

/* Set every vCPU's throttle (arrays of vm->nr_vcpus; NULL means 0 for all) and start the
 * ticker. Dirty limits need the dirty ring. */
int vs_vm_throttle_set(struct vs_vm *vm, const uint32_t *sleep_permille,
                       const uint64_t *dirty_limit);
/* Every vCPU runs at full speed again; stops the ticker. Idempotent. */
void vs_vm_throttle_release(struct vs_vm *vm);
/* Time all vCPUs have slept for throttling so far. */
uint64_t vs_vm_throttle_slept_ns(struct vs_vm *vm);

#endif
