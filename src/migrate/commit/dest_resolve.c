#include "migrate/commit/dest_resolve.h"
#include "migrate/commit/resolve_wire.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vs_dest_resolver {
    struct vs_dest_resolver_opts o;
    struct vs_vm *vm;
    struct vs_incoming_session session;
    char source[96];                /* the source's RESOLVE endpoint ("" if none) */
    pthread_mutex_t lock;
    uint32_t state;                 /* VS_OUTCOME_DST_*: in doubt -> running | discarded */
    atomic_bool stop;
    pthread_t thread;
};

static void set_state(struct vs_dest_resolver *r, uint32_t state, const char *why)
{
    r->state = state;
    r->o.stats->status = state == VS_OUTCOME_DST_RUNNING ? "completed" : "discarded";
    vs_log(state == VS_OUTCOME_DST_RUNNING ? VS_LOG_INFO : VS_LOG_ERROR, "%s: the VM %s", why,
           state == VS_OUTCOME_DST_RUNNING ? "runs here now" : "copy here is discarded");
    if (state == VS_OUTCOME_DST_DISCARDED)
        __atomic_store_n(r->o.quit, true, __ATOMIC_RELEASE);
}

/* The source granted the VM, or is provably gone: run the copy. */
static uint32_t take(struct vs_dest_resolver *r, const char *why)
{
    pthread_mutex_lock(&r->lock);
    if (r->state == VS_OUTCOME_DST_IN_DOUBT) {
        vs_info("%s: starting its vCPUs here", why);   /* the operator's evidence */
        if (vs_vm_resume(r->vm) == 0) {
            vs_report_note_resume(r->o.stats, vs_clock_ns());
            set_state(r, VS_OUTCOME_DST_RUNNING, why);
        }
        else
            vs_log(VS_LOG_ERROR, "%s, but the VM cannot resume: %s", why, vs_last_error());
    }
    uint32_t s = r->state;
    pthread_mutex_unlock(&r->lock);
    return s;
}

int vs_dest_probe_source(const struct vs_incoming_session *session, struct vs_tls *tls,
                         int timeout_ms, char *addr, size_t addr_size)
{
    snprintf(addr, addr_size, "%s", session->source);
    if (!session->resolve_port)
        return vs_fail(ENOTSUP, "the source (stream version 2.0 or 2.1) has no RESOLVE "
                       "endpoint");
    vs_resolve_endpoint(session->source, session->resolve_port, addr, addr_size);
    struct vs_resolve_conn c;
    uint32_t theirs = 0;
    struct vs_dialer dialer;
    vs_dialer_tcp_tls(&dialer, tls, NULL);
    int rc = vs_resolve_call(addr, &dialer, timeout_ms, session->id, VS_OUTCOME_DST_DISCARDED,
                             &theirs, &c);
    if (rc == -ECONNREFUSED)
        return 1;
    if (rc)
        return rc;
    vs_resolve_close(&c);
    return theirs == VS_OUTCOME_UNKNOWN ? 1 : 0;
}

/* The source keeps the VM: this copy must never run. */
static uint32_t discard(struct vs_dest_resolver *r, const char *why)
{
    pthread_mutex_lock(&r->lock);
    if (r->state == VS_OUTCOME_DST_IN_DOUBT) {
        vs_vm_block_resume(r->vm, "the source kept the VM: this copy is discarded");
        /* The operator may have resumed it a moment ago: then it is too late. */
        set_state(r, vs_vm_is_running(r->vm) ? VS_OUTCOME_DST_RUNNING : VS_OUTCOME_DST_DISCARDED,
                  why);
    }
    uint32_t s = r->state;
    pthread_mutex_unlock(&r->lock);
    return s;
}

uint32_t vs_dest_resolver_state(struct vs_dest_resolver *r)
{
    pthread_mutex_lock(&r->lock);
    /* `vmshift ctl resume` by the operator settles it too. */
    if (r->state == VS_OUTCOME_DST_IN_DOUBT && vs_vm_is_running(r->vm))
        set_state(r, VS_OUTCOME_DST_RUNNING, "the operator resumed the VM");
    uint32_t s = r->state;
    pthread_mutex_unlock(&r->lock);
    return s;
}

void vs_dest_resolve_answer(struct vs_resolve_conn *c, const uint8_t *session, uint32_t said,
                            uint32_t (*decide)(void *ctx, uint32_t said), void *ctx)
{
    for (;;) {
        uint32_t mine = decide(ctx, said);
        vs_info("RESOLVE from the source: it is %s, we are %s", vs_outcome_name(said),
                vs_outcome_name(mine));
        /* A committed source grants on the same connection when we say we are in doubt. */
        if (vs_resolve_send(&c->w, session, mine) || mine != VS_OUTCOME_DST_IN_DOUBT ||
            said != VS_OUTCOME_SRC_COMMITTED || vs_resolve_read(&c->r, session, &said))
            break;
    }
}

