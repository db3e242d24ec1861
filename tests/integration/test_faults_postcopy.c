/* Fault suite, the commit window of a post-copy migration (docs/state-machine.md,
 * "Post-copy and the commit window"): until the destination's CLAIM reaches the source,
 * the source holds every page and the destination's partial copy never ran, so a lost
 * stream 0 there makes the source take the VM back: it resumes once the destination has
 * discarded its copy (and exited) or is gone. Never both, and then always the source.
 * Once the CLAIM has arrived the VM is granted: a lost stream 0 pauses both sides, and the
 * source resumes post-copy by itself as soon as the destination answers again, so that the
 * destination runs the VM (test_migrate_postcopy covers an operator's resume-migration). */
#include "fault_trial.h"
#include "harness.h"

#define TAKEN_BACK "post-copy: stream 0 lost before the destination claimed the VM"
#define SRC(f, e) { .src_fault = (f), .expect = (e), .postcopy = true, .expect_log = TAKEN_BACK }
#define DST(f, e) { .dst_fault = (f), .expect = (e), .postcopy = true, .expect_log = TAKEN_BACK }
#define RESUMED "post-copy resumed with"
#define GRANTED(f, p) { .dst_fault = (f), .expect = EXPECT_DEST, .postcopy = true, \
                        .expect_log = RESUMED, .plain = (p) }

static const struct fault_trial cases[] = {
    SRC("src.verdict:0:cut", EXPECT_SOURCE),    /* COMMIT never leaves */
    SRC("src.commit:0:cut", EXPECT_SOURCE),     /* committed, COMMIT cannot be sent */
    DST("dst.commit:0:cut", EXPECT_SOURCE),     /* COMMIT arrived, CLAIM never leaves */
    DST("dst.commit:0:kill", EXPECT_SOURCE),    /* the destination dies before claiming */
    /* The destination is slower than the source's timeout after its VERIFY_REPLY: the
     * source gives up on stream 0 and takes the VM back; the destination, which then
     * claims on a stream 0 the source no longer reads, must learn that it is lost and
     * discard its copy (it once waited for GRANT for good, and the source in resolving
     * with it: random fault campaign, seed 200049). */
    DST("dst.verified:0:stall=4500", EXPECT_SOURCE),
    /* The destination stalls right after its CLAIM, for longer than two of the source's
     * timeouts: the source granted the VM, loses stream 0 waiting for RESUMED and pauses
     * post-copy; the destination wakes, starts the VM on the GRANT waiting in its socket,
     * finds stream 0 gone and pauses too. The source must resume post-copy without an
     * operator, and an attempt that timed out while the destination slept must not stay
     * open: the destination, taking its queued connections in order, once spent each
     * handshake on the attempt the source had just given up, and both stayed paused for
     * good (random fault campaign, seed 500797). Over TLS and plain. */
    GRANTED("dst.claimed:0:stall=7256", false),
    GRANTED("dst.claimed:0:stall=7256", true),
    /* The same, and while the destination stalls the kernel assembles 2 MiB pages over
     * its memory (khugepaged does by itself, some 10 s apart): a hole that waits for a
     * post-copy page must stay a hole, or the VM reads zeros for its data (CI, stop 22:
     * UFFDIO_COPY found the page present, and post-copy paused for good). */
    { .dst_fault = "dst.claimed:0:stall=3000", .expect = EXPECT_DEST, .postcopy = true,
      .collapse = true },
    /* The same after the GRANT arrived: the destination runs, its RESUMED is late. */
    GRANTED("dst.granted:0:stall=7256", false),
};

int main(void)
{
    return run_fault_trials("faults_postcopy", cases, sizeof(cases) / sizeof(cases[0]));
}
