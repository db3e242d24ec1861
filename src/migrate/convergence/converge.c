#include "migrate/convergence/converge.h"
#include "migrate/precopy/source_internal.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "vmm/dirty_ring.h"
#include "vmm/vcpu_throttle.h"

#include <string.h>

/* A pass shorter or smaller than this says little about the link's rate. */
#define MIN_RATE_NS    100000000ULL
#define MIN_RATE_BYTES (1 << 20)

static const char *strategy_name(enum vs_converge c)
{
    return c == VS_CONVERGE_THROTTLE ? "throttle" : c == VS_CONVERGE_POSTCOPY ? "postcopy" :
           c == VS_CONVERGE_AUTO ? "auto" : "none";
}

int vs_converge_init(struct vs_migration *m)
{
    struct vs_convergence *c = &m->conv;
    const struct vs_migration_opts *o = &m->opts;
    memset(c, 0, sizeof(*c));
    c->policy.downtime_limit_ms = (double)o->downtime_limit_ms;
    c->policy.nr_steps = o->nr_downtime_steps;
    for (unsigned i = 0; i < o->nr_downtime_steps && i < VS_CONV_MAX_STEPS; i++)
        c->policy.schedule_ms[i] = (double)o->downtime_schedule_ms[i];
    c->policy.max_downtime_ms = (double)o->max_downtime_ms;
    c->policy.max_passes = o->max_passes;
    c->policy.converge = o->converge;
    int rc = vs_conv_check_policy(&c->policy);
    if (rc)
        return rc;
    c->state.limit_ms = c->policy.downtime_limit_ms;
    if ((rc = vs_throttle_init(&c->throttle, m->vm)))
        return rc;
    c->started = true;
    struct vs_converge_stats *cs = &m->stats.conv;
    cs->strategy = strategy_name(o->converge);
    cs->state = "converging";
    cs->tracking = m->vm->ring ? "dirty-ring" : "dirty-log";
    cs->throttle_mode = "none";
    cs->max_downtime_ms = o->max_downtime_ms;
    cs->nr_steps = o->nr_downtime_steps;
    for (unsigned i = 0; i < o->nr_downtime_steps && i < VS_REPORT_MAX_STEPS; i++)
        cs->schedule_ms[i] = o->downtime_schedule_ms[i];
    cs->nr_vcpus = m->vm->nr_vcpus;
    cs->sample_ms = VS_THROTTLE_SAMPLE_MS;
    return 0;
}

/* Bytes written to the streams that have not left this host yet. */
static uint64_t queued(struct vs_migration *m)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < m->nr_streams; i++)
        n += vs_channel_queued(m->streams[i].ch);
    return n;
}

void vs_converge_pass_start(struct vs_migration *m)
{
    struct vs_convergence *c = &m->conv;
    c->pass_start_ns = vs_clock_ns();
    c->queued0 = queued(m);
    c->slept0_ns = vs_vm_throttle_slept_ns(m->vm);
    for (unsigned i = 0; m->vm->ring && i < m->vm->nr_vcpus; i++)
        c->ring_pages0[i] = vs_dirty_ring_vcpu_pages(m->vm->ring, i);
}

/* Each vCPU's share of the VM's dirty rate in the pass (bytes/s), from its ring entries;
 * raw_pps gets each vCPU's own entries per second. */
static void vcpu_rates(struct vs_migration *m, double seconds, double vm_rate, double *share,
                       double *raw_pps)
{
    unsigned n = m->vm->nr_vcpus;
    double pages[VS_MAX_VCPUS], total = 0;
    for (unsigned i = 0; i < n; i++) {
        pages[i] = (double)(vs_dirty_ring_vcpu_pages(m->vm->ring, i) - m->conv.ring_pages0[i]);
        total += pages[i];
    }
    for (unsigned i = 0; i < n; i++) {
        share[i] = total > 0 ? vm_rate * pages[i] / total : vm_rate / n;
        raw_pps[i] = seconds > 0 ? pages[i] / seconds : 0;
    }
}

