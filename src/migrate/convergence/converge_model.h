/* The convergence model of pre-copy, in pure logic (no I/O, no clocks), shared by the
 * migration's pass loop (src/migrate/convergence/converge.c) and the planner (vmshift plan), so that
 * what `plan` predicts is what the migration does.
 *
 * Model: pass i sends D_i bytes at the link's bandwidth B, taking t_i = D_i / B; meanwhile
 * the guest dirties min(W, R * t_i) bytes (R its dirty rate, W its working set: a pass can
 * never find more dirty than the memory the guest writes), which the next pass sends.
 * Pass 0 sends all of RAM, and re-arms dirty tracking for each piece of RAM just before
 * sending it: what the guest writes ahead of the sender goes out in pass 0 itself, so on
 * average only half of its writes are left for pass 1: min(W, R * t_0 / 2). The
 * switchover comes when what is pending can be sent within the downtime limit; that last
 * transfer plus a fixed switchover cost is the downtime.
 *
 * Policy (vs_conv_after_pass): a pass "shrinks" when it leaves less than
 * VS_CONV_SHRINK of what it sent. Pre-copy has stalled after two passes in a row that did
 * not shrink, or after one when the model says plain pre-copy cannot reach the limit from
 * here. On a stall the downtime schedule is raised one step; once it is used up, the
 * configured strategy takes over (throttle or post-copy); without one the passes go on
 * until max_passes, and the migration then fails as "not converging". The limit never
 * goes above max_downtime. */
#ifndef VS_CONVERGE_MODEL_H
#define VS_CONVERGE_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include "migrate/precopy/source.h"

#define VS_CONV_SHRINK        0.9   /* a pass shrinks when it leaves < 90% of what it sent */
#define VS_CONV_STALL_PASSES  2     /* passes in a row that do not shrink: stalled */
#define VS_CONV_MAX_STEPS     VS_DOWNTIME_MAX_STEPS
#define VS_CONV_MAX_ROWS      64    /* passes a plan lists at most */
#define VS_CONV_THROTTLE_PASSES 3   /* throttle so that the limit is reached in this many */
#define VS_CONV_MAX_THROTTLE  0.99  /* the guest keeps at least 1% of its dirty rate */
/* --converge auto switches to post-copy (and `plan` recommends post-copy) rather than take
 * away more than this share of the guest's dirtying. */
#define VS_CONV_AUTO_MAX_THROTTLE 0.8

/* What the guest and the link do (all rates in bytes/s). */
struct vs_conv_link {
    double bandwidth;         /* what the link carries */
    double dirty_rate;        /* distinct bytes the guest dirties per second, unthrottled */
    double working_set;       /* the most one pass can find dirty; 0 = unbounded */
};

/* What the user allows. */
struct vs_conv_policy {
    double downtime_limit_ms;
    double schedule_ms[VS_CONV_MAX_STEPS];   /* raised to these, in order, on stalls */
    unsigned nr_steps;
    double max_downtime_ms;   /* never switch over above this; 0 = no hard limit */
    uint32_t max_passes;      /* pre-copy passes at most; 0 = until cancelled */
    enum vs_converge converge;
};

/* The pass loop's memory, updated by vs_conv_after_pass. Zero it before pass 0. */
struct vs_conv_state {
    uint32_t passes;          /* pre-copy passes done */
    double limit_ms;          /* the downtime limit now (0: not yet initialised) */
    unsigned step;            /* schedule steps used */
    unsigned not_shrinking;   /* passes in a row that did not shrink */
    bool throttling;          /* the strategy "throttle" has been engaged */
    unsigned throttled_passes;  /* passes done since then */
};

enum vs_conv_action {
    VS_CONV_NEXT_PASS,        /* go on */
    VS_CONV_SWITCHOVER,       /* what is pending fits the limit: stop and copy */
    VS_CONV_THROTTLE,         /* go on, with the throttle set for this pass's numbers */
    VS_CONV_POSTCOPY,         /* switch to post-copy now */
    VS_CONV_NOT_CONVERGING,   /* max_passes reached without fitting: give up */
};

const char *vs_conv_action_name(enum vs_conv_action a);

/* "500,1000,2000" (milliseconds) into out[VS_CONV_MAX_STEPS]; *n steps. Order and bounds
 * are checked by vs_conv_check_policy. */
int vs_conv_parse_schedule(const char *text, double *out, unsigned *n);

/* Check a policy a user gave; errors name the value and the fix. */
int vs_conv_check_policy(const struct vs_conv_policy *p);

