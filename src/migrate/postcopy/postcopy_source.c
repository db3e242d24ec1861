/* Post-copy, source side. After the switch the source is paused for good and holds the
 * only copy of the pages the destination lacks (to_send). Each page leaves exactly once:
 * whoever clears its bit in to_send sends it — a background thread per stream walking RAM
 * in 16 MiB units, or the migration thread answering a PAGE_REQUEST on stream 0, which
 * carries no background batches when there are two streams or more (an urgent page never
 * waits behind them). A lost connection parks everything until vs_migration_resume(); the
 * destination then says which pages it still lacks and only those are sent again. */
#include "migrate/postcopy/postcopy_source.h"
#include "migrate/precopy/page_bitmap.h"
#include "migrate/precopy/source_internal.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "transport/tls.h"

#include <stdlib.h>
#include <string.h>

#define LIVENESS_MS 5000   /* a silent dead peer is noticed after about this */

struct vs_postcopy_source {
    struct vs_migration *m;
    uint64_t npages;
    uint64_t *to_send;              /* pages not sent yet: the bit's taker sends the page */
    uint64_t *scratch;              /* a resume's bitmap before it is trusted */
    atomic_uint_fast64_t left;      /* bits still set in to_send */
    atomic_uint_fast64_t next_unit; /* background: next 16 MiB unit to claim */
    atomic_uint bg_done;            /* background threads finished this session */
    atomic_bool failed;             /* this session is over (error or lost link) */
    pthread_mutex_t w0_lock;        /* stream 0's writer: answers, END (and background with
                                       one stream) */
    uint64_t stream0_pages;         /* pages sent on stream 0 this session (w0_lock) */
    unsigned first_bg, nr_bg;       /* background streams: 1..n-1, or 0 alone */
    pthread_t bg[VS_WIRE_MAX_STREAMS];
    bool bg_started[VS_WIRE_MAX_STREAMS];
    uint64_t bg_sent[VS_WIRE_MAX_STREAMS];
    uint64_t gpa[VS_WIRE_MAX_PAGES];    /* a request being answered */
    /* Resume (m->lock). */
    pthread_cond_t cv;
    bool resume_requested, abandon;
    char resume_to[sizeof(((struct vs_migration_opts *)0)->to)];
};

static void stats_add(struct vs_migration *m, uint64_t *field, uint64_t v)
{
    pthread_mutex_lock(&m->lock);
    *field += v;
    m->stats.remaining_bytes = atomic_load(&m->pc->left) * VS_WIRE_PAGE_SIZE;
    pthread_mutex_unlock(&m->lock);
}

int vs_postcopy_switch(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    const char *status = m->stats.status;
    bool ok = m->postcopy_ok, pre = !strcmp(status, "active");
    pthread_mutex_unlock(&m->lock);
    if (atomic_load(&m->postcopy_request) && (pre || m->pc))
        return 0;
    if (!pre)
        return vs_fail(EBUSY, "post-copy can start only while pre-copy runs; this migration "
                       "is %s", status);
    if (!ok)
        return vs_fail(EPROTONOSUPPORT, "the destination %s did not agree to post-copy "
                       "(HELLO features): upgrade it, or let pre-copy finish", m->opts.to);
    atomic_store(&m->postcopy_request, true);
    vs_info("migration to %s: post-copy requested; switching at the end of this pass",
            m->opts.to);
    return 0;
}

int vs_postcopy_take_over(struct vs_migration *m, const char *why)
{
    if (!m->postcopy_ok)
        return vs_fail(ENOTSUP, "%s, but the destination %s cannot run post-copy (it did not "
                       "agree to it in the handshake); upgrade it, or use --converge throttle",
                       why, m->opts.to);
    vs_info("%s: switching to post-copy", why);
    atomic_store(&m->postcopy_request, true);
    return 0;
}

