/* Post-copy, destination side: taking the source back after a lost connection. It must
 * come to the original listening address with a POSTCOPY_RESUME naming this migration's
 * session, and its other streams with STREAM_HELLO; the answer is the map of the pages
 * still missing. Anything else is dropped and the wait goes on. */
#include "migrate/postcopy_dest_internal.h"
#include "migrate/page_bitmap.h"
#include "common/error.h"
#include "common/log.h"

#include <string.h>

/* A new stream 0 from the source: POSTCOPY_RESUME with our session; then its streams. */
static int accept_resume(struct vs_postcopy_dest *pc, struct vs_channel *ch)
{
    const struct vs_incoming_opts *o = pc->opts;
    vs_channel_set_timeout(ch, o->timeout_ms);
    struct vs_wire_reader r;
    vs_wire_reader_init(&r, ch);
    r.postcopy = true;
    struct vs_wire_header h;
    struct vs_wire_postcopy_resume rq;
    int rc = vs_wire_read_header(&r, &h);
    if (!rc)
        rc = vs_wire_read_postcopy_resume(&r, &h, pc->vm->mem.size, &rq, NULL);
    if (!rc && (memcmp(rq.session, pc->session, sizeof(rq.session)) || rq.nr_streams != pc->n))
        rc = vs_fail(EACCES, "POSTCOPY_RESUME names another migration (or %u streams, not %u)",
                     rq.nr_streams, pc->n);
    if (rc) {
        vs_wire_reader_destroy(&r);
        vs_channel_close(ch);
        return rc;
    }
    pc->s[0].ch = ch;
    pc->s[0].r = r;
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

/* Wait on the listening address for the source to come back (until stopped). */
int vs_postcopy_wait_for_source(struct vs_postcopy_dest *pc)
{
    const struct vs_incoming_opts *o = pc->opts;
    if (!o->accept_stream)
        return vs_fail(ENOTSUP, "this receiver cannot take connections again: post-copy "
                       "cannot resume");
    while (!atomic_load(&pc->stopping)) {
        struct vs_channel *ch;
        if (o->accept_stream(o->accept_ctx, 1, 500, &ch))
            continue;
        if (accept_resume(pc, ch) == 0) {
            pthread_mutex_lock(&pc->lock);
            pc->stats.postcopy.resumes++;
            pthread_mutex_unlock(&pc->lock);
            return 0;
        }
        vs_warn("post-copy resume from %s failed: %s", ch->peer, vs_last_error());
        vs_postcopy_lost(pc);
    }
    return vs_fail(ECANCELED, "stopped while waiting for the source to resume post-copy");
}

