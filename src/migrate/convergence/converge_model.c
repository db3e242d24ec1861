#include "migrate/convergence/converge_model.h"
#include "common/error.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *vs_conv_action_name(enum vs_conv_action a)
{
    switch (a) {
    case VS_CONV_NEXT_PASS: return "next-pass";
    case VS_CONV_SWITCHOVER: return "switchover";
    case VS_CONV_THROTTLE: return "throttle";
    case VS_CONV_POSTCOPY: return "postcopy";
    case VS_CONV_NOT_CONVERGING: return "not-converging";
    }
    return "?";
}

int vs_conv_parse_schedule(const char *text, double *out, unsigned *n)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        if (!isdigit((unsigned char)*p))
            return vs_fail(EINVAL, "downtime schedule '%s' is not a list of milliseconds; give "
                           "e.g. 500,1000,2000", text);
        double v = strtod(p, &end);
        if (v <= 0 || (*end && *end != ','))
            return vs_fail(EINVAL, "downtime schedule '%s' is not a list of milliseconds above "
                           "0; give e.g. 500,1000,2000", text);
        if (*n >= VS_CONV_MAX_STEPS)
            return vs_fail(E2BIG, "downtime schedule '%s' has more than %d steps", text,
                           VS_CONV_MAX_STEPS);
        out[(*n)++] = v;
        p = *end ? end + 1 : end;
    }
    if (!*n)
        return vs_fail(EINVAL, "the downtime schedule is empty; give e.g. 500,1000,2000");
    return 0;
}

int vs_conv_check_policy(const struct vs_conv_policy *p)
{
    if (p->downtime_limit_ms < 0)
        return vs_fail(EINVAL, "the downtime limit must not be negative");
    if (p->max_downtime_ms > 0 && p->downtime_limit_ms > p->max_downtime_ms)
        return vs_fail(EINVAL, "--downtime-limit %.0f ms is above --max-downtime %.0f ms; lower "
                       "the limit or raise the maximum", p->downtime_limit_ms, p->max_downtime_ms);
    if (p->nr_steps > VS_CONV_MAX_STEPS)
        return vs_fail(EINVAL, "the downtime schedule has %u steps; at most %d", p->nr_steps,
                       VS_CONV_MAX_STEPS);
    double prev = p->downtime_limit_ms;
    for (unsigned i = 0; i < p->nr_steps; i++) {
        double v = p->schedule_ms[i];
        if (v <= prev)
            return vs_fail(EINVAL, "downtime schedule step %u (%.0f ms) is not above the limit "
                           "before it (%.0f ms); give increasing steps above --downtime-limit, "
                           "e.g. 500,1000,2000", i + 1, v, prev);
        if (p->max_downtime_ms > 0 && v > p->max_downtime_ms)
            return vs_fail(EINVAL, "downtime schedule step %u (%.0f ms) is above --max-downtime "
                           "%.0f ms; drop the step or raise the maximum", i + 1, v,
                           p->max_downtime_ms);
        prev = v;
    }
    if (p->max_passes > 1000)
        return vs_fail(EINVAL, "max_passes %u is out of range; give 0 (until cancelled) to 1000",
                       p->max_passes);
    return 0;
}

double vs_conv_effective_limit_ms(const struct vs_conv_policy *p, const struct vs_conv_state *s)
{
    double limit = s->limit_ms > 0 ? s->limit_ms : p->downtime_limit_ms;
    return p->max_downtime_ms > 0 && limit > p->max_downtime_ms ? p->max_downtime_ms : limit;
}

static bool fits(double bytes, double bandwidth, double limit_ms)
{
    if (bytes <= 0)
        return true;
    return bandwidth > 0 && bytes / bandwidth * 1e3 <= limit_ms;
}

/* Bytes a pass of `seconds` leaves dirty for the next (first: pass 0, which absorbs the
 * writes that come before the sender reaches them: half, on average). */
static double dirtied_in(const struct vs_conv_link *l, double rate, double seconds, bool first)
{
    double d = rate * seconds * (first ? 0.5 : 1.0);
    return l->working_set > 0 && d > l->working_set ? l->working_set : d;
}

