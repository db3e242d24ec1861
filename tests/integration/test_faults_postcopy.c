/* Fault suite, the commit window of a post-copy migration (docs/state-machine.md,
 * "Post-copy and the commit window"): until the destination's CLAIM reaches the source,
 * the source holds every page and the destination's partial copy never ran, so a lost
 * stream 0 there makes the source take the VM back: it resumes once the destination has
 * discarded its copy (and exited) or is gone. Never both, and here always the source.
 * (Once the CLAIM has arrived the VM is granted, and a lost stream 0 leaves both sides in
 * postcopy-paused until resume-migration, as test_migrate_postcopy covers.) */
#include "fault_trial.h"
#include "harness.h"

#define TAKEN_BACK "post-copy: stream 0 lost before the destination claimed the VM"
#define SRC(f, e) { .src_fault = (f), .expect = (e), .postcopy = true, .expect_log = TAKEN_BACK }
#define DST(f, e) { .dst_fault = (f), .expect = (e), .postcopy = true, .expect_log = TAKEN_BACK }

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
};

int main(void)
{
    return run_fault_trials("faults_postcopy", cases, sizeof(cases) / sizeof(cases[0]));
}
