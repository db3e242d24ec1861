/* Post-copy, source side: a lost connection and its recovery (docs/state-machine.md,
 * "Post-copy"). The destination waits on its listening address; the source reconnects by
 * itself, or at once when the operator asks (resume-migration, perhaps to another
 * address), and the destination answers with the pages it still lacks. */
#include "migrate/postcopy/postcopy_source_internal.h"
#include "migrate/postcopy/postcopy_source.h"
#include "migrate/precopy/page_bitmap.h"
#include "common/error.h"
#include "common/log.h"
#include "transport/tls.h"

#include <string.h>
#include <time.h>

#define RETRY_FIRST_MS 100 /* reconnecting by itself: the first try after this, then ... */
#define RETRY_MAX_MS 1000  /* ... twice as long each time, up to this */
#define AUTO_STEP_MS 3000  /* connecting and securing, when not asked: a source that is
                              stopped must not wait long for an attempt to end */

static const char *status_now(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    const char *status = m->stats.status;
    pthread_mutex_unlock(&m->lock);
    return status;
}

/* Until the operator asks (*asked: resume-migration, perhaps to another address) or
 * delay_ms have passed (the last address again, by itself); an error when the source quits. */
static int wait_for_resume(struct vs_postcopy_source *pc, int delay_ms, char *to, size_t len,
                           bool *asked)
{
    struct vs_migration *m = pc->m;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)delay_ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&m->lock);
    int err = 0;
    while (!pc->resume_requested && !pc->abandon && err != ETIMEDOUT)
        err = pthread_cond_timedwait(&pc->cv, &m->lock, &until);
    bool abandon = pc->abandon;
    *asked = pc->resume_requested;
    pc->resume_requested = false;
    snprintf(to, len, "%s", *asked && pc->resume_to[0] ? pc->resume_to : m->opts.to);
    if (!abandon) {
        snprintf(m->opts.to, sizeof(m->opts.to), "%s", to);
        snprintf(m->stats.peer, sizeof(m->stats.peer), "%s", to);
    }
    pthread_mutex_unlock(&m->lock);
    return abandon ? vs_fail(ECANCELED, "the source quit during post-copy with %llu pages "
                             "not yet at the destination: the VM there cannot complete",
                             (unsigned long long)atomic_load(&pc->left)) : 0;
}

/* Connect streams [first, first + n) to `to` and secure them as the first connection was
 * (their TLS handshakes in parallel; nothing with --insecure), each step within step_ms,
 * and make them the streams' channels, closing the lost ones. */
static int reconnect_streams(struct vs_migration *m, const char *to, unsigned first, unsigned n,
                             int step_ms)
{
    struct vs_channel *chs[VS_WIRE_MAX_STREAMS] = { NULL };
    struct vs_tls_result res[VS_WIRE_MAX_STREAMS];
    int rc = 0;
    for (unsigned i = 0; i < n && !rc; i++)
        if ((rc = vs_dialer_connect(&m->dialer, to, step_ms, &chs[i])))
            rc = vs_fail_context(rc, "post-copy resume: stream %u to %s", first + i, to);
    if (!rc)
        vs_dialer_secure(&m->dialer, chs, n, step_ms, res);
    for (unsigned i = 0; i < n && !rc; i++)
        if (res[i].err)
            rc = vs_fail(res[i].err, "post-copy resume: stream %u to %s: %s", first + i, to,
                         res[i].error);
    if (rc) {
        /* Given up: closed now. Left open, a destination that was only slow (stalled, or
         * busy) would find it first among its queued connections and spend its handshake
         * on it, unanswered, while the next attempt waits behind it and times out in turn:
         * always one attempt behind, for good (random fault campaign, seed 500797). */
        for (unsigned i = 0; i < n; i++)
            vs_channel_close(chs[i]);
        return rc;
    }
    for (unsigned i = 0; i < n; i++) {
        struct vs_send_stream *s = &m->streams[first + i];
        pthread_mutex_lock(&m->lock);
        struct vs_channel *old = s->ch;
        if (old)
            m->post.closed_bytes += vs_channel_sent(old);
        s->ch = chs[i];
        if (first + i == 0)
            m->ch = chs[i];
        pthread_mutex_unlock(&m->lock);
        vs_channel_close(old);
        vs_wire_writer_destroy(&s->w);
        if (!rc && ((rc = vs_wire_writer_init(&s->w, chs[i])) ||
                    (rc = vs_channel_set_timeout(chs[i], m->opts.timeout_ms))))
            rc = vs_fail_context(rc, "post-copy resume: stream %u to %s", first + i, to);
    }
    return rc;
}