bool vs_conv_reaches(const struct vs_conv_link *link, double pending, double limit_ms)
{
    if (link->bandwidth <= 0)
        return pending <= 0;
    for (unsigned i = 0; i < VS_CONV_MAX_ROWS; i++) {
        if (fits(pending, link->bandwidth, limit_ms))
            return true;
        double next = dirtied_in(link, link->dirty_rate, pending / link->bandwidth, false);
        if (next >= pending)
            return false;   /* never shrinks again: it only grows towards the working set */
        pending = next;
    }
    return false;
}

enum vs_conv_action vs_conv_after_pass(const struct vs_conv_policy *p, struct vs_conv_state *s,
                                       double sent, double pending,
                                       const struct vs_conv_link *link, bool *raised)
{
    *raised = false;
    if (s->limit_ms <= 0)
        s->limit_ms = p->downtime_limit_ms;
    s->passes++;
    if (s->throttling)
        s->throttled_passes++;
    s->not_shrinking = pending < VS_CONV_SHRINK * sent ? 0 : s->not_shrinking + 1;
    double limit = vs_conv_effective_limit_ms(p, s);
    if (fits(pending, link->bandwidth, limit))
        return VS_CONV_SWITCHOVER;
    bool stalled = s->not_shrinking >= VS_CONV_STALL_PASSES ||
                   (s->not_shrinking >= 1 && !vs_conv_reaches(link, pending, limit));
    if (stalled && s->step < p->nr_steps) {
        s->limit_ms = p->schedule_ms[s->step++];
        s->not_shrinking = 0;
        *raised = true;
        if (fits(pending, link->bandwidth, vs_conv_effective_limit_ms(p, s)))
            return VS_CONV_SWITCHOVER;
    } else if (stalled && (p->converge == VS_CONVERGE_THROTTLE || p->converge == VS_CONVERGE_AUTO)
               && !s->throttling) {
        s->throttling = true;
        s->throttled_passes = 0;
    } else if (stalled && p->converge == VS_CONVERGE_POSTCOPY) {
        return VS_CONV_POSTCOPY;
    }
    if (p->max_passes && s->passes >= p->max_passes)   /* post-copy: the last resort */
        return p->converge == VS_CONVERGE_POSTCOPY ? VS_CONV_POSTCOPY : VS_CONV_NOT_CONVERGING;
    return s->throttling ? VS_CONV_THROTTLE : VS_CONV_NEXT_PASS;
}

unsigned vs_conv_throttle_passes_left(const struct vs_conv_state *s)
{
    return s->throttled_passes + 1 < VS_CONV_THROTTLE_PASSES ?
           VS_CONV_THROTTLE_PASSES - s->throttled_passes : 1;
}

