/* The source's side of the commit window (docs/state-machine.md, "The commit window"):
 * the RESOLVE endpoint the destination asks, and the settling the migration thread does
 * when stream 0 is lost after DIGEST. */
#include "migrate/precopy/source_internal.h"
#include "migrate/commit/resolve_wire.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RESOLVE_TIMEOUT_MS 2000   /* a settling exchange, TLS handshake included */

bool vs_source_grant(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    bool mark = m->window.outcome == VS_OUTCOME_SRC_COMMITTED;
    if (mark)
        m->window.outcome = VS_OUTCOME_SRC_GRANTED;
    bool granted = m->window.outcome == VS_OUTCOME_SRC_GRANTED;
    pthread_mutex_unlock(&m->lock);
    if (mark) {
        vs_vm_mark_migrated(m->vm);   /* never runs here again */
        vs_info("migration to %s: granted the VM to the destination", m->opts.to);
    }
    return granted;
}

static void note_dest_state(struct vs_migration *m, uint32_t state)
{
    pthread_mutex_lock(&m->lock);
    m->window.dest_state = state;
    pthread_cond_broadcast(&m->window.settle_cv);
    pthread_mutex_unlock(&m->lock);
}

/* One question from the destination: it is in doubt and asks for the outcome. */
static void answer(struct vs_migration *m, struct vs_channel *ch)
{
    struct vs_resolve_conn c;
    uint32_t asked;
    char peer[sizeof(ch->peer)];
    snprintf(peer, sizeof(peer), "%s", ch->peer);
    if (vs_resolve_accept(ch, RESOLVE_TIMEOUT_MS, m->session, &asked, &c)) {   /* closed ch */
        vs_warn("RESOLVE endpoint: dropped a connection from %s: %s", peer, vs_last_error());
        return;
    }
    uint32_t reply = VS_OUTCOME_UNKNOWN;
    if (asked != VS_OUTCOME_UNKNOWN) {
        /* An in-doubt destination is verified and asks to run: committed becomes granted. */
        if (asked == VS_OUTCOME_DST_IN_DOUBT)
            vs_source_grant(m);
        else if (asked == VS_OUTCOME_DST_DISCARDED)
            vs_source_dest_discarded(m);
        pthread_mutex_lock(&m->lock);
        reply = m->window.outcome;
        pthread_mutex_unlock(&m->lock);
    }
    vs_info("RESOLVE endpoint: the destination is %s; told it %s", vs_outcome_name(asked),
            vs_outcome_name(reply));
    uint32_t after;
    if (vs_resolve_send(&c.w, m->session, reply) == 0 &&
        (reply == VS_OUTCOME_SRC_GRANTED || reply == VS_OUTCOME_SRC_ABORTED) &&
        vs_resolve_read(&c.r, m->session, &after) == 0) {
        vs_info("RESOLVE endpoint: the destination now is %s", vs_outcome_name(after));
        note_dest_state(m, after);
    }
    vs_resolve_close(&c);
}

/* Only a destination that authenticates like a migration stream may ask: the dialer's
 * call-back endpoint secures each connection as the streams were. */
static void *resolve_server(void *arg)
{
    struct vs_migration *m = arg;
    while (!atomic_load(&m->closing)) {
        struct vs_channel *ch;
        int rc = vs_callback_accept(m->window.resolve, 20, &ch);  /* short: quitting waits */
        if (rc == -ETIMEDOUT)
            continue;
        if (rc) {
            vs_warn("RESOLVE endpoint: refused a connection: %s", vs_last_error());
            continue;
        }
        answer(m, ch);
    }
    return NULL;
}

int vs_source_resolve_listen(struct vs_migration *m, uint16_t *port)
{
    int rc = vs_dialer_open_callback(&m->dialer, m->ch, &m->window.resolve);
    if (rc)
        return vs_fail_context(rc, "opening the RESOLVE endpoint");
    *port = m->window.resolve->port;
    int err = pthread_create(&m->window.thread, NULL, resolve_server, m);
    if (err)
        return vs_fail(err, "cannot start the RESOLVE endpoint thread: %s", strerror(err));
    m->window.thread_started = true;
    return 0;
}

void vs_source_resolve_stop(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    atomic_store(&m->closing, true);
    pthread_cond_broadcast(&m->window.settle_cv);
    pthread_mutex_unlock(&m->lock);
    if (m->window.thread_started)
        pthread_join(m->window.thread, NULL);
    m->window.thread_started = false;
    vs_callback_close(m->window.resolve);
    m->window.resolve = NULL;
}

void vs_source_lost(struct vs_migration *m, const char *why)
{
    const char *sock = m->opts.ctl_path[0] ? m->opts.ctl_path : "SOCKET";
    pthread_mutex_lock(&m->lock);
    m->unconfirmed = true;
    m->lost = true;
    snprintf(m->stats.error, sizeof(m->stats.error), "the destination %.80s claimed the VM, "
             "then died: the VM is lost unless it never ran there (its log has no \"starting "
             "its vCPUs\"); take it back: `vmshift ctl %.100s reclaim`; release it: `vmshift "
             "ctl %.100s quit`", m->opts.to, sock, sock);
    pthread_mutex_unlock(&m->lock);
    vs_log(VS_LOG_ERROR, "migration to %s: the destination claimed the VM and then its "
           "process died (%s): the VM started there, or was about to, and died with it; this "
           "process holds the VM as it was at the switchover, paused. Only the destination's "
           "log can tell whether it ever ran there (docs/state-machine.md, \"What needs an "
           "operator\"). If it has no \"starting its vCPUs\" line, take the VM back here:\n"
           "    vmshift ctl %s reclaim\nOtherwise the VM is lost; release its memory here:\n"
           "    vmshift ctl %s quit", m->opts.to, why, sock, sock);
}