/* New connections: stream 0 first with RESUME (the destination reads it before it takes
 * further connections, as with HELLO), then the others with STREAM_HELLO; the destination
 * answers with the pages it still lacks, which become to_send. */
static int reconnect(struct vs_postcopy_source *pc, const char *to, int step_ms)
{
    struct vs_migration *m = pc->m;
    int rc = reconnect_streams(m, to, 0, 1, step_ms);
    if (rc)
        return rc;
    if (strcmp(status_now(m), "postcopy-recover"))
        vs_source_set_status(m, "postcopy-recover");   /* the destination answers */
    vs_wire_reader_destroy(&m->r);
    vs_wire_reader_init(&m->r, m->ch);
    m->r.postcopy = true;
    struct vs_wire_postcopy_resume rq = { .nr_streams = m->nr_streams };
    memcpy(rq.session, m->session, sizeof(rq.session));
    rc = vs_wire_send(m->w, VS_REC_POSTCOPY_RESUME, &rq, sizeof(rq));
    if (!rc && m->nr_streams > 1)
        rc = reconnect_streams(m, to, 1, m->nr_streams - 1, step_ms);
    for (unsigned i = 1; i < m->nr_streams && !rc; i++) {
        struct vs_wire_stream_hello sh = { .index = i, .nr_streams = m->nr_streams };
        memcpy(sh.session, m->session, sizeof(sh.session));
        rc = vs_wire_send(&m->streams[i].w, VS_REC_STREAM_HELLO, &sh, sizeof(sh));
    }
    struct vs_wire_header h;
    struct vs_wire_postcopy_resume reply;
    if (rc || (rc = vs_wire_read_header(&m->r, &h)))
        return rc;
    if (h.type == VS_REC_ABORT) {
        char why[VS_WIRE_MAX_REASON + 1] = "";
        vs_wire_read_payload(&m->r, &h, why, VS_WIRE_MAX_REASON);
        return vs_fail(ECONNREFUSED, "the destination refused to resume: %s", why);
    }
    if ((rc = vs_wire_read_postcopy_resume(&m->r, &h, m->vm->mem.size, &reply, pc->scratch)))
        return rc;
    if (memcmp(reply.session, m->session, sizeof(m->session)) ||
        reply.nr_streams != m->nr_streams)
        return vs_fail(EPROTO, "post-copy resume: %s answered for another migration", to);
    memcpy(pc->to_send, pc->scratch, vs_page_bitmap_words(pc->npages) * 8);
    atomic_store(&pc->left, reply.missing_pages);
    vs_info("post-copy resumed with %s: %llu pages still to send", to,
            (unsigned long long)reply.missing_pages);
    return 0;
}

static void set_error(struct vs_migration *m, const char *prefix)
{
    pthread_mutex_lock(&m->lock);
    snprintf(m->stats.error, sizeof(m->stats.error), "%s%s", prefix, vs_last_error());
    pthread_mutex_unlock(&m->lock);
}

/* The link is lost: every stream is shut down, so that a destination that was only slow
 * learns it at once and goes to wait on its listening address, where the reconnection
 * comes (a lost COMMIT or RESUMED leaves them open: the destination, which may have run
 * the VM on the GRANT meanwhile, would wait for pages on them for good). */
