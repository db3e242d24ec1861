#include "evacuate/parallelism.h"

#include <stdio.h>
#include <string.h>

bool par_is_struggling(unsigned passes, double dirty_bytes_per_s, double send_bytes_per_s)
{
    return passes >= 2 && send_bytes_per_s > 0 &&
           dirty_bytes_per_s >= PAR_STRUGGLE * send_bytes_per_s;
}

void par_init(struct par_controller *c, unsigned max_degree)
{
    memset(c, 0, sizeof(*c));
    c->max_degree = max_degree ? max_degree : 1;
    c->ceiling = c->max_degree;
    c->degree = PAR_START_DEGREE < c->max_degree ? PAR_START_DEGREE : c->max_degree;
    c->best_degree = c->degree;
    c->phase = PAR_CLIMB;
    c->settle_left_s = PAR_SETTLE_S;
}

static unsigned min3(unsigned a, unsigned b, unsigned c)
{
    unsigned m = a < b ? a : b;
    return m < c ? m : c;
}

static void change(struct par_controller *c, unsigned degree)
{
    if (degree < 1)
        degree = 1;
    if (degree == c->degree)
        return;
    c->degree = degree;
    c->settle_left_s = PAR_SETTLE_S;
    c->changes++;
}

static void decide(struct par_controller *c, double rate, unsigned struggling, unsigned left)
{
    unsigned d = c->degree;
    double mb = rate / 1e6;
    c->last_rate = rate;
    if (struggling && d > 1) {
        c->ceiling = d - 1;
        c->phase = PAR_HOLD;
        c->quiet_windows = 0;
        c->best_rate = rate;
        c->best_degree = d / 2;
        snprintf(c->reason, sizeof(c->reason), "%u of %u migrations did not converge at %.0f "
                 "MB/s: %u -> %u", struggling, d, mb, d, d / 2);
        change(c, d / 2);
        return;
    }
    if (c->phase == PAR_CLIMB) {
        if (c->best_rate == 0 || rate >= c->best_rate * PAR_GAIN || c->best_degree == d) {
            double before = c->best_rate;
            c->best_rate = rate;
            c->best_degree = d;
            unsigned up = min3(d * 2, c->ceiling, left);
            if (up > d) {
                snprintf(c->reason, sizeof(c->reason), "%.0f MB/s at %u (was %.0f): %u -> %u",
                         mb, d, before / 1e6, d, up);
                change(c, up);
            } else {
                c->phase = PAR_HOLD;
                c->quiet_windows = 0;
            }
            return;
        }
        c->ceiling = d - 1;
        c->phase = PAR_HOLD;
        c->quiet_windows = 0;
        snprintf(c->reason, sizeof(c->reason), "%.0f MB/s at %u is not %.0f%% more than %.0f "
                 "at %u: %u -> %u", mb, d, (PAR_GAIN - 1) * 100, c->best_rate / 1e6,
                 c->best_degree, d, c->best_degree);
        change(c, c->best_degree);
        return;
    }
    /* Holding. */
    c->best_rate = rate;
    c->best_degree = d;
    if (++c->quiet_windows < PAR_PROBE_WINDOWS)
        return;
    c->quiet_windows = 0;
    if (c->ceiling < c->max_degree)
        c->ceiling++;       /* conditions may have changed since it was learned */
    unsigned up = min3(d + 1, c->ceiling, left);
    if (up > d) {
        c->phase = PAR_CLIMB;
        snprintf(c->reason, sizeof(c->reason), "probing: %.0f MB/s at %u: %u -> %u", mb, d, d,
                 up);
        change(c, up);
    }
}

unsigned par_update(struct par_controller *c, const struct par_sample *s)
{
    if (s->waiting == 0 || s->dt_s <= 0)
        return c->degree;       /* nothing left to start: the degree no longer matters */
    if (s->active != c->degree)
        return c->degree;       /* a slot being filled, or running down after a step down */
    if (c->settle_left_s > 0) {
        c->settle_left_s -= s->dt_s;
        return c->degree;
    }
    c->win_s += s->dt_s;
    c->win_bytes += s->bytes;
    if (s->struggling > c->win_struggling)
        c->win_struggling = s->struggling;
    if (c->win_s < PAR_WINDOW_S)
        return c->degree;
    double rate = c->win_bytes / c->win_s;
    unsigned struggling = c->win_struggling;
    c->win_s = c->win_bytes = 0;
    c->win_struggling = 0;
    decide(c, rate, struggling, s->active + s->waiting);
    return c->degree;
}
