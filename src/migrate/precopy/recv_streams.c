#include "migrate/precopy/recv_streams.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vs_recv_streams_init(struct vs_recv_streams *rs, struct vs_vm *vm, unsigned n,
                         uint32_t codecs)
{
    memset(rs, 0, sizeof(*rs));
    rs->vm = vm;
    rs->n = n;
    rs->touched = calloc((vm->mem.size / VS_WIRE_PAGE_SIZE + 63) / 64, sizeof(uint64_t));
    if (!rs->touched)
        return vs_fail(ENOMEM, "out of memory for the page map of %llu pages",
                       (unsigned long long)(vm->mem.size / VS_WIRE_PAGE_SIZE));
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->cv, NULL);
    for (unsigned i = 0; i < n; i++) {
        rs->s[i].rs = rs;
        rs->s[i].index = i;
        vs_wire_reader_init(&rs->s[i].r, NULL);
        rs->s[i].r.codecs = codecs;
    }
    return 0;
}

void vs_recv_streams_tune(struct vs_recv_streams *rs, const struct vs_recv_tuning *t)
{
    enum vs_page_writes w = t ? t->page_writes : VS_PAGE_WRITES_AUTO;
    const struct vs_memory *mem = &rs->vm->mem;
    bool huge = vs_memory_huge_pages(mem);
    /* Anonymous RAM has no file to write through. */
    rs->page_file = mem->memfd >= 0 && vs_page_writes_use_file(w, huge);
    if (mem->memfd < 0 && w == VS_PAGE_WRITES_FILE)
        vs_warn("--page-writes file: guest RAM here is anonymous memory (--ram-backing "
                "anon), which has no file: pages go through the mapping");
    /* shmem_enabled=advise honours MADV_HUGEPAGE, a property of the mapping: pages
     * written through the file never see it. */
    rs->ram_pages = rs->page_file && huge ? "4 KiB (written through the memfd, which gets no "
                                            "shmem huge pages; --page-writes mapping would)"
                                          : vs_memory_page_size_note(mem);
    for (unsigned i = 0; i < rs->n; i++)
        vs_wire_reader_set_ram_file(&rs->s[i].r, rs->page_file ? rs->vm->mem.memfd : -1);
    unsigned threads = vs_recv_tuning_prefault_threads(t);
    vs_prefault_start(&rs->prefault, &rs->vm->mem, threads);
    vs_info("pages go into guest RAM through its %s (--page-writes %s), %u prefault "
            "thread(s); guest RAM pages: %s", rs->page_file ? "memfd" : "mapping",
            vs_page_writes_name(w), rs->prefault.nthreads, rs->ram_pages);
}

void vs_recv_streams_set_channel(struct vs_recv_streams *rs, unsigned index,
                                 struct vs_channel *ch)
{
    rs->s[index].ch = ch;
    rs->s[index].r.ch = ch;
}

/* The first record of this stream's part of the current pass: when it arrived. */
static void note_first_record(struct vs_recv_stream *st)
{
    if (!st->ps.first_rx_ns)
        st->ps.first_rx_ns = vs_clock_ns();
}

int vs_recv_page_record(struct vs_recv_streams *rs, unsigned index,
                        const struct vs_wire_header *h)
{
    struct vs_recv_stream *st = &rs->s[index];
    uint8_t *ram = rs->vm->mem.base;
    note_first_record(st);
    uint32_t count;
    int rc;
    if (h->type == VS_REC_CPAGES) {
        struct vs_wire_cpages info;
        rc = vs_wire_read_cpages(&st->r, h, ram, rs->vm->mem.size, &info, st->gpa);
        count = info.count;
    } else {
        struct vs_wire_pages info;
        rc = vs_wire_read_pages(&st->r, h, ram, rs->vm->mem.size, &info, st->gpa);
        count = info.count;
    }
    if (rc)
        return rc;
    if (rs->prefault.nthreads)
        vs_prefault_note(&rs->prefault, st->gpa[count - 1] + VS_WIRE_PAGE_SIZE);
    /* Each page arrives at most once per pass, so streams never share a page here; the
     * map's words are shared, hence atomic bit operations. */
    for (uint32_t i = 0; i < count; i++) {
        uint64_t p = st->gpa[i] / VS_WIRE_PAGE_SIZE, bit = 1ULL << (p % 64);
        if (h->type != VS_REC_ZERO_PAGES) {
            __atomic_fetch_or(&rs->touched[p / 64], bit, __ATOMIC_RELAXED);
        } else if (__atomic_fetch_and(&rs->touched[p / 64], ~bit, __ATOMIC_RELAXED) & bit) {
            /* Fresh RAM pages already read as zero; only rewritten ones need it. */
            memset(ram + st->gpa[i], 0, VS_WIRE_PAGE_SIZE);
        }
        vs_digest_mark(rs->digest, st->gpa[i], VS_WIRE_PAGE_SIZE);
    }
    if (h->type == VS_REC_ZERO_PAGES) {
        st->zero += count;
        st->ps.zero_pages += count;
    } else {
        st->normal += count;
        st->ps.sent_pages += count;
        if (h->type == VS_REC_CPAGES)
            st->compressed += count;
    }
    return 0;
}

