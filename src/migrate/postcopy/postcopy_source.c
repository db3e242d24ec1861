/* Post-copy, source side. After the switch the source is paused for good and holds the
 * only copy of the pages the destination lacks (to_send). Each page leaves exactly once:
 * whoever clears its bit in to_send sends it — a background thread per stream walking RAM
 * in 16 MiB units, or the migration thread answering a PAGE_REQUEST on stream 0, which
 * carries no background batches when there are two streams or more (an urgent page never
 * waits behind them). A lost connection parks everything; the source reconnects by itself
 * (or at once, perhaps elsewhere, on vs_migration_resume()); the destination then says
 * which pages it still lacks and only those are sent again. */
#include "migrate/postcopy/postcopy_source.h"
#include "migrate/postcopy/postcopy_source_internal.h"
#include "migrate/precopy/page_bitmap.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

#define LIVENESS_MS 5000   /* a silent dead peer is noticed after about this */


static void stats_add(struct vs_migration *m, uint64_t *field, uint64_t v)
{
    pthread_mutex_lock(&m->lock);
    *field += v;
    m->stats.remaining_bytes = atomic_load(&m->post.engine->left) * VS_WIRE_PAGE_SIZE;
    pthread_mutex_unlock(&m->lock);
}

int vs_postcopy_switch(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    const char *status = m->stats.status;
    bool ok = m->post.agreed, pre = !strcmp(status, "active");
    pthread_mutex_unlock(&m->lock);
    if (atomic_load(&m->post.requested) && (pre || m->post.engine))
        return 0;
    if (!pre)
        return vs_fail(EBUSY, "post-copy can start only while pre-copy runs; this migration "
                       "is %s", status);
    if (!ok)
        return vs_fail(EPROTONOSUPPORT, "the destination %s did not agree to post-copy "
                       "(HELLO features): upgrade it, or let pre-copy finish", m->opts.to);
    atomic_store(&m->post.requested, true);
    vs_info("migration to %s: post-copy requested; switching at the end of this pass",
            m->opts.to);
    return 0;
}

int vs_postcopy_take_over(struct vs_migration *m, const char *why)
{
    if (!m->post.agreed)
        return vs_fail(ENOTSUP, "%s, but the destination %s cannot run post-copy (it did not "
                       "agree to it in the handshake); upgrade it, or use --converge throttle",
                       why, m->opts.to);
    vs_info("%s: switching to post-copy", why);
    atomic_store(&m->post.requested, true);
    return 0;
}

int vs_postcopy_prepare(struct vs_migration *m)
{
    if (!atomic_load(&m->post.requested) || !m->post.agreed)
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
    m->post.engine = pc;
    m->stats.postcopy.active = true;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int vs_postcopy_start(struct vs_migration *m, uint32_t pass, uint64_t pause_ns)
{
    struct vs_postcopy_source *pc = m->post.engine;
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

int vs_postcopy_source_serve(struct vs_migration *m)
{
    struct vs_postcopy_source *pc = m->post.engine;
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
        if ((rc = vs_postcopy_recover(pc, true)))
            return rc;
    }
    pthread_mutex_lock(&m->lock);
    m->stats.postcopy.time_ns = vs_clock_ns() - t0;
    m->stats.remaining_bytes = 0;
    pthread_mutex_unlock(&m->lock);
    vs_info("post-copy complete: every page is at the destination");
    return 0;
}

void vs_postcopy_source_free(struct vs_migration *m)
{
    struct vs_postcopy_source *pc = m->post.engine;
    if (!pc)
        return;
    m->post.engine = NULL;
    pthread_mutex_destroy(&pc->w0_lock);
    pthread_cond_destroy(&pc->cv);
    free(pc->to_send);
    free(pc->scratch);
    free(pc);
}