int vs_migration_reclaim(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    bool ok = m->finished && m->lost && !m->reclaimed;
    bool again = m->reclaimed;
    m->reclaimed = m->reclaimed || ok;
    const char *status = m->stats.status;
    pthread_mutex_unlock(&m->lock);
    if (again)
        return vs_fail(EALREADY, "the VM was reclaimed already: it runs here");
    if (!ok)
        return vs_fail(EPERM, "reclaim is only for a VM granted to a destination whose "
                       "process then died (migration status `unconfirmed`, destination gone); "
                       "this migration is `%s`", status ? status : "unknown");
    vs_vm_unmark_migrated(m->vm);
    vs_vm_block_resume(m->vm, NULL);
    int rc = vs_vm_resume(m->vm);
    if (rc)
        return rc;
    vs_warn("migration to %s: the operator reclaimed the VM: it runs here again, from the "
            "state it had at the switchover", m->opts.to);
    return 0;
}

static uint32_t outcome_of(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    uint32_t o = m->window.outcome;
    pthread_mutex_unlock(&m->lock);
    return o;
}

bool vs_source_withdraw(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->window.outcome == VS_OUTCOME_SRC_COMMITTED)
        m->window.outcome = VS_OUTCOME_SRC_ABORTED;
    bool aborted = m->window.outcome == VS_OUTCOME_SRC_ABORTED;
    pthread_mutex_unlock(&m->lock);
    return aborted;
}

/* One call to the destination's listening address. Returns its state, or 0 when it
 * could not be reached (try again); VS_OUTCOME_UNKNOWN when it is provably gone. */
static uint32_t call_destination(struct vs_migration *m)
{
    struct vs_resolve_conn c;
    uint32_t mine = outcome_of(m), theirs = 0;
    int rc = vs_resolve_call(m->opts.to, &m->dialer, RESOLVE_TIMEOUT_MS, m->session, mine, &theirs,
                             &c);
    if (rc == -ECONNREFUSED) {
        vs_info("migration to %s: nothing listens there any more: the destination process "
                "is gone, and its copy with it", m->opts.to);
        return VS_OUTCOME_UNKNOWN;
    }
    if (rc) {
        vs_info("migration to %s: settling: %s", m->opts.to, vs_last_error());
        return 0;
    }
    vs_info("migration to %s: settling: we are %s, the destination is %s", m->opts.to,
            vs_outcome_name(mine), vs_outcome_name(theirs));
    if (mine == VS_OUTCOME_SRC_COMMITTED && theirs == VS_OUTCOME_DST_IN_DOUBT) {
        /* It holds the verified copy and waits: give it the VM. */
        theirs = 0;
        if (vs_source_grant(m) && vs_resolve_send(&c.w, m->session, VS_OUTCOME_SRC_GRANTED) == 0)
            vs_resolve_read(&c.r, m->session, &theirs);
    }
    vs_resolve_close(&c);
    return theirs == VS_OUTCOME_DST_IN_DOUBT ? 0 : theirs;
}

enum vs_settled vs_source_settle(struct vs_migration *m)
{
    uint64_t start = vs_clock_ns();
    unsigned wait_ms = 100;
    for (uint64_t attempt = 0;; attempt++) {
        vs_fault_point("src.resolve", attempt, NULL);
        pthread_mutex_lock(&m->lock);
        uint32_t heard = m->window.dest_state;
        pthread_mutex_unlock(&m->lock);
        uint32_t dest = heard ? heard : call_destination(m);
        uint32_t mine = outcome_of(m);
        if (dest == VS_OUTCOME_DST_RUNNING) {
            if (mine != VS_OUTCOME_SRC_GRANTED)   /* the operator resumed it there */
                vs_source_grant(m);
            return VS_SETTLED_DEST;
        }
        if (dest == VS_OUTCOME_DST_DISCARDED || dest == VS_OUTCOME_UNKNOWN) {
            if (mine == VS_OUTCOME_SRC_ABORTED || vs_source_withdraw(m))
                return VS_SETTLED_SOURCE;
            return VS_SETTLED_LOST;   /* granted, then it died */
        }
        if (mine == VS_OUTCOME_SRC_GRANTED &&
            vs_clock_ns() - start > (uint64_t)m->opts.timeout_ms * 1000000)
            return VS_SETTLED_UNKNOWN;
        if (atomic_load(&m->closing))
            return VS_SETTLED_UNKNOWN;   /* exiting: resume nothing */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)wait_ms * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&m->lock);
        if (!m->window.dest_state && !atomic_load(&m->closing))
            pthread_cond_timedwait(&m->window.settle_cv, &m->lock, &ts);
        pthread_mutex_unlock(&m->lock);
        wait_ms = wait_ms < 1000 ? wait_ms * 2 : 1000;
    }
}
