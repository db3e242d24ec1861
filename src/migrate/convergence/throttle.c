#include "migrate/convergence/throttle.h"
#include "migrate/convergence/converge_model.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "vmm/vcpu_throttle.h"

#include <string.h>

static uint64_t read_slept(void *arg)
{
    return vs_vm_throttle_slept_ns(arg);
}

static uint64_t read_guest_pages(void *arg)
{
    struct vs_vm *vm = arg;
    struct vs_pvport_view pv;
    vs_pvport_view(&vm->pvport, &pv);
    if (!pv.registered || pv.t.magic != VS_TELEMETRY_MAGIC)
        return 0;
    uint64_t n = 0;
    for (unsigned i = 0; i < VS_MAX_VCPUS && i < pv.t.nr_cpus; i++)
        n += pv.t.cpu[i].pages_written;
    return n;
}

int vs_throttle_init(struct vs_throttle *t, struct vs_vm *vm)
{
    memset(t, 0, sizeof(*t));
    t->vm = vm;
    t->dirty_limit = vm->ring != NULL;
    t->gain = 1;
    int rc = vs_bw_sampler_start(&t->slept, VS_THROTTLE_SAMPLE_MS, 36000, read_slept, vm);
    if (!rc && (rc = vs_bw_sampler_start(&t->guest, VS_THROTTLE_SAMPLE_MS, 36000,
                                         read_guest_pages, vm)))
        vs_bw_sampler_free(&t->slept);
    return rc;
}

static double max_d(double a, double b)
{
    return a > b ? a : b;
}

/* What the last pass showed about the guest's unthrottled appetite. */
static void learn(struct vs_throttle *t, double vm_rate, const double *vcpu_rate,
                  bool saturated)
{
    unsigned n = t->vm->nr_vcpus;
    if (!t->engaged) {
        /* A saturated pass hides how fast the guest really goes: guess twice as fast, the
         * next passes correct it. (Ring counts are not saturated: KVM logs a page again
         * after every reset.) */
        if (t->dirty_limit)
            for (unsigned i = 0; i < n; i++)
                t->demand[i] = vcpu_rate[i];
        else
            t->demand[0] = saturated ? 2 * vm_rate : vm_rate;
        return;
    }
    if (t->dirty_limit) {
        /* A capped vCPU hides its appetite: keep the larger estimate. */
        for (unsigned i = 0; i < n; i++)
            t->demand[i] = t->cap > 0 && vcpu_rate[i] >= 0.8 * t->cap ?
                           max_d(t->demand[i], vcpu_rate[i]) : vcpu_rate[i];
        /* Limits count ring entries, the budget distinct pages: correct towards what
         * was asked. */
        if (t->asked > 0 && vm_rate > 1.1 * t->asked)
            t->gain *= max_d(0.3, t->asked / vm_rate);
        else if (t->asked > 0 && vm_rate < 0.7 * t->asked)
            t->gain *= 1.2;
        t->gain = t->gain < 0.02 ? 0.02 : t->gain > 1 ? 1 : t->gain;
    } else if (t->sleep_fraction < 1) {
        /* What the guest would have dirtied without the sleeps. Saturated: at least
         * twice that, and never less than thought before; otherwise the estimate may
         * also come down. */
        double est = vm_rate / (1 - t->sleep_fraction);
        t->demand[0] = saturated ? max_d(t->demand[0], 2 * est) : est;
    }
}