/* What the source's state means for a pre-copy copy here. */
static uint32_t decide(void *arg, uint32_t said)
{
    struct vs_dest_resolver *r = arg;
    if (said == VS_OUTCOME_UNKNOWN)
        return VS_OUTCOME_UNKNOWN;
    if (said == VS_OUTCOME_SRC_GRANTED)
        return take(r, "the source granted the VM");
    if (said == VS_OUTCOME_SRC_ABORTED)
        return discard(r, "the source kept the VM");
    return vs_dest_resolver_state(r);
}

/* The source called: it tells its outcome, we act on it and answer with our state. */
static void answer(struct vs_dest_resolver *r, struct vs_channel *ch)
{
    struct vs_resolve_conn c;
    uint32_t said;
    char peer[sizeof(ch->peer)];
    snprintf(peer, sizeof(peer), "%s", ch->peer);
    if (vs_resolve_accept(ch, 2000, r->session.id, &said, &c)) {   /* closed ch */
        vs_warn("dropped a connection from %s: %s", peer, vs_last_error());
        return;
    }
    vs_dest_resolve_answer(&c, r->session.id, said, decide, r);
    vs_resolve_close(&c);
}

/* Ask the source. */
static void ask(struct vs_dest_resolver *r, uint64_t attempt)
{
    vs_fault_point("dst.in_doubt", attempt, NULL);
    struct vs_resolve_conn c;
    uint32_t src = 0;
    struct vs_dialer dialer;
    vs_dialer_tcp_tls(&dialer, r->o.tls, NULL);
    int rc = vs_resolve_call(r->source, &dialer, 2000, r->session.id, VS_OUTCOME_DST_IN_DOUBT,
                             &src, &c);
    if (rc == -ECONNREFUSED) {
        take(r, "nothing listens at the source's RESOLVE endpoint any more: the source "
             "process is gone, and its copy with it");
        return;
    }
    if (rc) {
        vs_info("in doubt: cannot reach the source yet: %s", vs_last_error());
        return;
    }
    uint32_t mine = VS_OUTCOME_DST_IN_DOUBT;
    if (src == VS_OUTCOME_SRC_GRANTED)
        mine = take(r, "the source granted the VM");
    else if (src == VS_OUTCOME_SRC_ABORTED)
        mine = discard(r, "the source kept the VM");
    else if (src == VS_OUTCOME_UNKNOWN)
        mine = take(r, "the process at the source's RESOLVE endpoint knows no such "
                    "migration: the source process is gone");
    if (mine != VS_OUTCOME_DST_IN_DOUBT)
        vs_resolve_send(&c.w, r->session.id, mine);   /* best effort: it may ask again */
    vs_resolve_close(&c);
}

static void *resolver_thread(void *arg)
{
    struct vs_dest_resolver *r = arg;
    uint64_t next_ask = 0, attempt = 0;
    unsigned backoff_ms = 100;
    while (!atomic_load(&r->stop)) {
        struct vs_channel *ch;
        if (r->o.accept(r->o.accept_ctx, 1, 20, &ch) == 0)   /* admitted (TLS); short: quit waits */
            answer(r, ch);
        if (vs_dest_resolver_state(r) == VS_OUTCOME_DST_IN_DOUBT && r->source[0] &&
            vs_clock_ns() >= next_ask) {
            ask(r, attempt++);
            next_ask = vs_clock_ns() + (uint64_t)backoff_ms * 1000000;
            backoff_ms = backoff_ms < 1000 ? backoff_ms * 2 : 1000;
        }
    }
    return NULL;
}

int vs_dest_resolver_start(struct vs_dest_resolver **out, const struct vs_dest_resolver_opts *o,
                           struct vs_vm *vm, const struct vs_incoming_session *session)
{
    struct vs_dest_resolver *r = calloc(1, sizeof(*r));
    if (!r)
        return vs_fail(ENOMEM, "out of memory for the outcome resolver");
    r->o = *o;
    r->vm = vm;
    r->session = *session;
    r->state = o->in_doubt ? VS_OUTCOME_DST_IN_DOUBT : VS_OUTCOME_DST_RUNNING;
    if (session->resolve_port)
        vs_resolve_endpoint(session->source, session->resolve_port, r->source,
                            sizeof(r->source));
    else if (o->in_doubt)
        vs_warn("the source (stream version 2.0 or 2.1) has no RESOLVE endpoint: only the "
                "operator can settle this in-doubt VM");
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->stop, false);
    int err = pthread_create(&r->thread, NULL, resolver_thread, r);
    if (err) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return vs_fail(err, "cannot start the outcome resolver: %s", strerror(err));
    }
    *out = r;
    return 0;
}

void vs_dest_resolver_stop(struct vs_dest_resolver *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
