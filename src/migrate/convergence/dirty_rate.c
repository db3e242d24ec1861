#include "migrate/convergence/dirty_rate.h"
#include "migrate/precopy/dirty.h"
#include "common/clock.h"
#include "common/error.h"
#include "vmm/dirty_ring.h"

#include <string.h>

/* The slope is only trusted over at least this long (the guest reports in bursts). */
#define MIN_SLOPE_MS 100.0
/* The curve has flattened when the end is below this share of the slope's promise. */
#define SATURATED 0.8

static void vcpu_counts(struct vs_vm *vm, uint64_t *out)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        out[i] = vm->ring ? vs_dirty_ring_vcpu_pages(vm->ring, i) : 0;
}

int vs_dirty_rate_measure(struct vs_vm *vm, uint64_t period_ms, struct vs_dirty_rate *out)
{
    memset(out, 0, sizeof(*out));
    if (period_ms < VS_DIRTY_RATE_MIN_MS || period_ms > VS_DIRTY_RATE_MAX_MS)
        return vs_fail(EINVAL, "dirty-rate period_ms=%llu is out of range; give %d to %d",
                       (unsigned long long)period_ms, VS_DIRTY_RATE_MIN_MS, VS_DIRTY_RATE_MAX_MS);
    struct vs_dirty d;
    uint64_t count, c0[VS_MAX_VCPUS], c1[VS_MAX_VCPUS];
    int rc = vs_dirty_start(&d, vm);
    if (rc)
        return vs_fail_context(rc, "dirty-rate");
    /* The first sync reports every page: drop that, re-arm all of RAM, count from here. */
    if (!(rc = vs_dirty_sync(&d, &count)) && !(rc = vs_dirty_clear(&d, 0, d.npages))) {
        vs_dirty_sent(&d, 0, d.npages);
        vcpu_counts(vm, c0);
        uint64_t t0 = vs_clock_ns();
        for (unsigned i = 0; i < VS_DIRTY_RATE_SAMPLES && !rc; i++) {
            uint64_t due = t0 + period_ms * 1000000ULL * (i + 1) / VS_DIRTY_RATE_SAMPLES;
            uint64_t now = vs_clock_ns();
            if (due > now)
                vs_sleep_ns(due - now);
            rc = vs_dirty_sync(&d, &out->pages[i]);
            out->t_ms[i] = (double)(vs_clock_ns() - t0) / 1e6;
        }
        vcpu_counts(vm, c1);
    }
    vs_dirty_stop(&d);
    if (rc)
        return vs_fail_context(rc, "dirty-rate");
    out->tracking = vm->ring ? "dirty-ring" : "dirty-log";
    out->period_ms = period_ms;
    out->dirty_pages = out->pages[VS_DIRTY_RATE_SAMPLES - 1];
    double t_end = out->t_ms[VS_DIRTY_RATE_SAMPLES - 1];
    double min_t = MIN_SLOPE_MS < t_end / 2 ? MIN_SLOPE_MS : t_end / 2;
    for (unsigned i = 0; i < VS_DIRTY_RATE_SAMPLES; i++) {
        if (out->t_ms[i] < min_t)
            continue;
        double r = (double)out->pages[i] * 1e3 / out->t_ms[i];
        if (r > out->pages_per_second)
            out->pages_per_second = r;
    }
    out->saturated = out->pages_per_second > 0 &&
                     (double)out->dirty_pages < SATURATED * out->pages_per_second * t_end / 1e3;
    out->working_set_bytes = out->saturated ? out->dirty_pages * 4096 : 0;
    out->nr_vcpus = vm->nr_vcpus;
    for (unsigned i = 0; vm->ring && i < vm->nr_vcpus; i++)
        out->vcpu_pages_per_second[i] = (double)(c1[i] - c0[i]) * 1e3 / t_end;
    return 0;
}
