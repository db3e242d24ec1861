/* Post-copy, destination side: the commit window and taking the source back after a lost
 * connection. The source must come to the original listening address with a
 * POSTCOPY_RESUME naming this migration's session, and its other streams with
 * STREAM_HELLO; the answer is the map of the pages still missing (none, when every page
 * arrived but our POSTCOPY_END was lost: it is sent again). In the commit window
 * (COMMIT arrived, GRANT did not) the source may instead settle the outcome there with
 * RESOLVE (docs/state-machine.md, "Post-copy and the commit window"). Anything else is
 * dropped and the wait goes on. Every connection was admitted (TLS) by accept_stream. */
#include "migrate/postcopy/postcopy_dest_internal.h"
#include "migrate/commit/dest_resolve.h"
#include "migrate/precopy/page_bitmap.h"
#include "migrate/commit/resolve_wire.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"

#include <poll.h>
#include <string.h>

/* After COMMIT from a 2.2 source: CLAIM the VM and wait for the GRANT (the source's point
 * of no return). Lost in between, the VM is in doubt here: it runs only once the source
 * comes back with POSTCOPY_RESUME (which it sends only when it granted the VM), and it is
 * discarded when the source says over RESOLVE that it kept it. */
int vs_postcopy_claim(struct vs_postcopy_dest *pc)
{
    struct pc_stream *s0 = &pc->s[0];
    pthread_mutex_lock(&pc->w0_lock);
    int rc = vs_wire_send(&pc->w0, VS_REC_CLAIM, NULL, 0);
    pthread_mutex_unlock(&pc->w0_lock);
    vs_fault_point("dst.claimed", 0, s0->ch);
    struct vs_wire_header g;
    if (!rc)
        rc = vs_wire_read_header(&s0->r, &g);
    if (!rc && g.type != VS_REC_GRANT)
        rc = vs_fail(EPROTO, "post-copy: expected GRANT, got record #%llu (%s)",
                     (unsigned long long)g.seq, vs_wire_type_name(g.type));
    if (!rc)
        rc = vs_wire_read_payload(&s0->r, &g, NULL, 0);
    if (!rc)
        vs_fault_point("dst.granted", 0, s0->ch);
    return rc;
}