static const char *state_name(enum vs_conv_action a, const struct vs_conv_state *s)
{
    switch (a) {
    case VS_CONV_SWITCHOVER: return "switchover";
    case VS_CONV_THROTTLE: return "throttling";
    case VS_CONV_POSTCOPY: return "postcopy";
    case VS_CONV_NOT_CONVERGING: return "not-converging";
    case VS_CONV_NEXT_PASS: break;
    }
    return s->not_shrinking ? "stalled" : "converging";
}

/* What the model expects from here on, under the same policy. */
static void predict(struct vs_migration *m, double pending, double bw, double rate,
                    struct vs_conv_plan *plan)
{
    struct vs_convergence *c = &m->conv;
    struct vs_conv_sim sim = {
        .first_pass_bytes = pending,
        .setup_ms = (double)(vs_clock_ns() - m->stats.start_ns) / 1e6,
        .switchover_ms = VS_CONV_SWITCHOVER_MS,
        .link = { .bandwidth = bw, .dirty_rate = rate, .working_set = c->working_set },
        .policy = c->policy,
        .start = c->state,
    };
    vs_conv_simulate(&sim, plan);
}

int vs_converge_after_pass(struct vs_migration *m, uint64_t dirty_pages,
                           enum vs_conv_action *action)
{
    struct vs_convergence *c = &m->conv;
    struct vs_vm *vm = m->vm;
    unsigned n = vm->nr_vcpus;
    uint64_t q = queued(m), elapsed = vs_clock_ns() - c->pass_start_ns;
    pthread_mutex_lock(&m->lock);
    struct vs_pass_stats last = m->stats.nr_passes && m->stats.nr_passes <= VS_REPORT_MAX_PASSES ?
                                m->stats.passes[m->stats.nr_passes - 1] : (struct vs_pass_stats){ 0 };
    /* What the link really carried: a pass "ends" when its last bytes are in the socket
     * buffers, which can hold megabytes; count what left this host over the whole time. */
    double delivered = (double)last.bytes + (double)c->queued0 - (double)q;
    if (elapsed >= MIN_RATE_NS && delivered >= MIN_RATE_BYTES)  /* else keep the last one */
        m->bandwidth = delivered * 1e9 / (double)elapsed;
    double bw = m->bandwidth;
    m->stats.mbps = bw * 8 / 1e6;
    /* Still to go before a switchover completes: the dirty pages and the queued bytes. */
    double pending = (double)dirty_pages * 4096 + (double)q;
    m->stats.expected_downtime_ms = bw > 0 ? pending * 1e3 / bw : 0;
    pthread_mutex_unlock(&m->lock);
    double secs = (double)last.duration_ns / 1e9, sent = (double)last.dirty_pages * 4096;
    double rate = secs > 0 ? (double)dirty_pages * 4096 / secs : 0;
    if (c->state.passes == 0)
        rate *= 2;   /* pass 0 absorbed about half of the writes (converge_model.h) */
    if ((double)dirty_pages * 4096 > c->working_set)
        c->working_set = (double)dirty_pages * 4096;
    double share[VS_MAX_VCPUS] = { 0 }, raw_pps[VS_MAX_VCPUS] = { 0 };
    if (vm->ring)
        vcpu_rates(m, secs, rate, share, raw_pps);
    double slept = (double)(vs_vm_throttle_slept_ns(vm) - c->slept0_ns);

