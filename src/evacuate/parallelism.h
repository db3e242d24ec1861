/* How many migrations `vmshift evacuate --parallel auto` runs at a time.
 *
 * A hill climber on the measured aggregate throughput (bytes per second sent by all
 * running migrations together), checked against each migration's own progress:
 *   - It starts at PAR_START_DEGREE. After each change it lets the new migrations get
 *     going (PAR_SETTLE_S), then measures for PAR_WINDOW_S, counting only the time in
 *     which exactly `degree` migrations ran (a free slot about to be filled, or more
 *     migrations still running than the degree after a step down, is not the degree
 *     being measured).
 *   - Climbing: while a window's throughput is at least PAR_GAIN times the best so far,
 *     the degree doubles (up to --max-parallel and the VMs left). When more migrations do
 *     not bring that much more, it goes back to the best degree and holds there: more
 *     would only split the same bandwidth.
 *   - Fighting: when in a window a migration does not converge (its guest dirties memory
 *     at least PAR_STRUGGLE of the rate its share of the link sends it), the degree halves,
 *     so that each migration gets a larger share; it will not climb above the degree that
 *     fought until conditions change.
 *   - Holding: every PAR_PROBE_WINDOWS quiet windows it tries one more, in case the link or
 *     the VM mix changed.
 * Decisions only matter while VMs wait to start; running migrations are never stopped.
 * Pure logic (no clocks, no I/O): the caller feeds one sample per poll. */
#ifndef VS_PARALLELISM_H
#define VS_PARALLELISM_H

#include <stdbool.h>

#define PAR_START_DEGREE 2
#define PAR_SETTLE_S 0.3
#define PAR_WINDOW_S 0.7
#define PAR_GAIN 1.10
#define PAR_STRUGGLE 0.8
#define PAR_PROBE_WINDOWS 4

struct par_sample {
    double dt_s;            /* length of the interval */
    double bytes;           /* bytes all migrations sent in it */
    unsigned active;        /* migrations running in it */
    unsigned struggling;    /* of those, how many do not converge */
    unsigned waiting;       /* VMs not started yet */
};

enum par_phase { PAR_CLIMB, PAR_HOLD };

struct par_controller {
    unsigned degree;        /* migrations to run at a time now */
    unsigned max_degree;
    unsigned ceiling;       /* do not climb above this (learned) */
    enum par_phase phase;
    double settle_left_s;
    double win_s, win_bytes;
    unsigned win_struggling;
    double best_rate;       /* bytes/s of the best window while climbing */
    unsigned best_degree;
    double last_rate;       /* bytes/s of the last complete window */
    unsigned quiet_windows; /* windows held without a fight */
    unsigned changes;
    char reason[160];       /* why the degree last changed */
};

/* Struggling: a migration's guest dirtied `dirty_bytes_per_s` during its last pass, which
 * sent `send_bytes_per_s`; after its first pass. */
bool par_is_struggling(unsigned passes, double dirty_bytes_per_s, double send_bytes_per_s);

void par_init(struct par_controller *c, unsigned max_degree);
/* Account one interval; returns the degree to run from now on. c->reason says why when
 * it changed. */
unsigned par_update(struct par_controller *c, const struct par_sample *s);

#endif
