/* Sending pages over parallel streams: one thread per connection. In each pass the
 * threads claim 16 MiB units of guest RAM from a shared counter, so no stream waits for
 * another; per unit a thread re-arms dirty tracking, then reads and sends the pending
 * pages (zero pages as addresses only, data straight from guest RAM or compressed), and at
 * the end of the pass it sends PASS_END on its own stream. */
#include "migrate/precopy/source_internal.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

static bool stopping(struct vs_migration *m)
{
    return atomic_load(&m->cancel) || atomic_load(&m->stream_failed);
}

/* Is this 4 KiB page all zero? Random data answers on the first word. */
bool vs_page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    for (unsigned i = 0; i < 512; i += 8)
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
            return false;
    return true;
}

/* --max-bandwidth: all streams draw on one budget; sleep, in slices that notice a
 * cancel, until the bytes sent so far are due. */
static int throttle(struct vs_migration *m, uint64_t bytes)
{
    if (!m->cap.on || !m->opts.max_bandwidth)
        return 0;
    uint64_t sent = atomic_fetch_add(&m->cap.bytes, bytes) + bytes;
    uint64_t due_ns = (uint64_t)((double)sent * 1e9 / (double)m->opts.max_bandwidth);
    for (;;) {
        uint64_t elapsed = vs_clock_ns() - m->cap.start_ns;
        if (elapsed >= due_ns)
            return 0;
        if (stopping(m))
            return vs_fail(ECANCELED, "the migration is stopping");
        uint64_t wait = due_ns - elapsed;
        vs_sleep_ns(wait < 20000000ULL ? wait : 20000000ULL);
    }
}

int vs_send_streams_throttle(struct vs_migration *m, uint64_t bytes)
{
    return throttle(m, bytes);
}

/* Compress the batch; 1 if it went out as CPAGES, 0 if compression did not shrink it
 * (then the gathered copy goes out raw), <0 on error. */
static int send_compressed(struct vs_send_stream *s, const uint8_t *ram, uint32_t pass,
                           uint64_t *comp_ns)
{
    uint64_t t0 = vs_clock_ns();
    int rc = vs_wire_gather(&s->w, ram, s->data, s->ndata);
    size_t raw = (size_t)s->ndata * VS_WIRE_PAGE_SIZE, clen = 0;
    if (!rc)
        rc = vs_codec_compress(s->codec, s->w.page_buf, raw, s->cbuf, s->cbuf_cap, &clen);
    *comp_ns = vs_clock_ns() - t0;
    if (rc)
        return rc;
    if (clen >= raw)
        return vs_wire_send_gathered(&s->w, s->data, s->ndata, pass);
    if ((rc = vs_wire_send_cpages(&s->w, s->data, s->ndata, pass, s->codec_id, s->cbuf, clen)))
        return rc;
    s->compressed_pages += s->ndata;
    s->compressed_raw += raw;
    s->compressed_wire += clen;
    return 1;
}

static int flush_data(struct vs_send_stream *s, uint32_t pass, bool final)
{
    if (!s->ndata)
        return 0;
    struct vs_migration *m = s->m;
    const uint8_t *ram = m->vm->mem.base;
    uint64_t b0 = vs_channel_sent(s->ch), comp_ns = 0;
    bool compress = s->codec && (!s->auto_compress || vs_codec_auto_decide(&s->autoc));
    int rc;
    if (compress)
        rc = send_compressed(s, ram, pass, &comp_ns);
    else
        /* Straight from guest RAM; the data is checksummed only when the guest is paused
         * (final pass), otherwise the end-to-end digest covers it. */
        rc = vs_wire_send_pages_direct(&s->w, ram, s->data, s->ndata, pass, final);
    if (rc < 0)
        return rc;
    uint64_t wire = vs_channel_sent(s->ch) - b0;
    if (s->auto_compress) {
        /* The link's speed comes from TCP (how fast the peer receives), not from how long
         * the write took: a socket buffer with room takes data at memory speed. */
        vs_codec_auto_feed(&s->autoc, (size_t)s->ndata * VS_WIRE_PAGE_SIZE, wire, 0, comp_ns);
        vs_codec_auto_feed_link(&s->autoc, vs_channel_link_rate(s->ch));
    }
    s->ps.sent_pages += s->ndata;
    s->ndata = 0;
    return throttle(m, wire);
}

static int flush_zero(struct vs_send_stream *s, uint32_t pass)
{
    if (!s->nzero)
        return 0;
    uint64_t b0 = vs_channel_sent(s->ch);
    int rc = vs_wire_send_zero_pages(&s->w, s->zero, s->nzero, pass);
    s->ps.zero_pages += s->nzero;
    s->nzero = 0;
    return rc ? rc : throttle(s->m, vs_channel_sent(s->ch) - b0);
}