    struct vs_conv_link link = { .bandwidth = bw, .dirty_rate = rate, .working_set = c->working_set };
    bool raised;
    *action = vs_conv_after_pass(&c->policy, &c->state, sent, pending, &link, &raised);
    double limit = vs_conv_effective_limit_ms(&c->policy, &c->state);
    if (raised)
        vs_info("passes stopped shrinking: downtime limit raised to %.0f ms (step %u of %u)",
                c->state.limit_ms, c->state.step, c->policy.nr_steps);
    int rc = 0;
    double budget = 0;
    if (*action == VS_CONV_THROTTLE) {
        budget = vs_conv_throttle_budget(pending, bw, limit,
                                         vs_conv_throttle_passes_left(&c->state));
        bool saturated = (double)dirty_pages * 4096 >= 0.9 * c->working_set;
        rc = vs_throttle_apply(&c->throttle, budget, rate, vm->ring ? share : NULL, saturated);
    }
    /* The guest's unthrottled appetite drives the prediction while throttled. */
    double appetite = rate;
    if (c->throttle.engaged && !c->throttle.released) {
        appetite = 0;
        for (unsigned i = 0; i < (c->throttle.dirty_limit ? n : 1); i++)
            appetite += c->throttle.demand[i];
    }
    if (appetite < rate)
        appetite = rate;
    if (*action == VS_CONV_THROTTLE && vs_conv_throttle_too_deep(&c->policy, budget, appetite)) {
        /* --converge auto: stalling the guest that much costs more than post-copy. */
        vs_info("the throttle would take away %.0f%% of the guest's dirtying (more than "
                "%.0f%%): switching to post-copy", (1 - budget / appetite) * 100,
                VS_CONV_AUTO_MAX_THROTTLE * 100);
        *action = VS_CONV_POSTCOPY;
    }
    struct vs_conv_plan plan;
    predict(m, pending, bw, appetite, &plan);

    pthread_mutex_lock(&m->lock);
    struct vs_converge_stats *cs = &m->stats.conv;
    cs->state = state_name(*action, &c->state);
    cs->expected_total_ms = plan.outcome == VS_CONV_CONVERGES ? plan.total_ms : 0;
    cs->expected_passes = plan.outcome == VS_CONV_CONVERGES ? plan.precopy_passes : 0;
    if (*action == VS_CONV_SWITCHOVER) {
        cs->expected_total_ms = (double)(vs_clock_ns() - m->stats.start_ns) / 1e6 +
                                pending / (bw > 0 ? bw : 1) * 1e3 + VS_CONV_SWITCHOVER_MS;
        cs->expected_passes = 0;
    }
    cs->steps_used = c->state.step;
    m->stats.downtime_limit_ms = (uint64_t)c->state.limit_ms;
    for (unsigned i = 0; vm->ring && i < n && i < VS_REPORT_MAX_VCPUS; i++)
        cs->vcpu_dirty_rate[i] = raw_pps[i];
    if (m->stats.nr_passes && m->stats.nr_passes <= VS_REPORT_MAX_PASSES) {
        struct vs_pass_stats *p = &m->stats.passes[m->stats.nr_passes - 1];
        p->limit_ms = c->state.limit_ms;
        p->throttle_pct = secs > 0 ? slept * 100 / (n * secs * 1e9) : 0;
        p->expected_total_ms = cs->expected_total_ms;
    }
    if (c->throttle.engaged && !cs->throttle_start_ns) {
        cs->throttle_mode = c->throttle.dirty_limit ? "dirty-limit" : "sleep";
        cs->throttle_start_ns = c->throttle.start_ns - m->stats.start_ns;
    }
    for (unsigned i = 0; i < n && i < VS_REPORT_MAX_VCPUS; i++)
        cs->vcpu_dirty_limit[i] = (double)atomic_load(&vm->vcpus[i].throttle.dirty_limit);
    pthread_mutex_unlock(&m->lock);

    vs_info("after pass %u: %.0f pages/s dirtied, link %.0f Mbit/s, %s; downtime limit %.0f ms; "
            "expected total %.0f ms", c->state.passes - 1, rate / 4096, bw * 8 / 1e6,
            state_name(*action, &c->state), limit, plan.outcome == VS_CONV_CONVERGES ?
            plan.total_ms : 0.0);
    return rc;
}