double vs_conv_throttle_budget(double pending, double bandwidth, double limit_ms,
                               unsigned passes_left)
{
    double goal = 0.9 * bandwidth * limit_ms / 1e3;   /* aim a little below the limit */
    double q = pending > goal && goal > 0 ?
               pow(goal / pending, 1.0 / (passes_left ? passes_left : 1)) : 0.75;
    q = q < 0.05 ? 0.05 : q > 0.75 ? 0.75 : q;
    return q * bandwidth;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double vs_conv_fair_cap(const double *demand, unsigned n, double budget)
{
    if (n == 0)
        return 0;
    double *d = malloc(n * sizeof(*d));
    if (!d)
        return budget / n;   /* an equal split is still a safe cap */
    memcpy(d, demand, n * sizeof(*d));
    qsort(d, n, sizeof(*d), cmp_double);
    double left = budget > 0 ? budget : 0, cap = 0;
    for (unsigned k = 0; k < n; k++) {
        double share = left / (n - k);
        if (d[k] > share) {
            cap = share;
            break;
        }
        left -= d[k];
    }
    free(d);
    if (cap == 0 && budget <= 0)
        cap = 1;             /* nothing allowed: the smallest cap, never "no cap" */
    return cap;
}

static void add_row(struct vs_conv_plan *o, uint32_t pass, double to_send, double seconds,
                    double dirtied, double rate, double limit_ms, bool final)
{
    if (o->nr_rows >= VS_CONV_MAX_ROWS)
        return;
    o->rows[o->nr_rows++] = (struct vs_conv_row){
        .pass = pass, .to_send = to_send, .seconds = seconds, .dirtied = dirtied,
        .dirty_rate = rate, .limit_ms = limit_ms, .final = final,
    };
}

void vs_conv_simulate(const struct vs_conv_sim *in, struct vs_conv_plan *o)
{
    memset(o, 0, sizeof(*o));
    const struct vs_conv_link *l = &in->link;
    double bw = l->bandwidth > 0 ? l->bandwidth : 1, rate = l->dirty_rate;
    struct vs_conv_state st = in->start;
    if (st.limit_ms <= 0)
        st.limit_ms = in->policy.downtime_limit_ms;
    double pending = in->first_pass_bytes, budget = rate;
    if (st.throttling)
        budget = vs_conv_throttle_budget(pending, bw, vs_conv_effective_limit_ms(&in->policy, &st),
                                         vs_conv_throttle_passes_left(&st));
    o->total_ms = in->setup_ms;
    o->floor_ms = pending / bw * 1e3;
    o->outcome = VS_CONV_RUNS_ON;
    while (o->nr_rows < VS_CONV_MAX_ROWS - 1) {
        double r = st.throttling && budget < rate ? budget : rate;
        double secs = pending / bw, dirtied = dirtied_in(l, r, secs, st.passes == 0);
        uint32_t pass = st.passes;
        o->total_ms += secs * 1e3;
        o->transferred += pending;
        if (st.throttling && rate > 0) {
            o->throttled_ms += secs * 1e3;
            o->guest_stall_ms += (1 - r / rate) * secs * 1e3;
        }
        if (!st.throttling && dirtied / bw * 1e3 < o->floor_ms)
            o->floor_ms = dirtied / bw * 1e3;
        struct vs_conv_link now = *l;
        now.dirty_rate = r;
        bool raised;
        enum vs_conv_action a = vs_conv_after_pass(&in->policy, &st, pending, dirtied, &now, &raised);
        add_row(o, pass, pending, secs, dirtied, r, st.limit_ms, false);
        o->precopy_passes = st.passes - in->start.passes;
        if (a == VS_CONV_SWITCHOVER) {
            double last = dirtied / bw;
            add_row(o, st.passes, dirtied, last, 0, 0, st.limit_ms, true);
            o->downtime_ms = last * 1e3 + in->switchover_ms;
            o->total_ms += o->downtime_ms;
            o->transferred += dirtied;
            o->outcome = VS_CONV_CONVERGES;
            return;
        }
        if (a == VS_CONV_POSTCOPY) {
            o->outcome = VS_CONV_TO_POSTCOPY;
            return;
        }
        if (a == VS_CONV_NOT_CONVERGING) {
            o->outcome = VS_CONV_GIVES_UP;
            return;
        }
        if (a == VS_CONV_THROTTLE) {
            budget = vs_conv_throttle_budget(dirtied, bw, vs_conv_effective_limit_ms(&in->policy, &st),
                                             vs_conv_throttle_passes_left(&st));
            if (vs_conv_throttle_too_deep(&in->policy, budget, rate)) {
                o->outcome = VS_CONV_TO_POSTCOPY;
                return;
            }
            if (rate > 0 && budget < rate && 1 - budget / rate > o->throttle)
                o->throttle = 1 - budget / rate;
        }
        pending = dirtied;
    }
}

double vs_conv_lost_ms(const uint64_t *counter, unsigned from, unsigned to, double interval_ms,
                       double baseline_per_ms)
{
    if (baseline_per_ms <= 0)
        return 0;
    double lost = 0;
    for (unsigned i = from; i < to; i++) {
        double done = counter[i + 1] >= counter[i] ? (double)(counter[i + 1] - counter[i]) : 0;
        double frac = done / (baseline_per_ms * interval_ms);
        if (frac < 1)
            lost += (1 - frac) * interval_ms;
    }
    return lost;
}

bool vs_conv_throttle_too_deep(const struct vs_conv_policy *p, double budget, double appetite)
{
    return p->converge == VS_CONVERGE_AUTO && appetite > 0 &&
           1 - budget / appetite > VS_CONV_AUTO_MAX_THROTTLE;
}

bool vs_converge_should_switch_postcopy(enum vs_conv_action action)
{
    return action == VS_CONV_POSTCOPY;
}