/* One unit [first, end): re-arm tracking, then send what is pending. */
static int send_unit(struct vs_send_stream *s, uint64_t first, uint64_t end, uint32_t pass,
                     bool final)
{
    struct vs_migration *m = s->m;
    struct vs_dirty *d = &m->dirty;
    const uint8_t *ram = m->vm->mem.base;
    bool any = false;
    for (uint64_t w = first / 64; w < (end + 63) / 64 && !any; w++)
        any = d->bitmap[w] != 0;
    if (!any)
        return 0;
    int rc = vs_dirty_clear(d, first, end - first);
    if (rc)
        return rc;
    if (pass == 0) {
        /* The destination starts from zeroed RAM: never-written pages need no bytes, and
         * reading them would only allocate them here. Checked after re-arming the dirty
         * log, so a write from now on is caught by the next pass. */
        uint64_t skipped = vs_memory_drop_holes(&m->vm->mem, d->bitmap, first, end);
        s->ps.skipped_pages += skipped;
        atomic_fetch_sub(&m->sched.pages_left, skipped);
    }
    for (uint64_t w = first / 64; w < (end + 63) / 64 && !rc; w++) {
        uint64_t n = 0;
        for (uint64_t bits = d->bitmap[w]; bits && !rc; bits &= bits - 1, n++) {
            uint64_t gpa = (w * 64 + (uint64_t)__builtin_ctzll(bits)) * VS_WIRE_PAGE_SIZE;
            vs_digest_mark(m->digest, gpa, VS_WIRE_PAGE_SIZE);
            if (vs_page_is_zero(ram + gpa)) {
                s->zero[s->nzero++] = gpa;
                if (s->nzero == VS_WIRE_MAX_PAGES)
                    rc = flush_zero(s, pass);
            } else {
                s->data[s->ndata++] = gpa;
                if (s->ndata == VS_WIRE_MAX_PAGES)
                    rc = flush_data(s, pass, final);
            }
        }
        atomic_fetch_sub(&m->sched.pages_left, n);
    }
    if (!rc)
        vs_dirty_sent(d, first, end - first);
    return rc;
}

static int stream_pass(struct vs_send_stream *s, uint32_t pass, bool final)
{
    struct vs_migration *m = s->m;
    uint64_t npages = m->dirty.npages;
    memset(&s->ps, 0, sizeof(s->ps));
    s->ndata = s->nzero = 0;
    s->pass_bytes0 = vs_channel_sent(s->ch);
    int rc = 0;
    while (!rc) {
        if (stopping(m))
            return vs_fail(ECANCELED, "stream %u stopped: the migration is stopping", s->index);
        if (atomic_load(&m->post.requested) && !final)
            break;      /* the rest goes in post-copy */
        uint64_t first = atomic_fetch_add(&m->sched.next_unit, 1) * VS_SEND_UNIT_PAGES;
        if (first >= npages)
            break;
        uint64_t end = first + VS_SEND_UNIT_PAGES < npages ? first + VS_SEND_UNIT_PAGES : npages;
        rc = send_unit(s, first, end, pass, final);
    }
    if (!rc)
        rc = flush_data(s, pass, final);
    if (!rc)
        rc = flush_zero(s, pass);
    if (!rc) {
        struct vs_wire_pass_end pe = { .pass = pass, .final = final,
                                       .pages_sent = s->ps.sent_pages + s->ps.zero_pages };
        rc = vs_wire_send(&s->w, VS_REC_PASS_END, &pe, sizeof(pe));
    }
    s->ps.bytes = vs_channel_sent(s->ch) - s->pass_bytes0;
    return rc;
}

static void *stream_thread(void *arg)
{
    struct vs_send_stream *s = arg;
    struct vs_migration *m = s->m;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&m->sched.lock);
        while (m->sched.generation == seen && !m->sched.quit)
            pthread_cond_wait(&m->sched.start_cv, &m->sched.lock);
        if (m->sched.quit) {
            pthread_mutex_unlock(&m->sched.lock);
            return NULL;
        }
        seen = m->sched.generation;
        uint32_t pass = m->sched.pass_no;
        bool final = m->sched.final;
        pthread_mutex_unlock(&m->sched.lock);

        s->rc = stream_pass(s, pass, final);
        if (s->rc) {
            snprintf(s->error, sizeof(s->error), "stream %u: %s", s->index, vs_last_error());
            /* Let the others stop early; the first real error wins in the report. */
            if (s->rc != -ECANCELED)
                atomic_store(&m->stream_failed, true);
        }
        pthread_mutex_lock(&m->sched.lock);
        m->sched.done++;
        pthread_cond_broadcast(&m->sched.done_cv);
        pthread_mutex_unlock(&m->sched.lock);
    }
}