int vs_converge_give_up(struct vs_migration *m)
{
    struct vs_convergence *c = &m->conv;
    struct vs_migration_stats s;
    vs_migration_stats(m, &s, NULL);
    double bw = m->bandwidth > 0 ? m->bandwidth : 1;
    const struct vs_pass_stats *last = s.nr_passes && s.nr_passes <= VS_REPORT_MAX_PASSES ?
                                       &s.passes[s.nr_passes - 1] : NULL;
    double q = (double)queued(m);
    return vs_fail(ETIMEDOUT, "not converging: after %u pre-copy passes %.1f MiB are still "
                   "dirty (and %.1f MiB queued to send), %.0f ms of transfer at the link's "
                   "%.0f MiB/s, above the downtime limit of %.0f ms (the last pass sent %.1f MiB "
                   "in %.0f ms and the guest dirtied %.1f MiB meanwhile); the VM keeps running "
                   "here. Use --converge throttle, a higher --downtime-limit or a "
                   "--downtime-schedule, or --max-passes 0 to keep iterating", c->state.passes,
                   (double)s.remaining_bytes / 1048576.0, q / 1048576.0,
                   ((double)s.remaining_bytes + q) / bw * 1e3,
                   bw / 1048576.0, vs_conv_effective_limit_ms(&c->policy, &c->state),
                   last ? (double)last->dirty_pages * 4096 / 1048576.0 : 0.0,
                   last ? (double)last->duration_ns / 1e6 : 0.0,
                   last ? (double)last->dirtied_pages * 4096 / 1048576.0 : 0.0);
}

bool vs_converge_switchover_ok(struct vs_migration *m, uint64_t dirty_pages)
{
    struct vs_convergence *c = &m->conv;
    double bw = m->bandwidth;
    if (c->policy.max_downtime_ms <= 0 || bw <= 0)
        return true;
    double expected = ((double)dirty_pages * 4096 + (double)queued(m)) / bw * 1e3;
    if (expected <= c->policy.max_downtime_ms)
        return true;
    c->force_pass = true;
    pthread_mutex_lock(&m->lock);
    m->stats.conv.switchover_retries++;
    pthread_mutex_unlock(&m->lock);
    vs_warn("switchover called off: with the vCPUs stopped %llu pages are dirty, with what is "
            "still queued %.0f ms to send, more than --max-downtime %.0f ms; pre-copy goes on",
            (unsigned long long)dirty_pages, expected, c->policy.max_downtime_ms);
    return false;
}

void vs_converge_release(struct vs_migration *m)
{
    if (m->conv.started)
        vs_throttle_release(&m->conv.throttle);
}

void vs_converge_finish(struct vs_migration *m)
{
    struct vs_convergence *c = &m->conv;
    if (!c->started)
        return;
    vs_throttle_release(&c->throttle);
    vs_throttle_stop(&c->throttle);
    pthread_mutex_lock(&m->lock);
    vs_converge_snapshot(m, &m->stats);
    pthread_mutex_unlock(&m->lock);
}

void vs_converge_free(struct vs_migration *m)
{
    if (m->conv.started)
        vs_throttle_free(&m->conv.throttle);
    m->conv.started = false;
}

void vs_converge_snapshot(struct vs_migration *m, struct vs_migration_stats *out)
{
    struct vs_convergence *c = &m->conv;
    struct vs_converge_stats *cs = &out->conv;
    if (!c->started)
        return;
    struct vs_throttle *t = &c->throttle;
    unsigned n = atomic_load(&t->guest.count), ns = atomic_load(&t->slept.count);
    cs->nr_samples = n < ns ? n : ns;
    cs->guest_pages = t->guest.bytes;
    cs->slept_ns = t->slept.bytes;
    cs->throttle_pct = t->released ? 0 : vs_throttle_percent_now(t);
    cs->throttle_max_pct = t->max_percent;
    cs->guest_baseline_pps = vs_throttle_guest_baseline(t);
    /* Lost progress counts until the switchover stopped the vCPUs (the downtime is
     * reported on its own), or until now. */
    unsigned until = out->switchover_at_ns ?
                     (unsigned)(out->switchover_at_ns / (VS_THROTTLE_SAMPLE_MS * 1000000ULL)) : n;
    cs->guest_stall_ms = vs_throttle_guest_stall_ms(t, until);
}