static int failed_error(struct vs_recv_streams *rs)
{
    return vs_fail(rs->err ? -rs->err : ECANCELED, "%s", rs->error);
}

int vs_recv_pass_end(struct vs_recv_streams *rs, unsigned index, const struct vs_wire_header *h,
                     struct vs_wire_pass_end *pe, struct vs_pass_stats *totals)
{
    struct vs_recv_stream *st = &rs->s[index];
    note_first_record(st);
    int rc = vs_wire_read_fixed(&st->r, h, VS_REC_PASS_END, pe, sizeof(*pe));
    if (rc)
        return rc;
    if (pe->pass != st->next_pass)
        return vs_fail(EPROTO, "migration stream %u: PASS_END (record #%llu) ends pass %u, "
                       "expected pass %u", index, (unsigned long long)h->seq, pe->pass,
                       st->next_pass);
    uint64_t got = st->ps.sent_pages + st->ps.zero_pages;
    if (pe->pages_sent != got)
        return vs_fail(EPROTO, "migration stream %u: PASS_END of pass %u says %llu pages were "
                       "sent on this stream, but %llu arrived", index, pe->pass,
                       (unsigned long long)pe->pages_sent, (unsigned long long)got);
    st->next_pass++;
    pthread_mutex_lock(&rs->lock);
    if (rs->failed) {
        rc = failed_error(rs);
        pthread_mutex_unlock(&rs->lock);
        return rc;
    }
    if (rs->arrived == 0) {
        rs->cur_pass = pe->pass;
        rs->cur_final = pe->final;
    } else if (rs->cur_final != (bool)pe->final) {
        pthread_mutex_unlock(&rs->lock);
        return vs_fail(EPROTO, "migration stream %u: pass %u is %s on this stream but %s on "
                       "another", index, pe->pass, pe->final ? "final" : "not final",
                       rs->cur_final ? "final" : "not final");
    }
    if (++rs->arrived == rs->n) {
        struct vs_pass_stats sum = { .pass = pe->pass, .final = pe->final };
        for (unsigned i = 0; i < rs->n; i++) {
            sum.sent_pages += rs->s[i].ps.sent_pages;
            sum.zero_pages += rs->s[i].ps.zero_pages;
            uint64_t first = rs->s[i].ps.first_rx_ns;
            if (first && (!sum.first_rx_ns || first < sum.first_rx_ns))
                sum.first_rx_ns = first;
            rs->s[i].ps = (struct vs_pass_stats){ 0 };
        }
        rs->done = sum;
        rs->arrived = 0;
        vs_prefault_stop(&rs->prefault);   /* later passes find their pages allocated */
        rs->barrier_gen++;
        pthread_cond_broadcast(&rs->cv);
    } else {
        uint64_t gen = rs->barrier_gen;
        while (gen == rs->barrier_gen && !rs->failed)
            pthread_cond_wait(&rs->cv, &rs->lock);
        if (gen == rs->barrier_gen) {
            rc = failed_error(rs);
            pthread_mutex_unlock(&rs->lock);
            return rc;
        }
    }
    if (totals)
        *totals = rs->done;
    pthread_mutex_unlock(&rs->lock);
    return 0;
}