int vs_send_streams_init(struct vs_migration *m)
{
    int codec = m->opts.compress == VS_COMPRESS_AUTO ? VS_CODEC_ZSTD : m->opts.compress;
    for (unsigned i = 0; i < m->nr_streams; i++) {
        struct vs_send_stream *s = &m->streams[i];
        s->m = m;
        s->index = i;
        /* Stream 0's writer exists already: HELLO went out before the others connected. */
        int rc = s->w.ch ? 0 : vs_wire_writer_init(&s->w, s->ch);
        if (rc)
            return rc;
        if (m->opts.zerocopy && (rc = vs_channel_enable_zerocopy(s->ch)))
            return rc;
        if (codec == VS_CODEC_NONE)
            continue;
        if ((rc = vs_codec_ctx_new(&s->codec, (enum vs_codec)codec, 0)))
            return rc;
        s->codec_id = (unsigned)codec;
        s->auto_compress = m->opts.compress == VS_COMPRESS_AUTO;
        vs_codec_auto_init(&s->autoc);
        s->cbuf_cap = vs_codec_bound((enum vs_codec)codec,
                                     (size_t)VS_WIRE_MAX_PAGES * VS_WIRE_PAGE_SIZE);
        if (!(s->cbuf = malloc(s->cbuf_cap)))
            return vs_fail(ENOMEM, "out of memory for stream %u's compression buffer", i);
    }
    m->w = &m->streams[0].w;
    return 0;
}

int vs_send_streams_start(struct vs_migration *m)
{
    for (unsigned i = 0; i < m->nr_streams; i++) {
        struct vs_send_stream *s = &m->streams[i];
        int err = pthread_create(&s->thread, NULL, stream_thread, s);
        if (err)
            return vs_fail(err, "cannot start the thread of stream %u: %s", i, strerror(err));
        s->thread_started = true;
    }
    return 0;
}

uint64_t vs_send_streams_bytes(struct vs_migration *m)
{
    uint64_t total = m->post.closed_bytes;
    for (unsigned i = 0; i < m->nr_streams; i++)
        if (m->streams[i].ch)
            total += vs_channel_sent(m->streams[i].ch);
    return total;
}

static void publish_progress(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    m->stats.transferred_bytes = vs_send_streams_bytes(m);
    m->stats.remaining_bytes = atomic_load(&m->sched.pages_left) * VS_WIRE_PAGE_SIZE;
    pthread_mutex_unlock(&m->lock);
}

int vs_send_streams_pass(struct vs_migration *m, uint32_t pass, bool final,
                         struct vs_pass_stats *ps)
{
    uint64_t t0 = vs_clock_ns();
    atomic_store(&m->sched.pages_left, ps->dirty_pages);
    pthread_mutex_lock(&m->sched.lock);
    m->sched.pass_no = pass;
    m->sched.final = final;
    atomic_store(&m->sched.next_unit, 0);
    m->sched.done = 0;
    m->sched.generation++;
    pthread_cond_broadcast(&m->sched.start_cv);
    while (m->sched.done < m->nr_streams) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&m->sched.done_cv, &m->sched.lock, &until) != 0) {
            pthread_mutex_unlock(&m->sched.lock);
            publish_progress(m);
            pthread_mutex_lock(&m->sched.lock);
        }
    }
    pthread_mutex_unlock(&m->sched.lock);

    int rc = 0;
    const char *why = NULL;
    for (unsigned i = 0; i < m->nr_streams; i++) {
        struct vs_send_stream *s = &m->streams[i];
        ps->sent_pages += s->ps.sent_pages;
        ps->zero_pages += s->ps.zero_pages;
        ps->skipped_pages += s->ps.skipped_pages;
        ps->bytes += s->ps.bytes;
        if (s->rc && (!rc || (rc == -ECANCELED && s->rc != -ECANCELED))) {
            rc = s->rc;
            why = s->error;
        }
    }
    ps->duration_ns = vs_clock_ns() - t0;
    publish_progress(m);
    return rc ? vs_fail(rc, "%s", why) : 0;
}

void vs_send_streams_stop(struct vs_migration *m)
{
    pthread_mutex_lock(&m->sched.lock);
    m->sched.quit = true;
    pthread_cond_broadcast(&m->sched.start_cv);
    pthread_mutex_unlock(&m->sched.lock);
    for (unsigned i = 0; i < m->nr_streams; i++) {
        struct vs_send_stream *s = &m->streams[i];
        if (s->thread_started)
            pthread_join(s->thread, NULL);
        s->thread_started = false;
        vs_wire_writer_destroy(&s->w);
        vs_codec_ctx_free(s->codec);
        s->codec = NULL;
        free(s->cbuf);
        s->cbuf = NULL;
    }
}