/* Whether the peer has hung up already. */
static bool peer_gone(const struct vs_channel *ch)
{
    struct pollfd p = { .fd = ch->fd, .events = POLLRDHUP };
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* A new stream 0 from the source (c, first record h): POSTCOPY_RESUME with our session;
 * then its streams. 1: an attempt the source gave up on (dropped). */
static int accept_resume(struct vs_postcopy_dest *pc, struct vs_resolve_conn *first,
                         const struct vs_wire_header *h0)
{
    const struct vs_incoming_opts *o = pc->opts;
    struct vs_wire_header h;
    struct vs_wire_postcopy_resume rq;
    int rc = vs_wire_read_postcopy_resume(&first->r, h0, pc->vm->mem.size, &rq, NULL);
    if (!rc && (memcmp(rq.session, pc->session, sizeof(rq.session)) || rq.nr_streams != pc->n))
        rc = vs_fail(EACCES, "POSTCOPY_RESUME names another migration (or %u streams, not %u)",
                     rq.nr_streams, pc->n);
    if (!rc && peer_gone(first->ch)) {
        /* It waited in the queue while this side did not listen (stalled, or busy with
         * older ones), and the source, which got no answer in time, closed it and tries
         * again behind it: answering it would start a session with nobody. */
        vs_warn("post-copy resume: dropped a connection from %s: the source gave up on it "
                "already", first->ch->peer);
        rc = 1;
    }
    if (rc) {
        vs_resolve_close(first);
        return rc;
    }
    vs_wire_writer_destroy(&first->w);   /* stream 0's writer is pc->w0 */
    pc->s[0].ch = first->ch;
    pc->s[0].r = first->r;
    first->ch = NULL;
    struct vs_wire_hello hello = { .nr_streams = pc->n };
    memcpy(hello.session, pc->session, sizeof(hello.session));
    for (unsigned have = 1, tries = 0; have < pc->n;) {
        if (++tries > 2 * pc->n)
            return vs_fail(EPROTO, "post-copy resume: only %u of %u streams arrived", have, pc->n);
        struct vs_channel *c;
        rc = o->accept_stream(o->accept_ctx, pc->n - have, o->timeout_ms, &c);
        if (rc > 0)
            continue;          /* refused (not authenticated, say): logged, try again */
        if (rc < 0)
            return vs_fail_context(rc, "post-copy resume: waiting for stream %u", have);
        vs_channel_set_timeout(c, o->timeout_ms);
        struct vs_wire_reader sr;
        struct vs_wire_stream_hello sh;
        vs_wire_reader_init(&sr, c);
        sr.postcopy = true;
        rc = vs_wire_read_header(&sr, &h);
        if (!rc)
            rc = vs_wire_read_fixed(&sr, &h, VS_REC_STREAM_HELLO, &sh, sizeof(sh));
        if (!rc)
            rc = vs_wire_check_stream_hello(&sh, &hello);
        if (!rc && pc->s[sh.index].ch)
            rc = vs_fail(EPROTO, "stream %u arrived twice", sh.index);
        if (rc) {
            vs_warn("post-copy resume: dropped a connection from %s: %s", c->peer,
                    vs_last_error());
            vs_wire_reader_destroy(&sr);
            vs_channel_close(c);
            continue;
        }
        pc->s[sh.index].ch = c;
        pc->s[sh.index].r = sr;
        have++;
    }
    pthread_mutex_lock(&pc->w0_lock);
    rc = vs_wire_writer_init(&pc->w0, pc->s[0].ch);
    struct vs_wire_postcopy_resume reply = { .nr_streams = pc->n,
                                             .missing_pages = atomic_load(&pc->missing_count) };
    memcpy(reply.session, pc->session, sizeof(reply.session));
    if (!rc)
        rc = vs_wire_send_parts(&pc->w0, VS_REC_POSTCOPY_RESUME, &reply, sizeof(reply),
                                pc->missing, vs_page_bitmap_words(pc->npages) * 8);
    pc->connected = rc == 0;
    pthread_mutex_unlock(&pc->w0_lock);
    return rc;
}

/* What the source's RESOLVE means for the copy here: it runs once the VM started (after
 * GRANT, or a POSTCOPY_RESUME, which only a source that granted sends); before that it is
 * in doubt, and discarded when the source kept the VM. */
static uint32_t decide(void *arg, uint32_t said)
{
    struct vs_postcopy_dest *pc = arg;
    uint32_t mine = VS_OUTCOME_DST_IN_DOUBT;
    pthread_mutex_lock(&pc->lock);
    if (said == VS_OUTCOME_UNKNOWN)
        mine = VS_OUTCOME_UNKNOWN;
    else if (pc->vm_started || said == VS_OUTCOME_SRC_GRANTED)
        mine = VS_OUTCOME_DST_RUNNING;   /* ours: it runs when the source resumes post-copy */
    else if (pc->failed || said == VS_OUTCOME_SRC_ABORTED)
        mine = VS_OUTCOME_DST_DISCARDED;
    if (mine == VS_OUTCOME_DST_DISCARDED && !pc->failed) {
        pc->failed = true;             /* the VM never runs here */
        vs_log(VS_LOG_ERROR, "the source kept the VM: the post-copy copy here is discarded");
    }
    pthread_mutex_unlock(&pc->lock);
    return mine;
}

/* One admitted connection while the source is away: RESOLVE (answered here) or a
 * POSTCOPY_RESUME (0: the source is back). */
static int take_connection(struct vs_postcopy_dest *pc, struct vs_channel *ch)
{
    struct vs_resolve_conn c;
    struct vs_wire_header h;
    int rc = vs_resolve_open(ch, pc->opts->timeout_ms, &c);
    if (rc)
        return rc;
    c.r.postcopy = true;
    if ((rc = vs_wire_read_header(&c.r, &h)) == 0) {
        uint32_t said;
        if (h.type == VS_REC_POSTCOPY_RESUME)
            return accept_resume(pc, &c, &h);
        if (h.type != VS_REC_RESOLVE)
            rc = vs_fail(EPROTO, "its first record is %s, not POSTCOPY_RESUME or RESOLVE",
                         vs_wire_type_name(h.type));
        else if ((rc = vs_resolve_read_payload(&c.r, &h, pc->session, &said)) == 0)
            vs_dest_resolve_answer(&c, pc->session, said, decide, pc);
    }
    vs_resolve_close(&c);
    return rc ? rc : 1;
}

/* Wait on the listening address for the source to come back (until stopped). */
int vs_postcopy_wait_for_source(struct vs_postcopy_dest *pc)
{
    const struct vs_incoming_opts *o = pc->opts;
    if (!o->accept_stream)
        return vs_fail(ENOTSUP, "this receiver cannot take connections again: post-copy "
                       "cannot resume");
    while (!atomic_load(&pc->stopping) && !vs_postcopy_dest_failed(pc)) {
        struct vs_channel *ch;
        if (o->accept_stream(o->accept_ctx, 1, 500, &ch))
            continue;
        char peer[sizeof(ch->peer)];
        snprintf(peer, sizeof(peer), "%s", ch->peer);
        int rc = take_connection(pc, ch);
        if (rc == 0) {
            pthread_mutex_lock(&pc->lock);
            pc->stats.postcopy.resumes++;
            pthread_mutex_unlock(&pc->lock);
            return 0;
        }
        if (rc < 0) {
            vs_warn("post-copy resume from %s failed: %s", peer, vs_last_error());
            vs_postcopy_lost(pc);
        }
    }
    return vs_fail(ECANCELED, vs_postcopy_dest_failed(pc) ? "the source kept the VM: the copy "
                   "here is discarded" : "stopped while waiting for the source to resume "
                   "post-copy");
}

/* A source that came back after every page arrived: it was told that nothing is missing;
 * it ends every stream at once, and gets POSTCOPY_END again. */
static int confirm_completion(struct vs_postcopy_dest *pc)
{
    for (unsigned i = 0; i < pc->n; i++) {
        struct vs_wire_header h;
        struct vs_wire_postcopy_end e;
        int rc = vs_channel_set_liveness(pc->s[i].ch, LIVENESS_MS);
        if (!rc)
            rc = vs_wire_read_header(&pc->s[i].r, &h);
        if (!rc)
            rc = vs_wire_read_fixed(&pc->s[i].r, &h, VS_REC_POSTCOPY_END, &e, sizeof(e));
        if (rc)
            return rc;
    }
    return vs_postcopy_send_end(pc);
}

/* Every page is here, but the source may not know: POSTCOPY_END can be lost with the link,
 * and such a source waits in postcopy-paused for resume-migration. Keep answering it on
 * the listening address until the process stops (the VM runs on meanwhile). */
void vs_postcopy_serve_completed(struct vs_postcopy_dest *pc)
{
    while (!atomic_load(&pc->stopping)) {
        vs_postcopy_close_session(pc);
        if (vs_postcopy_wait_for_source(pc))
            return;
        if (confirm_completion(pc))
            vs_warn("post-copy completed; the source came back but could not be told: %s",
                    vs_last_error());
        else
            vs_info("post-copy completed; the source came back and was told again");
    }
}
