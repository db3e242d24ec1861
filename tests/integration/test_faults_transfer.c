/* Fault suite, before the commit window: the handshake, each pre-copy pass, the
 * switchover and the state transfer, with either process killed or stalled or stream 0
 * cut at a fault point (over TLS), and byte-level cuts, corruption and stalls of stream 0
 * in both directions through the test proxy (plain records, including the records of the
 * commit window seen from the wire; and corruption under TLS, which TLS detects). Until DIGEST the source owns the VM: a failure leaves it running
 * there, and killing it kills the VM. */
#include "fault_trial.h"
#include "harness.h"


#define SRC(f, e) { .src_fault = (f), .expect = (e) }
#define DST(f, e) { .dst_fault = (f), .expect = (e) }
/* Byte-level faults at positions of the plain record stream: these trials run both sides
 * --insecure (under TLS the offsets would fall on TLS framing, and every corrupted byte
 * would be caught by TLS before the record checks these trials are about). */
#define LINK(a, d, off, e) { .link = { .action = (a), .dir = (d), .offset = (off), \
                                       .stall_ms = 4500 }, .expect = (e), .plain = true }
/* The same over TLS: a corrupted byte fails TLS's record authentication, and the side
 * that reads it says so; the migration then fails or settles like a cut. */
#define TLS_LINK(a, d, off, e) { .link = { .action = (a), .dir = (d), .offset = (off) }, \
                                 .expect = (e), .expect_log = "altered in transit" }

/* Bytes from the destination to the source on stream 0: HELLO_REPLY (32 + 288), then
 * VERIFY_REPLY (32 + 264), CLAIM (32), RESUMED (32 + 16). */
#define AT_VERIFY_REPLY 320
#define AT_CLAIM (AT_VERIFY_REPLY + 296)
#define AT_RESUMED (AT_CLAIM + 32)

static const struct fault_trial cases[] = {
    SRC("src.handshake:0:kill", EXPECT_NONE),
    SRC("src.handshake:0:cut", EXPECT_SOURCE),
    SRC("src.handshake:0:stall=4500", EXPECT_SOURCE),
    SRC("src.pass:0:kill", EXPECT_NONE),
    SRC("src.pass:1:kill", EXPECT_NONE),
    SRC("src.pass:2:kill", EXPECT_NONE),
    SRC("src.pass:0:cut", EXPECT_SOURCE),
    SRC("src.pass:1:cut", EXPECT_SOURCE),
    SRC("src.pass:2:cut", EXPECT_SOURCE),
    SRC("src.pass:1:stall=4500", EXPECT_SOURCE),
    SRC("src.switchover:0:kill", EXPECT_NONE),
    SRC("src.switchover:0:cut", EXPECT_SOURCE),
    SRC("src.switchover:0:stall=4500", EXPECT_SOURCE),
    SRC("src.state:0:cut", EXPECT_SOURCE),
    DST("dst.hello:0:kill", EXPECT_SOURCE),
    DST("dst.hello:0:cut", EXPECT_SOURCE),
    DST("dst.hello:0:stall=4500", EXPECT_SOURCE),
    DST("dst.pass_end:0:kill", EXPECT_SOURCE),
    DST("dst.pass_end:1:kill", EXPECT_SOURCE),
    DST("dst.pass_end:2:kill", EXPECT_SOURCE),
    DST("dst.pass_end:3:kill", EXPECT_SOURCE),   /* the final pass */
    DST("dst.pass_end:0:cut", EXPECT_SOURCE),
    DST("dst.pass_end:1:cut", EXPECT_SOURCE),
    DST("dst.pass_end:2:cut", EXPECT_SOURCE),
    DST("dst.pass_end:1:stall=4500", EXPECT_ONE),   /* socket buffers may absorb it */
    DST("dst.state:0:kill", EXPECT_SOURCE),
    DST("dst.state:0:cut", EXPECT_SOURCE),
    DST("dst.state:0:stall=4500", EXPECT_SOURCE),
    /* Source -> destination bytes: cut inside HELLO, in pass 0 and later. */
    LINK(PROXY_CUT, PROXY_TO_DST, 0, EXPECT_SOURCE),
    LINK(PROXY_CUT, PROXY_TO_DST, 50, EXPECT_SOURCE),
    LINK(PROXY_CUT, PROXY_TO_DST, 65536, EXPECT_SOURCE),
    LINK(PROXY_CUT, PROXY_TO_DST, 1 << 20, EXPECT_SOURCE),
    LINK(PROXY_CUT, PROXY_TO_DST, 3 << 20, EXPECT_SOURCE),
    LINK(PROXY_CORRUPT, PROXY_TO_DST, 10, EXPECT_SOURCE),      /* a header */
    LINK(PROXY_CORRUPT, PROXY_TO_DST, 60, EXPECT_SOURCE),      /* HELLO's payload */
    /* Page data: caught by the end-to-end digest unless a later pass resends the page. */
    LINK(PROXY_CORRUPT, PROXY_TO_DST, 600000, EXPECT_ONE),
    LINK(PROXY_STALL, PROXY_TO_DST, 2 << 20, EXPECT_SOURCE),
    /* Destination -> source bytes. */
    LINK(PROXY_CUT, PROXY_TO_SRC, 0, EXPECT_SOURCE),
    LINK(PROXY_CUT, PROXY_TO_SRC, 100, EXPECT_SOURCE),
    LINK(PROXY_CUT, PROXY_TO_SRC, AT_VERIFY_REPLY, EXPECT_SOURCE),
    LINK(PROXY_CUT, PROXY_TO_SRC, AT_CLAIM, EXPECT_DEST),
    LINK(PROXY_CUT, PROXY_TO_SRC, AT_RESUMED, EXPECT_DEST),
    LINK(PROXY_CORRUPT, PROXY_TO_SRC, 10, EXPECT_SOURCE),
    LINK(PROXY_CORRUPT, PROXY_TO_SRC, AT_VERIFY_REPLY + 40, EXPECT_SOURCE),
    LINK(PROXY_CORRUPT, PROXY_TO_SRC, AT_CLAIM + 4, EXPECT_DEST),
    LINK(PROXY_STALL, PROXY_TO_SRC, AT_VERIFY_REPLY, EXPECT_SOURCE),
    /* Over TLS: page data on its way to the destination (pre-copy: the source keeps the
     * VM), and a record on its way to the source (one of the destination's answers:
     * HELLO_REPLY or VERIFY_REPLY, then the source keeps it; CLAIM or RESUMED, then the
     * destination runs it). */
    TLS_LINK(PROXY_CORRUPT, PROXY_TO_DST, 600000, EXPECT_SOURCE),
    TLS_LINK(PROXY_CORRUPT, PROXY_TO_SRC, 700, EXPECT_ONE),
    /* The same corruption on a path that keeps the source's connection open after the
     * destination left: the source stops when the destination says on the RESOLVE
     * endpoint that it discarded its copy, not 45 s later. */
    { .link = { .action = PROXY_CORRUPT, .dir = PROXY_TO_DST, .offset = 600000,
                .hold_open = true }, .expect = EXPECT_SOURCE,
      .expect_log = "the destination gave up and discarded its copy" },
};

int main(void)
{
    return run_fault_trials("faults_transfer", cases, sizeof(cases) / sizeof(cases[0]));
}