int vs_throttle_apply(struct vs_throttle *t, double budget, double vm_rate,
                      const double *vcpu_rate, bool saturated)
{
    struct vs_vm *vm = t->vm;
    unsigned n = vm->nr_vcpus;
    if (t->dirty_limit && !vcpu_rate)
        return vs_fail(EINVAL, "the dirty-limit throttle needs per-vCPU rates");
    learn(t, vm_rate, vcpu_rate, saturated);
    if (!t->engaged) {
        t->engaged = true;
        t->start_ns = vs_clock_ns();
        t->start_sample = atomic_load(&t->guest.count);
    }
    t->asked = budget;
    int rc;
    if (t->dirty_limit) {
        uint64_t limits[VS_MAX_VCPUS];
        t->cap = vs_conv_fair_cap(t->demand, n, budget * t->gain);
        for (unsigned i = 0; i < n; i++)
            limits[i] = t->cap > 0 ? (uint64_t)(t->cap / 4096) + 1 : 0;
        rc = vs_vm_throttle_set(vm, NULL, limits);
        vs_info("throttle: dirty limit %.0f pages/s per vCPU (budget %.0f pages/s for the VM, "
                "measured %.0f)", t->cap / 4096, budget / 4096, vm_rate / 4096);
    } else {
        double f = t->demand[0] > 0 ? 1 - budget / t->demand[0] : 0;
        f = f < 0 ? 0 : f > VS_THROTTLE_MAX_PERMILLE / 1000.0 ? VS_THROTTLE_MAX_PERMILLE / 1000.0 : f;
        t->sleep_fraction = f;
        uint32_t permille[VS_MAX_VCPUS];
        for (unsigned i = 0; i < n; i++)
            permille[i] = (uint32_t)(f * 1000 + 0.5);
        rc = vs_vm_throttle_set(vm, permille, NULL);
        vs_info("throttle: vCPUs sleep %.1f%% of their time (budget %.0f pages/s, measured "
                "%.0f, unthrottled %.0f)", f * 100, budget / 4096, vm_rate / 4096,
                t->demand[0] / 4096);
    }
    return rc;
}

void vs_throttle_release(struct vs_throttle *t)
{
    if (!t->vm || !t->engaged || t->released)
        return;
    vs_vm_throttle_release(t->vm);
    t->released = true;
    t->cap = 0;
    t->sleep_fraction = 0;
    vs_info("throttle released");
}

void vs_throttle_stop(struct vs_throttle *t)
{
    vs_bw_sampler_stop(&t->slept);
    vs_bw_sampler_stop(&t->guest);
}

void vs_throttle_free(struct vs_throttle *t)
{
    vs_bw_sampler_free(&t->slept);
    vs_bw_sampler_free(&t->guest);
}

double vs_throttle_percent_now(struct vs_throttle *t)
{
    unsigned n = atomic_load(&t->slept.count);
    if (n < 2 || !t->vm->nr_vcpus)
        return 0;
    double ns = (double)(t->slept.bytes[n - 1] - t->slept.bytes[n - 2]);
    double pct = ns * 100 / ((double)t->vm->nr_vcpus * VS_THROTTLE_SAMPLE_MS * 1e6);
    pct = pct > 100 ? 100 : pct;   /* a long sleep is counted in the interval it ends in */
    if (pct > t->max_percent)
        t->max_percent = pct;
    return pct;
}

double vs_throttle_guest_baseline(struct vs_throttle *t)
{
    unsigned end = t->engaged ? t->start_sample : atomic_load(&t->guest.count);
    if (end < 3)
        return 0;
    /* From the first sample (the telemetry may lag at the very start) to the last one
     * before the throttle. */
    const uint64_t *p = t->guest.bytes;
    return (double)(p[end - 1] - p[0]) * 1000.0 / ((double)(end - 1) * VS_THROTTLE_SAMPLE_MS);
}

double vs_throttle_guest_stall_ms(struct vs_throttle *t, unsigned until)
{
    unsigned n = atomic_load(&t->guest.count);
    if (!t->engaged || n == 0)
        return 0;
    if (until > n - 1)
        until = n - 1;
    double base = vs_throttle_guest_baseline(t);
    if (t->start_sample >= until || base <= 0)
        return 0;
    return vs_conv_lost_ms(t->guest.bytes, t->start_sample, until, VS_THROTTLE_SAMPLE_MS,
                           base / 1000.0);
}
