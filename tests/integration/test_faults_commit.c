/* Fault suite, the commit window: stream 0 cut, either process killed, or a peer
 * stalled, at every step from DIGEST to RESUMED (docs/state-machine.md, "The commit
 * window"). The outcome is settled automatically: exactly one VM runs, except where the
 * process that owned the VM at that moment is killed (it dies with it). */
#include "fault_trial.h"
#include "harness.h"


#define SRC(f, e) { .src_fault = (f), .expect = (e) }
#define DST(f, e) { .dst_fault = (f), .expect = (e) }

static const struct fault_trial cases[] = {
    /* The source killed: before DIGEST the destination has no verified copy (the VM
     * dies with its owner); from DIGEST on the destination verifies and, finding nothing
     * at the source's RESOLVE endpoint, runs its copy. */
    SRC("src.state:0:kill", EXPECT_NONE),
    SRC("src.digest:0:kill", EXPECT_DEST),
    SRC("src.verdict:0:kill", EXPECT_DEST),
    SRC("src.commit:0:kill", EXPECT_DEST),
    SRC("src.committed:0:kill", EXPECT_DEST),
    SRC("src.granted:0:kill", EXPECT_DEST),
    /* The destination killed: until it has claimed the VM the source resumes; once it
     * has sent its CLAIM the source grants it, and the VM is the destination's and dies
     * with it. */
    DST("dst.digest:0:kill", EXPECT_SOURCE),
    DST("dst.verified:0:kill", EXPECT_SOURCE),
    DST("dst.commit:0:kill", EXPECT_SOURCE),
    DST("dst.claimed:0:kill", EXPECT_NONE),
    DST("dst.granted:0:kill", EXPECT_NONE),
    DST("dst.resumed:0:kill", EXPECT_NONE),
    /* Stream 0 cut (both directions, by either side) at each step. */
    SRC("src.digest:0:cut", EXPECT_SOURCE),
    SRC("src.verdict:0:cut", EXPECT_DEST),
    SRC("src.commit:0:cut", EXPECT_DEST),
    SRC("src.committed:0:cut", EXPECT_DEST),
    SRC("src.granted:0:cut", EXPECT_DEST),
    DST("dst.digest:0:cut", EXPECT_SOURCE),
    DST("dst.verified:0:cut", EXPECT_ONE),
    DST("dst.commit:0:cut", EXPECT_DEST),
    DST("dst.claimed:0:cut", EXPECT_DEST),
    DST("dst.granted:0:cut", EXPECT_DEST),
    DST("dst.resumed:0:cut", EXPECT_DEST),
    /* A peer stalled for longer than the other's 3 s timeout. */
    SRC("src.verdict:0:stall=4500", EXPECT_ONE),
    SRC("src.committed:0:stall=4500", EXPECT_DEST),
    DST("dst.digest:0:stall=4500", EXPECT_SOURCE),
    DST("dst.claimed:0:stall=4500", EXPECT_ONE),
};

int main(void)
{
    return run_fault_trials("faults_commit", cases, sizeof(cases) / sizeof(cases[0]));
}