/* The limit a switchover must meet now: the current limit, capped by max_downtime. */
double vs_conv_effective_limit_ms(const struct vs_conv_policy *p, const struct vs_conv_state *s);

/* After a pre-copy pass that sent sent_bytes: pending_bytes are dirty now, the link did
 * bandwidth bytes/s; link->dirty_rate is the guest's rate as measured in that pass.
 * *raised is set when the schedule raised the limit. */
enum vs_conv_action vs_conv_after_pass(const struct vs_conv_policy *p, struct vs_conv_state *s,
                                       double sent_bytes, double pending_bytes,
                                       const struct vs_conv_link *link, bool *raised);

/* Whether plain pre-copy, starting with pending_bytes to send, ever gets within limit_ms
 * (in at most VS_CONV_MAX_ROWS passes). */
bool vs_conv_reaches(const struct vs_conv_link *link, double pending_bytes, double limit_ms);

/* The dirty rate (bytes/s) the guest may keep so that, from pending_bytes, each pass
 * shrinks enough to reach limit_ms within passes_left passes (at least 1): the
 * throttle aims to converge VS_CONV_THROTTLE_PASSES passes after it was engaged. Each
 * throttled pass shrinks by a factor from 0.05 to 0.75. */
double vs_conv_throttle_budget(double pending_bytes, double bandwidth, double limit_ms,
                               unsigned passes_left);
/* Under --converge auto: would a throttle that lets the guest dirty `budget` of its
 * `appetite` (bytes/s) be too deep, so that post-copy should take over? */
bool vs_conv_throttle_too_deep(const struct vs_conv_policy *p, double budget, double appetite);
/* passes_left for the state s is in. */
unsigned vs_conv_throttle_passes_left(const struct vs_conv_state *s);

/* One cap for all vCPUs so that the sum of min(demand_i, cap) is budget (max-min
 * fairness: vCPUs that dirty less than the cap are not slowed). Returns 0 when the
 * demands fit the budget anyway (no cap needed). */
double vs_conv_fair_cap(const double *demand, unsigned n, double budget);

/* ---- Simulation: the planner's table, and the migration's expected times ---- */

struct vs_conv_row {
    uint32_t pass;
    double to_send;           /* bytes */
    double seconds;
    double dirtied;           /* bytes dirtied meanwhile (the next pass's work) */
    double dirty_rate;        /* the guest's rate in this pass (throttled or not) */
    double limit_ms;          /* the downtime limit in force after the pass */
    bool final;               /* the stop-and-copy pass (vCPUs stopped) */
};

enum vs_conv_outcome { VS_CONV_CONVERGES, VS_CONV_GIVES_UP, VS_CONV_TO_POSTCOPY, VS_CONV_RUNS_ON };

struct vs_conv_plan {
    struct vs_conv_row rows[VS_CONV_MAX_ROWS];
    unsigned nr_rows;
    enum vs_conv_outcome outcome;
    uint32_t precopy_passes;
    double total_ms;          /* setup + passes + downtime */
    double downtime_ms;       /* last transfer + switchover cost */
    double transferred;       /* bytes */
    double throttle;          /* the deepest throttle: fraction of the dirty rate taken away */
    double throttled_ms;      /* time spent throttled */
    double guest_stall_ms;    /* guest progress lost to the throttle, as time */
    double floor_ms;          /* the shortest transfer plain pre-copy ever reaches */
};

struct vs_conv_sim {
    double first_pass_bytes;  /* what pass 0 sends (RAM) */
    double setup_ms;          /* fixed: connecting, handshake, dirty-log start */
    double switchover_ms;     /* fixed part of the downtime: state, digests, resume */
    struct vs_conv_link link;
    struct vs_conv_policy policy;
    struct vs_conv_state start;   /* zero: from the start; else resume from there */
};

/* Run the model with the pass loop's own policy. */
void vs_conv_simulate(const struct vs_conv_sim *in, struct vs_conv_plan *out);

/* ---- Guest progress ---- */

/* Guest progress lost, as milliseconds of full-speed work: for a cumulative work counter
 * sampled every interval_ms, the sum over the intervals i in [from, to) (between
 * counter[i] and counter[i + 1]; counter has to + 1 entries) of
 * max(0, 1 - rate / baseline) * interval_ms. */
double vs_conv_lost_ms(const uint64_t *counter, unsigned from, unsigned to,
                       double interval_ms, double baseline_per_ms);

/* ---- The hook of the post-copy strategy ---- */

/* The pass loop asks this after every pass: true when the migration should switch to
 * post-copy now (the strategy is post-copy and pre-copy has stalled). */
bool vs_converge_should_switch_postcopy(enum vs_conv_action action);

#endif
