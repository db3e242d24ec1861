/* One trial of the random fault campaign: set up a source VM and a destination (directly,
 * or through two vmshiftd hosts), migrate it through a TCP proxy with the plan's
 * settings, strike with the plan's fault, let both sides settle (acting as the operator
 * only where the design asks for one: start-postcopy when planned; a paused post-copy
 * must resume by itself), and judge the outcome. Harness failures end the calling cmocka test, so the campaign runs each trial
 * in a child process of its own. */
#ifndef VS_RANDOM_TRIAL_H
#define VS_RANDOM_TRIAL_H

#include "random_plan.h"

enum rt_outcome {
    RT_SURVIVED,       /* exactly one VM runs, and every check passed */
    RT_OWNER_KILLED,   /* no VM runs, and the fault killed the process that held the only
                          copy (or, in post-copy, the source that held its missing pages) */
    RT_LOST,           /* no VM runs, and no fault took the only copy with it */
    RT_DUPLICATED,     /* both ran (at the end, or the destination ran before the source did) */
    RT_BAD,            /* one VM runs, but a check failed: digest, guest errors, a
                          sanitizer report, a crash, or the trial did not settle */
    RT_ERROR,          /* the trial could not be run (set-up failed, runner timed out) */
    RT_COUNT
};

struct rt_result {
    enum rt_outcome outcome;
    char runs[16];          /* "source", "destination", "none", "both" */
    char src_end[24];       /* the source's last migration status, or "gone" */
    char fired[64];         /* when the fault struck ("active+12ms", "late:completed", ...) */
    char detail[768];       /* why, for anything but a plain survival */
};

const char *rt_outcome_name(enum rt_outcome o);

/* Run the trial (inside a cmocka test). Every process it starts is appended to pid_file
 * (one pid a line) so that the caller can kill leftovers; the processes' stderr logs are
 * copied into log_dir. */
void random_trial_run(const struct rplan *p, const char *pid_file, const char *log_dir,
                      struct rt_result *r);

#endif
