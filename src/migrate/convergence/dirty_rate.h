/* Measuring how fast a running VM dirties its memory, without migrating it (`vmshift ctl
 * SOCK dirty-rate`, and `vmshift plan` on a running VM): dirty logging is switched on for
 * a period and the distinct pages dirtied since its start are counted at eight instants.
 * The rate is the steepest slope of that curve; when the curve flattens (the guest keeps
 * rewriting the same pages) its end is the working set, which bounds what one migration
 * pass can find dirty. With the KVM dirty ring the rate of each vCPU is measured too. */
#ifndef VS_DIRTY_RATE_H
#define VS_DIRTY_RATE_H

#include <stdbool.h>
#include <stdint.h>
#include "vmm/vm.h"

#define VS_DIRTY_RATE_SAMPLES 8
#define VS_DIRTY_RATE_MIN_MS 100
#define VS_DIRTY_RATE_MAX_MS 10000

struct vs_dirty_rate {
    const char *tracking;             /* "dirty-log" or "dirty-ring" */
    uint64_t period_ms;
    double t_ms[VS_DIRTY_RATE_SAMPLES];        /* since the start of the period */
    uint64_t pages[VS_DIRTY_RATE_SAMPLES];     /* distinct pages dirtied until then */
    double pages_per_second;          /* the steepest slope */
    uint64_t dirty_pages;             /* distinct pages over the whole period */
    bool saturated;                   /* the curve flattened ... */
    uint64_t working_set_bytes;       /* ... at this (0 when it did not) */
    unsigned nr_vcpus;
    double vcpu_pages_per_second[VS_MAX_VCPUS];   /* with the dirty ring only */
};

/* Measure for period_ms (VS_DIRTY_RATE_MIN_MS..VS_DIRTY_RATE_MAX_MS); the VM must not be
 * migrating (the migration owns dirty logging). */
int vs_dirty_rate_measure(struct vs_vm *vm, uint64_t period_ms, struct vs_dirty_rate *out);

#endif