void vs_recv_streams_fail(struct vs_recv_streams *rs, unsigned index, int err)
{
    pthread_mutex_lock(&rs->lock);
    if (!rs->failed) {
        rs->failed = true;
        rs->err = err;
        snprintf(rs->error, sizeof(rs->error), "%s", vs_last_error());
        (void)index;
    }
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->lock);
    for (unsigned i = 1; i < rs->n; i++)
        if (rs->s[i].ch)
            vs_channel_shutdown(rs->s[i].ch);
    if (index != 0 && rs->s[0].ch)
        vs_channel_shutdown_read(rs->s[0].ch);
}

static void *recv_thread(void *arg)
{
    struct vs_recv_stream *st = arg;
    struct vs_recv_streams *rs = st->rs;
    for (;;) {
        struct vs_wire_header h;
        struct vs_wire_pass_end pe;
        int rc = vs_wire_read_header(&st->r, &h);
        if (!rc) {
            switch (h.type) {
            case VS_REC_PAGES:
            case VS_REC_ZERO_PAGES:
            case VS_REC_CPAGES:
                rc = vs_recv_page_record(rs, st->index, &h);
                break;
            case VS_REC_PASS_END:
                rc = vs_recv_pass_end(rs, st->index, &h, &pe, NULL);
                if (!rc && pe.final)
                    return NULL;
                break;
            default:
                rc = vs_fail(EPROTO, "migration stream %u: record #%llu (%s) at offset %llu "
                             "is not allowed on an extra stream (only pages and PASS_END)",
                             st->index, (unsigned long long)h.seq, vs_wire_type_name(h.type),
                             (unsigned long long)st->r.record_offset);
                break;
            }
        }
        if (rc) {
            vs_fail_context(rc, "stream %u", st->index);
            vs_recv_streams_fail(rs, st->index, rc);
            return NULL;
        }
    }
}

int vs_recv_streams_start(struct vs_recv_streams *rs)
{
    for (unsigned i = 1; i < rs->n; i++) {
        int err = pthread_create(&rs->s[i].thread, NULL, recv_thread, &rs->s[i]);
        if (err)
            return vs_fail(err, "cannot start the receiving thread of stream %u: %s", i,
                           strerror(err));
        rs->s[i].thread_started = true;
    }
    return 0;
}

void vs_recv_streams_totals(struct vs_recv_streams *rs, struct vs_migration_stats *st)
{
    st->nr_streams = rs->n;
    st->normal_pages = st->zero_pages = st->compressed_pages = 0;
    st->transferred_bytes = 0;
    for (unsigned i = 0; i < rs->n; i++) {
        st->normal_pages += rs->s[i].normal;
        st->zero_pages += rs->s[i].zero;
        st->compressed_pages += rs->s[i].compressed;
        if (rs->s[i].ch) {
            st->stream_bytes[i] = vs_channel_received(rs->s[i].ch);
            st->transferred_bytes += st->stream_bytes[i];
        }
    }
}

void vs_recv_streams_destroy(struct vs_recv_streams *rs)
{
    if (!rs->touched)
        return;
    unsigned prefaulters = rs->prefault.nthreads;
    vs_prefault_join(&rs->prefault);
    if (prefaulters)
        vs_info("%u prefault thread(s) faulted in %llu MiB of guest RAM ahead of the streams",
                prefaulters, (unsigned long long)(rs->prefault.faulted >> 20));
    /* Threads still reading (a failure elsewhere) stop when their channel goes. */
    for (unsigned i = 1; i < rs->n; i++) {
        if (rs->s[i].ch)
            vs_channel_shutdown(rs->s[i].ch);
        if (rs->s[i].thread_started)
            pthread_join(rs->s[i].thread, NULL);
    }
    for (unsigned i = 0; i < rs->n; i++) {
        vs_wire_reader_destroy(&rs->s[i].r);
        if (i > 0)
            vs_channel_close(rs->s[i].ch);
        rs->s[i].ch = NULL;
    }
    free(rs->touched);
    rs->touched = NULL;
    pthread_mutex_destroy(&rs->lock);
    pthread_cond_destroy(&rs->cv);
}
