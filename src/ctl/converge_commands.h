/* The control-socket side of convergence: measuring a running VM's dirty rate without
 * migrating it (calc-dirty-rate, query-dirty-rate), in the background as QEMU does. */
#ifndef VS_CONVERGE_COMMANDS_H
#define VS_CONVERGE_COMMANDS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "migrate/convergence/dirty_rate.h"

struct json_object;

/* One calc-dirty-rate at a time, measured by its own thread. Owned by the monitor. */
struct dirty_calc {
    pthread_t thread;
    bool running;                /* a thread was started and not joined yet */
    atomic_bool done;            /* ... and it has finished */
    struct vs_vm *vm;
    uint64_t period_ms;
    int rc;                      /* its result, and the message when rc < 0 */
    char error[300];
    struct vs_dirty_rate next;   /* what it measures */
    bool measured;               /* `last` holds a measurement */
    struct vs_dirty_rate last;
    int64_t start_time;          /* of the last start, seconds since the epoch */
};

/* Start measuring for period_ms (100..10000); refused while one runs, while a migration
 * runs (it owns dirty logging), and on a VM that has migrated away. */
int dirty_calc_start(struct dirty_calc *d, struct vs_vm *vm, bool migrating, uint64_t period_ms);
/* Collect a finished measurement; true while one still runs. A failed one fails here
 * (once) with its message. */
bool dirty_calc_busy(struct dirty_calc *d, int *failed);
/* Wait for a running measurement to end. */
void dirty_calc_stop(struct dirty_calc *d);

/* Our fields of a measurement: tracking, period-ms, dirty-pages, dirty-pages-rate,
 * dirty-bytes-rate, saturated, working-set, ram, samples[], vcpu-dirty-rate[]. */
void converge_dirty_rate_json(struct vs_vm *vm, const struct vs_dirty_rate *r,
                              struct json_object *out);

#endif