int vs_postcopy_prepare(struct vs_migration *m)
{
    if (!atomic_load(&m->postcopy_request) || !m->postcopy_ok)
        return 0;
    struct vs_postcopy_source *pc = calloc(1, sizeof(*pc));
    uint64_t npages = m->vm->mem.size / VS_WIRE_PAGE_SIZE;
    if (pc) {
        pc->to_send = calloc(vs_page_bitmap_words(npages), 8);
        pc->scratch = calloc(vs_page_bitmap_words(npages), 8);
    }
    if (!pc || !pc->to_send || !pc->scratch) {
        if (pc) {
            free(pc->to_send);
            free(pc->scratch);
        }
        free(pc);
        return vs_fail(ENOMEM, "out of memory for the post-copy page maps");
    }
    pc->m = m;
    pc->npages = npages;
    pthread_mutex_init(&pc->w0_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pc->cv, &ca);
    pthread_condattr_destroy(&ca);
    pc->nr_bg = m->nr_streams > 1 ? m->nr_streams - 1 : 1;
    pc->first_bg = m->nr_streams > 1 ? 1 : 0;
    pthread_mutex_lock(&m->lock);
    m->pc = pc;
    m->stats.postcopy.active = true;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int vs_postcopy_start(struct vs_migration *m, uint32_t pass, uint64_t pause_ns)
{
    struct vs_postcopy_source *pc = m->pc;
    struct vs_dirty *d = &m->dirty;
    /* Never-written pages are zero on both sides: the destination maps zeros for them. */
    vs_memory_drop_holes(&m->vm->mem, d->bitmap, 0, d->npages);
    memcpy(pc->to_send, d->bitmap, vs_page_bitmap_words(pc->npages) * 8);
    uint64_t missing = vs_page_bitmap_count(pc->to_send, pc->npages);
    vs_digest_tracker_skip_pages(m->digest, pc->to_send);   /* not compared: less downtime */
    atomic_store(&pc->left, missing);
    pthread_mutex_lock(&m->lock);
    m->stats.postcopy.at_ns = pause_ns - m->stats.start_ns;
    m->stats.postcopy.missing_pages = missing;
    pthread_mutex_unlock(&m->lock);
    vs_info("post-copy: the source is paused; %llu pages (%.1f MiB) will follow the VM",
            (unsigned long long)missing, (double)missing * VS_WIRE_PAGE_SIZE / 1048576.0);
    /* Every stream ends pre-copy with an empty final pass. */
    for (unsigned i = 0; i < m->nr_streams; i++) {
        struct vs_wire_pass_end pe = { .pass = pass, .final = 1 };
        int rc = vs_wire_send(&m->streams[i].w, VS_REC_PASS_END, &pe, sizeof(pe));
        if (rc)
            return rc;
    }
    struct vs_wire_postcopy_start ps = { .pause_ns = pause_ns, .missing_pages = missing,
                                         .pass = pass };
    return vs_wire_send_parts(m->w, VS_REC_POSTCOPY_START, &ps, sizeof(ps), pc->to_send,
                              vs_page_bitmap_words(pc->npages) * 8);
}

int vs_postcopy_send_digests(struct vs_migration *m, const struct vs_wire_digest *dg)
{
    uint64_t nblocks;
    const uint64_t *blocks = vs_digest_tracker_blocks(m->digest, &nblocks);
    struct vs_wire_postcopy_digests pd = { .vcpu_xxh3 = dg->vcpu_xxh3,
                                           .machine_xxh3 = dg->machine_xxh3,
                                           .nblocks = nblocks };
    return vs_wire_send_parts(m->w, VS_REC_POSTCOPY_DIGESTS, &pd, sizeof(pd), blocks,
                              nblocks * 8);
}

/* ---- Sending pages ---- */

struct batch {
    uint64_t data[VS_WIRE_MAX_PAGES], zero[VS_WIRE_MAX_PAGES], list[VS_WIRE_MAX_PAGES];
    uint32_t ndata, nzero;
};

static void batch_add(struct batch *b, const uint8_t *ram, uint64_t gpa)
{
    if (vs_page_is_zero(ram + gpa))
        b->zero[b->nzero++] = gpa;
    else
        b->data[b->ndata++] = gpa;
}

/* Send the batch on stream i as one POSTCOPY_PAGES (under w0_lock for stream 0). */
static int batch_flush(struct vs_postcopy_source *pc, unsigned i, struct batch *b, bool urgent)
{
    uint32_t count = b->ndata + b->nzero;
    if (!count)
        return 0;
    struct vs_migration *m = pc->m;
    struct vs_send_stream *s = &m->streams[i];
    memcpy(b->list, b->data, b->ndata * sizeof(uint64_t));
    memcpy(b->list + b->ndata, b->zero, b->nzero * sizeof(uint64_t));
    if (i == 0)
        pthread_mutex_lock(&pc->w0_lock);
    uint64_t b0 = vs_channel_sent(s->ch);
    int rc = vs_wire_send_postcopy_pages(&s->w, m->vm->mem.base, b->list, count, b->nzero,
                                         urgent);
    uint64_t bytes = vs_channel_sent(s->ch) - b0;
    if (!rc && i == 0)
        pc->stream0_pages += count;
    if (i == 0)
        pthread_mutex_unlock(&pc->w0_lock);
    if (rc)
        return rc;
    pc->bg_sent[i] += urgent ? 0 : count;
    struct vs_postcopy_stats *st = &m->stats.postcopy;
    atomic_fetch_sub(&pc->left, count);
    stats_add(m, urgent ? &st->urgent_bytes : &st->background_bytes, bytes);
    stats_add(m, urgent ? &st->urgent_pages : &st->background_pages, count);
    b->ndata = b->nzero = 0;
    return 0;
}

static int send_end(struct vs_postcopy_source *pc, unsigned i, uint64_t pages)
{
    struct vs_wire_postcopy_end e = { .pages = pages };
    return vs_wire_send(&pc->m->streams[i].w, VS_REC_POSTCOPY_END, &e, sizeof(e));
}

static int background(struct vs_postcopy_source *pc, unsigned i, struct batch *b)
{
    const uint8_t *ram = pc->m->vm->mem.base;
    int rc = 0;
    while (!rc && !atomic_load(&pc->failed)) {
        uint64_t first = atomic_fetch_add(&pc->next_unit, 1) * VS_SEND_UNIT_PAGES;
        if (first >= pc->npages)
            break;
        uint64_t end = first + VS_SEND_UNIT_PAGES < pc->npages ? first + VS_SEND_UNIT_PAGES
                                                               : pc->npages;
        for (uint64_t p = first; p < end && !rc; p++) {
            if (!(p % 64) && !__atomic_load_n(&pc->to_send[p / 64], __ATOMIC_RELAXED)) {
                p += 63;
                continue;
            }
            if (vs_page_bit_take(pc->to_send, p)) {
                batch_add(b, ram, p * VS_WIRE_PAGE_SIZE);
                if (b->ndata + b->nzero == VS_WIRE_MAX_PAGES)
                    rc = batch_flush(pc, i, b, false);
            }
        }
    }
    if (!rc)
        rc = batch_flush(pc, i, b, false);
    if (rc || atomic_load(&pc->failed))
        return rc;
    if (i != 0 && (rc = send_end(pc, i, pc->bg_sent[i])))
        return rc;
    if (atomic_fetch_add(&pc->bg_done, 1) + 1 == pc->nr_bg) {
        /* The last one: nothing is left to send, so stream 0 ends too. */
        pthread_mutex_lock(&pc->w0_lock);
        rc = send_end(pc, 0, pc->stream0_pages);
        pthread_mutex_unlock(&pc->w0_lock);
    }
    return rc;
}

struct bg_arg {
    struct vs_postcopy_source *pc;
    unsigned index;
};

static void *bg_thread(void *arg)
{
    struct bg_arg *a = arg;
    struct vs_postcopy_source *pc = a->pc;
    unsigned i = a->index;
    free(a);
    struct batch *b = calloc(1, sizeof(*b));
    int rc = b ? background(pc, i, b) : vs_fail(ENOMEM, "out of memory for a page batch");
    free(b);
    if (rc && !atomic_exchange(&pc->failed, true)) {
        vs_warn("post-copy: stream %u: %s", i, vs_last_error());
        for (unsigned k = 0; k < pc->m->nr_streams; k++)   /* wake the reader of stream 0 */
            vs_channel_shutdown(pc->m->streams[k].ch);
    }
    return NULL;
}

/* A PAGE_REQUEST: send at once what is still unsent (the rest is on its way). */
static int answer(struct vs_postcopy_source *pc, const struct vs_wire_header *h)
{
    struct vs_migration *m = pc->m;
    struct vs_wire_page_request req;
    int rc = vs_wire_read_page_request(&m->r, h, m->vm->mem.size, &req, pc->gpa);
    if (rc)
        return rc;
    stats_add(m, &m->stats.postcopy.requested_pages, req.count);
    struct batch *b = calloc(1, sizeof(*b));
    if (!b)
        return vs_fail(ENOMEM, "out of memory for a page batch");
    for (uint32_t k = 0; k < req.count; k++)
        if (vs_page_bit_take(pc->to_send, pc->gpa[k] / VS_WIRE_PAGE_SIZE))
            batch_add(b, m->vm->mem.base, pc->gpa[k]);
    rc = batch_flush(pc, 0, b, true);
    free(b);
    return rc;
}

/* The destination's POSTCOPY_END: every page is there. */
static int finished(struct vs_postcopy_source *pc, const struct vs_wire_header *h)
{
    struct vs_migration *m = pc->m;
    struct vs_wire_postcopy_end e;
    int rc = vs_wire_read_fixed(&m->r, h, VS_REC_POSTCOPY_END, &e, sizeof(e));
    if (rc)
        return rc;
    pthread_mutex_lock(&m->lock);
    struct vs_postcopy_stats *st = &m->stats.postcopy;
    bool match = e.pages == st->missing_pages;
    st->faults = e.faults;
    st->fault_wait_ns = e.fault_wait_ns;
    st->fault_wait_max_ns = e.fault_wait_max_ns;
    st->verified_present = match;
    pthread_mutex_unlock(&m->lock);
    if (!match)
        return vs_fail(EPROTO, "post-copy: the destination says %llu pages arrived, but %llu "
                       "were missing", (unsigned long long)e.pages,
                       (unsigned long long)st->missing_pages);
    return 1;
}

/* One connected session: background threads plus answering requests on stream 0, until
 * the destination says it has every page (0) or something breaks (< 0). */
static int session(struct vs_postcopy_source *pc)
{
    struct vs_migration *m = pc->m;
    atomic_store(&pc->failed, false);
    atomic_store(&pc->next_unit, 0);
    atomic_store(&pc->bg_done, 0);
    pc->stream0_pages = 0;
    memset(pc->bg_sent, 0, sizeof(pc->bg_sent));
    int rc = 0;
    for (unsigned i = 0; i < m->nr_streams && !rc; i++)
        rc = vs_channel_set_liveness(m->streams[i].ch, LIVENESS_MS);
    for (unsigned k = 0; k < pc->nr_bg && !rc; k++) {
        struct bg_arg *a = malloc(sizeof(*a));
        if (!a)
            return vs_fail(ENOMEM, "out of memory starting post-copy");
        *a = (struct bg_arg){ pc, pc->first_bg + k };
        int err = pthread_create(&pc->bg[k], NULL, bg_thread, a);
        if (err) {
            free(a);
            rc = vs_fail(err, "cannot start a post-copy thread: %s", strerror(err));
        }
        pc->bg_started[k] = !err;
    }
    while (!rc) {
        struct vs_wire_header h;
        if ((rc = vs_wire_read_header(&m->r, &h)))
            break;
        if (h.type == VS_REC_PAGE_REQUEST)
            rc = answer(pc, &h);
        else if (h.type == VS_REC_POSTCOPY_END)
            rc = finished(pc, &h);
        else
            rc = vs_fail(EPROTO, "post-copy: record #%llu (%s) from the destination is not "
                         "allowed now", (unsigned long long)h.seq, vs_wire_type_name(h.type));
    }
    if (rc < 0 && !atomic_exchange(&pc->failed, true))
        for (unsigned i = 0; i < m->nr_streams; i++)
            vs_channel_shutdown(m->streams[i].ch);
    for (unsigned k = 0; k < pc->nr_bg; k++)
        if (pc->bg_started[k])
            pthread_join(pc->bg[k], NULL);
    memset(pc->bg_started, 0, sizeof(pc->bg_started));
    return rc < 0 ? rc : 0;
}

/* ---- Losing the connection and resuming ---- */

static int wait_for_resume(struct vs_postcopy_source *pc, char *to, size_t len)
{
    struct vs_migration *m = pc->m;
    pthread_mutex_lock(&m->lock);
    while (!pc->resume_requested && !pc->abandon)
        pthread_cond_wait(&pc->cv, &m->lock);
    bool abandon = pc->abandon;
    pc->resume_requested = false;
    snprintf(to, len, "%s", pc->resume_to[0] ? pc->resume_to : m->opts.to);
    if (!abandon) {
        snprintf(m->opts.to, sizeof(m->opts.to), "%s", to);
        snprintf(m->stats.peer, sizeof(m->stats.peer), "%s", to);
    }
    pthread_mutex_unlock(&m->lock);
    return abandon ? vs_fail(ECANCELED, "the source quit during post-copy with %llu pages "
                             "not yet at the destination: the VM there cannot complete",
                             (unsigned long long)atomic_load(&pc->left)) : 0;
}

/* Connect streams [first, first + n) to `to`, secure them as the first connection was
 * (their TLS handshakes in parallel; nothing with --insecure), and make them the streams'
 * channels, closing the lost ones. */
static int reconnect_streams(struct vs_migration *m, const char *to, unsigned first, unsigned n)
{
    struct vs_channel *chs[VS_WIRE_MAX_STREAMS] = { NULL };
    struct vs_tls_result res[VS_WIRE_MAX_STREAMS];
    int rc = 0;
    for (unsigned i = 0; i < n && !rc; i++)
        if ((rc = vs_dialer_connect(&m->dialer, to, m->opts.timeout_ms, &chs[i])))
            rc = vs_fail_context(rc, "post-copy resume: stream %u to %s", first + i, to);
    if (!rc)
        vs_dialer_secure(&m->dialer, chs, n, m->opts.timeout_ms, res);
    for (unsigned i = 0; i < n && !rc; i++)
        if (res[i].err)
            rc = vs_fail(res[i].err, "post-copy resume: stream %u to %s: %s", first + i, to,
                         res[i].error);
    for (unsigned i = 0; i < n; i++) {
        struct vs_send_stream *s = &m->streams[first + i];
        pthread_mutex_lock(&m->lock);
        struct vs_channel *old = s->ch;
        if (old)
            m->closed_bytes += vs_channel_sent(old);
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
static int reconnect(struct vs_postcopy_source *pc, const char *to)
{
    struct vs_migration *m = pc->m;
    int rc = reconnect_streams(m, to, 0, 1);
    if (rc)
        return rc;
    vs_wire_reader_destroy(&m->r);
    vs_wire_reader_init(&m->r, m->ch);
    m->r.postcopy = true;
    struct vs_wire_postcopy_resume rq = { .nr_streams = m->nr_streams };
    memcpy(rq.session, m->session, sizeof(rq.session));
    rc = vs_wire_send(m->w, VS_REC_POSTCOPY_RESUME, &rq, sizeof(rq));
    if (!rc && m->nr_streams > 1)
        rc = reconnect_streams(m, to, 1, m->nr_streams - 1);
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

int vs_postcopy_source_serve(struct vs_migration *m)
{
    struct vs_postcopy_source *pc = m->pc;
    uint64_t t0 = vs_clock_ns();
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    if (m->unconfirmed) {       /* COMMIT or RESUMED was lost: the link is gone */
        m->unconfirmed = false;
        rc = -EPIPE;
        vs_fail(EPIPE, "%s", m->stats.error);
    }
    pthread_mutex_unlock(&m->lock);
    for (;;) {
        if (!rc) {
            vs_source_set_status(m, "postcopy-active");
            if (!(rc = session(pc)))
                break;
        }
        set_error(m, "post-copy paused: ");
        vs_log(VS_LOG_ERROR, "post-copy to %s lost its connection (%s); the source keeps its "
               "paused copy; resume with `vmshift ctl SOCKET resume-migration [to=HOST:PORT]`",
               m->opts.to, vs_last_error());
        vs_source_set_status(m, "postcopy-paused");
        char to[sizeof(m->opts.to)];
        if ((rc = wait_for_resume(pc, to, sizeof(to)))) {
            set_error(m, "");
            vs_log(VS_LOG_ERROR, "%s", vs_last_error());
            return rc;
        }
        vs_source_set_status(m, "postcopy-recover");
        if (!(rc = reconnect(pc, to))) {
            pthread_mutex_lock(&m->lock);
            m->stats.postcopy.resumes++;
            m->stats.error[0] = '\0';
            pthread_mutex_unlock(&m->lock);
        }
    }
    pthread_mutex_lock(&m->lock);
    m->stats.postcopy.time_ns = vs_clock_ns() - t0;
    m->stats.remaining_bytes = 0;
    pthread_mutex_unlock(&m->lock);
    vs_info("post-copy complete: every page is at the destination");
    return 0;
}

int vs_migration_resume(struct vs_migration *m, const char *to)
{
    pthread_mutex_lock(&m->lock);
    struct vs_postcopy_source *pc = m->pc;
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
    struct vs_postcopy_source *pc = m->pc;
    if (pc) {
        pc->abandon = true;
        pthread_cond_broadcast(&pc->cv);
    }
    pthread_mutex_unlock(&m->lock);
}

void vs_postcopy_source_free(struct vs_migration *m)
{
    struct vs_postcopy_source *pc = m->pc;
    if (!pc)
        return;
    m->pc = NULL;
    pthread_mutex_destroy(&pc->w0_lock);
    pthread_cond_destroy(&pc->cv);
    free(pc->to_send);
    free(pc->scratch);
    free(pc);
}
