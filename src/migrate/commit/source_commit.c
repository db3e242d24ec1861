/* The source after a positive verdict: COMMIT, CLAIM, GRANT, RESUMED on stream 0, and
 * what happens when stream 0 breaks in between (docs/state-machine.md, "The commit
 * window"). */
#include "migrate/precopy/source_internal.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

static int expect_empty(struct vs_migration *m, enum vs_wire_type type)
{
    struct vs_wire_header hdr;
    int rc = vs_wire_read_header(&m->r, &hdr);
    if (!rc && hdr.type == VS_REC_ABORT && type != VS_REC_ABORT) {
        char reason[VS_WIRE_MAX_REASON + 1] = "";
        rc = vs_wire_read_payload(&m->r, &hdr, reason, VS_WIRE_MAX_REASON);
        return rc ? rc : vs_fail(ECONNABORTED, "the destination aborted instead of sending "
                                 "%s: %s", vs_wire_type_name(type), reason);
    }
    if (!rc && hdr.type != type)
        rc = vs_fail(EPROTO, "the destination sent %s where %s was expected",
                     vs_wire_type_name(hdr.type), vs_wire_type_name(type));
    return rc ? rc : vs_wire_read_payload(&m->r, &hdr, NULL, 0);
}

/* The destination runs the VM: its RESUMED gives the downtime. */
static int await_resumed(struct vs_migration *m, uint64_t pause_ns, uint64_t commit_ns)
{
    struct vs_wire_header hdr;
    struct vs_wire_resumed res;
    int rc = vs_wire_read_header(&m->r, &hdr);
    if (!rc)
        rc = vs_wire_read_fixed(&m->r, &hdr, VS_REC_RESUMED, &res, sizeof(res));
    if (rc)
        return rc;
    uint64_t now = vs_clock_ns();
    pthread_mutex_lock(&m->lock);
    if (m->stats.downtime_exact) {
        m->stats.downtime_ns = res.resume_ns - pause_ns;
    } else {
        /* Different clocks: the round trip COMMIT -> RESUMED, less the destination's own
         * delay, is two one-way trips; count one of them. */
        uint64_t dst_delay = res.resume_ns - res.commit_rx_ns;
        uint64_t rtt = now - commit_ns > dst_delay ? now - commit_ns - dst_delay : 0;
        m->stats.downtime_ns = commit_ns - pause_ns + rtt / 2 + dst_delay;
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static void note_error(struct vs_migration *m, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&m->lock);
    snprintf(m->stats.error, sizeof(m->stats.error), fmt, detail);
    pthread_mutex_unlock(&m->lock);
}

/* Post-copy, stream 0 lost between COMMIT and RESUMED. Granted: the VM is the
 * destination's and post-copy's pause takes over (resume-migration). Not granted: the
 * destination never ran the VM and cannot run it without the pages that are only here,
 * so the source takes it back instead of granting it over a link that just failed:
 * committed -> aborted, and it resumes once the destination has discarded its copy or is
 * gone (docs/state-machine.md, "Post-copy and the commit window"). */
static int postcopy_window_lost(struct vs_migration *m, const char *why)
{
    if (!vs_source_withdraw(m)) {
        pthread_mutex_lock(&m->lock);
        m->unconfirmed = true;   /* post-copy serving starts paused */
        snprintf(m->stats.error, sizeof(m->stats.error), "stream 0 lost after the VM was "
                 "granted to the destination: %s", why);
        pthread_mutex_unlock(&m->lock);
        return 0;
    }
    vs_warn("migration to %s: stream 0 lost before the destination claimed the VM in "
            "post-copy (%s); taking it back once the destination has discarded its copy",
            m->opts.to, why);
    /* Lost for the destination too: a destination that was only slow still waits on stream
     * 0 (for COMMIT or GRANT), and answers on its listening address, where the settling
     * calls go, only once stream 0 is gone. */
    for (unsigned i = 0; i < m->nr_streams; i++)
        if (m->streams[i].ch)
            vs_channel_shutdown(m->streams[i].ch);
    vs_source_set_status(m, "resolving");
    if (vs_source_settle(m) != VS_SETTLED_SOURCE)
        return vs_fail(ECANCELED, "post-copy: stream 0 lost before the grant (%s), and the "
                       "destination did not confirm that it discarded its copy", why);
    m->window.settled = true;
    return vs_fail(EPIPE, "post-copy: stream 0 lost before the destination claimed the VM "
                   "(%s); the VM runs here again", why);
}

int vs_source_commit(struct vs_migration *m, uint64_t pause_ns)
{
    vs_fault_point("src.verdict", 0, m->ch);
    pthread_mutex_lock(&m->lock);
    m->committed = true;   /* cancel is refused from here on */
    m->window.outcome = VS_OUTCOME_SRC_COMMITTED;
    pthread_mutex_unlock(&m->lock);
    vs_fault_point("src.commit", 0, m->ch);
    uint64_t commit_ns = vs_clock_ns();
    int rc = vs_wire_send(m->w, VS_REC_COMMIT, NULL, 0);
    if (!rc) {
        vs_fault_point("src.committed", 0, m->ch);
        rc = expect_empty(m, VS_REC_CLAIM);
    }
    if (!rc) {
        vs_source_grant(m);
        vs_fault_point("src.granted", 0, m->ch);
        rc = vs_wire_send(m->w, VS_REC_GRANT, NULL, 0);
    }
    if (!rc && (rc = await_resumed(m, pause_ns, commit_ns)) == 0)
        return 0;

    char why[256];
    snprintf(why, sizeof(why), "%s", vs_last_error());
    if (m->post.engine)
        return postcopy_window_lost(m, why);
    vs_warn("migration to %s: stream 0 lost in the commit window (%s); settling the outcome "
            "over fresh connections", m->opts.to, why);
    vs_source_set_status(m, "resolving");
    enum vs_settled s = vs_source_settle(m);
    pthread_mutex_lock(&m->lock);
    m->stats.downtime_ns = vs_clock_ns() - pause_ns;   /* at least; RESUMED never came */
    pthread_mutex_unlock(&m->lock);
    switch (s) {
    case VS_SETTLED_DEST:
        vs_info("migration to %s: the destination runs the VM", m->opts.to);
        return 0;
    case VS_SETTLED_SOURCE:
        m->window.settled = true;
        return vs_fail(EPIPE, "the destination went away before it took the VM (%s); the VM "
                       "runs here again", why);
    case VS_SETTLED_LOST:
        vs_source_lost(m, why);
        return 0;
    case VS_SETTLED_UNKNOWN:
        break;
    }
    m->unconfirmed = true;
    note_error(m, "the VM was granted to the destination, but it did not confirm that it "
               "runs it (%s); check it with `vmshift ctl SOCKET status` there", why);
    return 0;
}

const char *vs_source_settle_abort(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    bool needed = m->window.digest_sent && !m->window.dest_refused && !m->window.settled;
    if (needed && m->window.outcome == VS_OUTCOME_SRC_UNDECIDED)
        m->window.outcome = VS_OUTCOME_SRC_ABORTED;
    pthread_mutex_unlock(&m->lock);
    if (!needed)
        return NULL;
    vs_warn("migration to %s: failed after DIGEST: the destination may hold a verified copy; "
            "the VM stays paused here until it has discarded it", m->opts.to);
    vs_source_set_status(m, "resolving");
    switch (vs_source_settle(m)) {
    case VS_SETTLED_SOURCE:
        m->window.settled = true;
        return NULL;
    case VS_SETTLED_DEST:   /* the operator resumed it there: it is the destination's now */
        vs_vm_mark_migrated(m->vm);
        note_error(m, "%s", "the destination's operator resumed its copy: the VM runs there");
        return "completed";
    default:
        return "failed";    /* being freed: nothing resumes here */
    }
}