static void drop_streams(struct vs_migration *m)
{
    for (unsigned i = 0; i < m->nr_streams; i++)
        if (m->streams[i].ch)
            vs_channel_shutdown(m->streams[i].ch);
}

/* Paused: the first loss is an error, with the command for a destination that moved; a
 * failed reconnection is worth a line only when it fails for a new reason. */
static void note_pause(struct vs_migration *m, bool lost, char *last, size_t len)
{
    const char *why = vs_last_error();
    set_error(m, "post-copy paused: ");
    if (lost)
        vs_log(VS_LOG_ERROR, "post-copy to %s lost its connection (%s); the source keeps its "
               "paused copy and reconnects by itself; if the destination is reached at "
               "another address now: `vmshift ctl %s resume-migration to=HOST:PORT`",
               m->opts.to, why, m->opts.ctl_path[0] ? m->opts.ctl_path : "SOCKET");
    else if (strcmp(last, why))
        vs_warn("post-copy to %s: reconnecting failed (%s); trying again", m->opts.to, why);
    snprintf(last, len, "%s", why);
}

int vs_postcopy_recover(struct vs_postcopy_source *pc, bool lost)
{
    struct vs_migration *m = pc->m;
    char last[sizeof(m->stats.error)] = "";
    for (int delay_ms = RETRY_FIRST_MS;;) {
        drop_streams(m);
        note_pause(m, lost, last, sizeof(last));
        lost = false;
        if (strcmp(status_now(m), "postcopy-paused"))
            vs_source_set_status(m, "postcopy-paused");
        char to[sizeof(m->opts.to)];
        bool asked;
        int rc = wait_for_resume(pc, delay_ms, to, sizeof(to), &asked);
        if (rc) {
            set_error(m, "");
            vs_log(VS_LOG_ERROR, "%s", vs_last_error());
            return rc;
        }
        delay_ms = delay_ms * 2 < RETRY_MAX_MS ? delay_ms * 2 : RETRY_MAX_MS;
        int step_ms = m->opts.timeout_ms;
        if (asked)
            vs_source_set_status(m, "postcopy-recover");
        else if (step_ms <= 0 || step_ms > AUTO_STEP_MS)
            step_ms = AUTO_STEP_MS;
        if (reconnect(pc, to, step_ms) == 0) {
            pthread_mutex_lock(&m->lock);
            m->stats.postcopy.resumes++;
            m->stats.error[0] = '\0';
            pc->resume_requested = false;   /* asked meanwhile: done */
            pthread_mutex_unlock(&m->lock);
            return 0;
        }
    }
}

int vs_migration_resume(struct vs_migration *m, const char *to)
{
    pthread_mutex_lock(&m->lock);
    struct vs_postcopy_source *pc = m->post.engine;
    const char *status = m->stats.status;
    if (!pc || strcmp(status, "postcopy-paused")) {
        pthread_mutex_unlock(&m->lock);
        return vs_fail(EINVAL, "no paused post-copy to resume: the migration is %s", status);
    }
    if (to && strlen(to) >= sizeof(pc->resume_to)) {
        pthread_mutex_unlock(&m->lock);
        return vs_fail(EINVAL, "resume-migration to='%.40s...' is too long", to);
    }
    snprintf(pc->resume_to, sizeof(pc->resume_to), "%s", to ? to : "");
    pc->resume_requested = true;
    m->stats.status = "postcopy-recover";   /* from now on, not paused any more */
    pthread_cond_broadcast(&pc->cv);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void vs_postcopy_abandon(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    struct vs_postcopy_source *pc = m->post.engine;
    if (pc) {
        pc->abandon = true;
        pthread_cond_broadcast(&pc->cv);
    }
    pthread_mutex_unlock(&m->lock);
}
