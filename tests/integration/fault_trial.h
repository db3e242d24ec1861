/* One trial of the fault suite: migrate an 8 MiB VM running the verify workload (over
 * TLS with the harness's key, unless the trial is a plain one) with a fault injected (a fault point in either process, VMSHIFT_FAULT, or a byte-level fault
 * on stream 0 through the test proxy), wait until both sides have settled, and check
 * what the migration promises: never two VMs; the expected one runs; its RAM digest is
 * the source's at the pause when it is the destination's copy; the guest's verify
 * workload finds no bad page. */
#ifndef VS_FAULT_TRIAL_H
#define VS_FAULT_TRIAL_H

#include <stdbool.h>
#include <stddef.h>
#include "proxy.h"

enum fault_expect {
    EXPECT_SOURCE,      /* the source runs the VM (the migration failed or rolled back) */
    EXPECT_DEST,        /* the destination runs it */
    EXPECT_ONE,         /* either one, but exactly one (timing decides which) */
    EXPECT_NONE,        /* the process that owned the VM was killed: it died with it, and
                           the other side runs no copy */
};

struct fault_trial {
    const char *src_fault, *dst_fault;   /* VMSHIFT_FAULT values, or NULL */
    struct proxy_fault link;             /* byte-level fault on stream 0 */
    enum fault_expect expect;
    bool plain;             /* both sides --insecure: the proxy's offsets are positions in
                               the plain record stream (otherwise TLS, as every migration
                               the harness starts) */
    const char *expect_log; /* text that the source's or the destination's log must hold */
    bool postcopy;          /* switch to post-copy at the first stall of pre-copy */
    bool collapse;          /* once the destination's fault fired (a stall), assemble 2 MiB
                               pages over its anonymous memory (thp_collapse.h), as
                               khugepaged may at any time */
    bool disk;              /* the VM runs the guest's disk workload on a shared disk (a
                               file both sides open, --disk FILE,shared): never may both
                               sides write it, the survivor's workload goes on with 0
                               errors, the other side's write count stays (fault_disk.c) */
};

void run_fault_trial(const struct fault_trial *t);

struct vm_proc;
struct json_object;
/* Whether the process still runs (reaps it if not). */
bool fault_proc_alive(struct vm_proc *p);
/* A control reply, or NULL when the process does not answer (gone or not ready). */
struct json_object *fault_ask(struct vm_proc *p, const char *cmd);
/* Whether the process logged "fault injected". */
bool fault_fired(struct vm_proc *p);
/* The guest's verify workload completes two more passes and has found no bad page. */
void assert_verify_clean(struct vm_proc *p, const char *who);

/* Run the cases as a cmocka group, one test per case, and print the summary. With
 * VMSHIFT_FAULT_SAMPLE=N only every Nth case runs (the ASan pass of scripts/test.sh: the
 * code paths, not every fault point again). */
int run_fault_trials(const char *group, const struct fault_trial *cases, size_t n);

/* What run_fault_trial saw, for the closing summary of each test program. */
void fault_trials_summary(void);

/* fault_disk.c: the shared disk of a trial with .disk. */
struct fault_disk {
    char dir[64], path[96], spec[112];
    struct disk_watch *watch;
    bool two_writers;
    char two_writers_why[160];
};
/* Make the disk (a sparse file in a directory of its own). */
void fault_disk_create(struct fault_disk *d);
/* From the migrate request on: the 2 ms watch of both processes' descriptors. */
void fault_disk_watch(struct fault_disk *d, struct vm_proc *src, struct vm_proc *dst);
/* At each look while the trial settles: the destination's and then the source's status. */
void fault_disk_look(struct fault_disk *d, struct vm_proc *src, struct vm_proc *dst);
/* After the trial, runs (src, dst, or NULL: neither) has the VM; the test fails if a
 * check fails. */
void fault_disk_check(struct fault_disk *d, struct vm_proc *src, struct vm_proc *dst,
                      struct vm_proc *runs, const char *what);
/* Remove the file and its directory. */
void fault_disk_remove(struct fault_disk *d);

#endif
