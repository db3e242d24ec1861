/* Post-copy, destination side. Maps: `orig` = the pages missing at the switch, `missing`
 * = those not arrived yet. A page arrives exactly once: its bit in `missing` is taken
 * before it is copied in, and a page that was not missing, or arrives again, is an error.
 * Threads: the control thread (COMMIT, stream 0: urgent pages, the end, losing and
 * resuming the connection), one reader per further stream (background pages), and the
 * fault thread (userfaultfd -> PAGE_REQUEST; zeros for never-written pages). */
#include "migrate/postcopy/postcopy_dest_internal.h"
#include "migrate/state/digest.h"
#include "migrate/precopy/page_bitmap.h"
#include "migrate/postcopy/uffd.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"
#include "wire/writer.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

static void set_status(struct vs_postcopy_dest *pc, const char *status, bool error)
{
    pthread_mutex_lock(&pc->lock);
    pc->stats.status = status;
    if (error)
        snprintf(pc->stats.error, sizeof(pc->stats.error), "%s", vs_last_error());
    else
        pc->stats.error[0] = '\0';
    pthread_mutex_unlock(&pc->lock);
    vs_info("incoming post-copy: %s", status);
}

/* ---- Taking the map, checking what is here ---- */

int vs_postcopy_dest_new(struct vs_postcopy_dest **out, struct vs_vm *vm,
                         const struct vs_incoming_opts *opts, struct vs_wire_reader *r,
                         const struct vs_wire_header *h)
{
    struct vs_postcopy_dest *pc = calloc(1, sizeof(*pc));
    uint64_t npages = vm->mem.size / VS_WIRE_PAGE_SIZE, words = vs_page_bitmap_words(npages);
    if (pc) {
        pc->orig = calloc(words, 8);
        pc->missing = calloc(words, 8);
    }
    if (!pc || !pc->orig || !pc->missing) {
        if (pc) {
            free(pc->orig);
            free(pc->missing);
        }
        free(pc);
        return vs_fail(ENOMEM, "out of memory for the post-copy page maps");
    }
    pc->vm = vm;
    pc->opts = opts;
    pc->npages = npages;
    pc->uffd.fd = pc->wake_fd = -1;
    pthread_mutex_init(&pc->w0_lock, NULL);
    pthread_mutex_init(&pc->lock, NULL);
    pthread_cond_init(&pc->cv, NULL);
    *out = pc;
    struct vs_wire_postcopy_start ps;
    int rc = vs_wire_read_postcopy_start(r, h, vm->mem.size, &ps, pc->orig);
    if (rc)
        return rc;
    memcpy(pc->missing, pc->orig, words * 8);
    atomic_store(&pc->missing_count, ps.missing_pages);
    pc->pause_ns = ps.pause_ns;
    pc->stats.postcopy.active = true;
    pc->stats.postcopy.missing_pages = ps.missing_pages;
    /* No 2 MiB page may be assembled over the holes made next (khugepaged fills a hole
     * with zeros, which the VM would then read as its data): until every page is here. */
    if ((rc = vs_memory_allow_huge_pages(&vm->mem, false)))
        return vs_fail_context(rc, "post-copy: keeping guest RAM free of huge pages");
    /* What is here of those pages is stale: drop it, so that touching them faults. */
    for (uint64_t p = 0; p < npages; p++) {
        if (!vs_page_bit(pc->orig, p))
            continue;
        uint64_t e = p + 1;
        while (e < npages && vs_page_bit(pc->orig, e))
            e++;
        int drc = vs_memory_discard(&vm->mem, p * VS_WIRE_PAGE_SIZE, (e - p) * VS_WIRE_PAGE_SIZE);
        if (drc)
            return vs_fail_context(drc, "post-copy: dropping the stale pages its source "
                                   "sends again");
        p = e;
    }
    unsigned char vec[4096];
    for (uint64_t p = 0; p < npages; p += sizeof(vec)) {
        uint64_t n = npages - p < sizeof(vec) ? npages - p : sizeof(vec);
        if (mincore(vm->mem.base + p * VS_WIRE_PAGE_SIZE, n * VS_WIRE_PAGE_SIZE, vec) < 0)
            return vs_fail(errno, "post-copy: mincore on guest RAM: %s", strerror(errno));
        for (uint64_t i = 0; i < n; i++)
            if ((vec[i] & 1) && vs_page_bit(pc->orig, p + i))
                return vs_fail(EIO, "post-copy: page 0x%llx is still in guest RAM after it "
                               "was dropped (huge page?); it would never be fetched",
                               (unsigned long long)((p + i) * VS_WIRE_PAGE_SIZE));
    }
    vs_info("post-copy: %llu pages (%.1f MiB) missing; the VM will run before they arrive",
            (unsigned long long)ps.missing_pages,
            (double)ps.missing_pages * VS_WIRE_PAGE_SIZE / 1048576.0);
    return 0;
}

uint64_t vs_postcopy_dest_pause_ns(const struct vs_postcopy_dest *pc)
{
    return pc->pause_ns;
}

const uint64_t *vs_postcopy_dest_missing(const struct vs_postcopy_dest *pc)
{
    return pc->orig;
}

int vs_postcopy_dest_check(struct vs_postcopy_dest *pc, struct vs_wire_reader *r,
                           const struct vs_wire_header *h, struct vs_digest_tracker *t,
                           uint64_t *vcpu_xxh3, uint64_t *machine_xxh3, char *reason,
                           size_t len)
{
    uint64_t nblocks;
    const uint64_t *mine = vs_digest_tracker_blocks(t, &nblocks);
    uint64_t *theirs = malloc(nblocks * 8);
    if (!theirs)
        return vs_fail(ENOMEM, "out of memory for %llu block digests",
                       (unsigned long long)nblocks);
    struct vs_wire_postcopy_digests pd;
    int rc = vs_wire_read_postcopy_digests(r, h, pc->vm->mem.size, &pd, theirs);
    uint64_t per_block = VS_DIGEST_BLOCK / VS_WIRE_PAGE_SIZE, compared = 0;
    reason[0] = '\0';
    for (uint64_t b = 0; !rc && b < nblocks && !reason[0]; b++) {
        bool whole = true;
        for (uint64_t p = b * per_block; p < (b + 1) * per_block && p < pc->npages && whole;
             p++)
            whole = !vs_page_bit(pc->orig, p);
        if (!whole)
            continue;       /* its missing pages are checked as they arrive */
        compared++;
        if (mine[b] != theirs[b])
            snprintf(reason, len, "RAM block %llu (RAM offset 0x%llx) differs from the source's "
                     "(digest %016llx, source %016llx)", (unsigned long long)b,
                     (unsigned long long)(b * VS_DIGEST_BLOCK), (unsigned long long)mine[b],
                     (unsigned long long)theirs[b]);
    }
    free(theirs);
    if (rc)
        return rc;
    *vcpu_xxh3 = pd.vcpu_xxh3;
    *machine_xxh3 = pd.machine_xxh3;
    vs_info("post-copy: %llu of %llu RAM blocks hold no missing page and match the source's",
            (unsigned long long)compared, (unsigned long long)nblocks);
    return 0;
}

static void session_fail(struct vs_postcopy_dest *pc)
{
    if (atomic_exchange(&pc->session_failed, true))
        return;
    vs_warn("post-copy: %s", vs_last_error());
    for (unsigned i = 0; i < pc->n; i++)
        if (pc->s[i].ch)
            vs_channel_shutdown(pc->s[i].ch);
    pthread_mutex_lock(&pc->lock);
    pthread_cond_broadcast(&pc->cv);
    pthread_mutex_unlock(&pc->lock);
}

static void *stream_thread(void *arg)
{
    struct pc_stream *st = arg;
    if (vs_postcopy_read_stream(st))
        session_fail(st->pc);
    return NULL;
}

/* ---- Sessions: connected until every page is here or the link breaks ---- */

static int start_vm(struct vs_postcopy_dest *pc)
{
    int rc = vs_uffd_open(&pc->uffd, pc->vm->mem.base, pc->vm->mem.size);
    if (rc)
        return rc;
    int err = pthread_create(&pc->fault_thread, NULL, vs_postcopy_fault_thread, pc);
    if (err)
        return vs_fail(err, "cannot start the post-copy fault thread: %s", strerror(err));
    pc->fault_started = true;
    vs_info("post-copy: the source granted the VM: starting its vCPUs here");
    if ((rc = vs_vm_start(pc->vm)))
        return rc;
    pthread_mutex_lock(&pc->lock);
    pc->vm_started = true;
    pc->run_ns = vs_clock_ns();
    vs_report_note_resume(&pc->stats, pc->run_ns);
    pc->stats.postcopy.at_ns = pc->stats.switchover_at_ns;
    pthread_mutex_unlock(&pc->lock);
    return 0;
}

/* The first session begins with COMMIT (and, from a 2.2 source, CLAIM and GRANT): then
 * the VM runs here, never at the source. */
static int await_commit(struct vs_postcopy_dest *pc)
{
    struct pc_stream *s0 = &pc->s[0];
    struct vs_wire_header h;
    int rc = vs_wire_read_header(&s0->r, &h);
    if (!rc && h.type == VS_REC_ABORT) {
        char why[VS_WIRE_MAX_REASON + 1] = "";
        vs_wire_read_payload(&s0->r, &h, why, VS_WIRE_MAX_REASON);
        pthread_mutex_lock(&pc->lock);
        pc->failed = true;
        pthread_mutex_unlock(&pc->lock);
        return vs_fail(ECANCELED, "the source aborted the migration: %s", why);
    }
    if (!rc && h.type != VS_REC_COMMIT)
        rc = vs_fail(EPROTO, "post-copy: expected COMMIT, got record #%llu (%s)",
                     (unsigned long long)h.seq, vs_wire_type_name(h.type));
    if (!rc)
        rc = vs_wire_read_payload(&s0->r, &h, NULL, 0);
    struct vs_wire_resumed res = { .commit_rx_ns = vs_clock_ns() };
    if (!rc)
        vs_fault_point("dst.commit", 0, s0->ch);
    if (rc || (pc->claim && (rc = vs_postcopy_claim(pc))))
        return rc;
    /* RESUMED must be the first record after COMMIT: a vCPU may fault at once, and its
     * PAGE_REQUEST waits for the writer until RESUMED is out. */
    pthread_mutex_lock(&pc->w0_lock);
    if (!(rc = start_vm(pc))) {
        res.resume_ns = pc->run_ns;
        rc = vs_wire_send(&pc->w0, VS_REC_RESUMED, &res, sizeof(res));
    }
    pthread_mutex_unlock(&pc->w0_lock);
    return rc;
}

/* All streams ended and every page arrived: check it, tell the source, let go of RAM. */
static int complete(struct vs_postcopy_dest *pc)
{
    pthread_mutex_lock(&pc->lock);
    while (!atomic_load(&pc->session_failed)) {
        unsigned ended = 0;
        for (unsigned i = 0; i < pc->n; i++)
            ended += pc->s[i].ended;
        if (ended == pc->n)
            break;
        pthread_cond_wait(&pc->cv, &pc->lock);
    }
    pthread_mutex_unlock(&pc->lock);
    if (atomic_load(&pc->session_failed))
        return vs_fail(EPIPE, "post-copy: a stream failed");
    uint64_t left = atomic_load(&pc->missing_count);
    if (left || vs_page_bitmap_count(pc->missing, pc->npages))
        return vs_fail(EPROTO, "post-copy: the source ended with %llu pages still missing",
                       (unsigned long long)left);
    unsigned char vec[4096];
    for (uint64_t p = 0; p < pc->npages; p += sizeof(vec)) {
        uint64_t n = pc->npages - p < sizeof(vec) ? pc->npages - p : sizeof(vec);
        if (mincore(pc->vm->mem.base + p * VS_WIRE_PAGE_SIZE, n * VS_WIRE_PAGE_SIZE, vec) < 0)
            return vs_fail(errno, "post-copy: mincore on guest RAM: %s", strerror(errno));
        for (uint64_t i = 0; i < n; i++)
            if (!(vec[i] & 1) && vs_page_bit(pc->orig, p + i))
                return vs_fail(EIO, "post-copy: page 0x%llx arrived but is not in guest RAM",
                               (unsigned long long)((p + i) * VS_WIRE_PAGE_SIZE));
    }
    atomic_store(&pc->fault_stop, true);
    uint64_t one = 1;
    if (write(pc->wake_fd, &one, sizeof(one)) < 0)
        vs_warn("cannot wake the post-copy fault thread");
    pthread_join(pc->fault_thread, NULL);
    pc->fault_started = false;
    vs_uffd_close(&pc->uffd);
    if (vs_memory_allow_huge_pages(&pc->vm->mem, true))
        vs_warn("post-copy: every page is here, but guest RAM keeps 4 KiB pages: %s",
                vs_last_error());
    pthread_mutex_lock(&pc->lock);
    struct vs_postcopy_stats *st = &pc->stats.postcopy;
    st->verified_present = true;
    st->time_ns = vs_clock_ns() - pc->run_ns;
    pc->stats.total_ns = vs_clock_ns() - pc->stats.start_ns;
    pc->stats.transferred_bytes += st->urgent_bytes + st->background_bytes;
    vs_report_note_total(&pc->stats);
    pthread_mutex_unlock(&pc->lock);
    vs_fault_point("dst.postcopy_end", 0, pc->s[0].ch);
    if (vs_postcopy_send_end(pc))
        vs_warn("every page is here, but the source was not told: %s", vs_last_error());
    return 0;
}

int vs_postcopy_send_end(struct vs_postcopy_dest *pc)
{
    pthread_mutex_lock(&pc->lock);
    struct vs_postcopy_stats *st = &pc->stats.postcopy;
    struct vs_wire_postcopy_end e = { .pages = st->missing_pages, .faults = st->faults,
                                      .fault_wait_ns = st->fault_wait_ns,
                                      .fault_wait_max_ns = st->fault_wait_max_ns };
    pthread_mutex_unlock(&pc->lock);
    pthread_mutex_lock(&pc->w0_lock);
    int rc = vs_wire_send(&pc->w0, VS_REC_POSTCOPY_END, &e, sizeof(e));
    pthread_mutex_unlock(&pc->w0_lock);
    return rc;
}

static int session(struct vs_postcopy_dest *pc)
{
    atomic_store(&pc->session_failed, false);
    for (unsigned i = 0; i < pc->n; i++) {
        pc->s[i].pages = 0;
        pc->s[i].ended = false;
        int rc = vs_channel_set_liveness(pc->s[i].ch, LIVENESS_MS);
        if (rc)
            return rc;
    }
    int rc = 0;
    if (!pc->vm_started)   /* a resume after a lost COMMIT means the source committed */
        rc = pc->stats.postcopy.resumes ? start_vm(pc) : await_commit(pc);
    if (!rc && pc->paused) {
        pc->paused = false;
        vs_vm_block_resume(pc->vm, NULL);
        rc = vs_vm_resume(pc->vm);
    }
    if (rc)
        return rc;
    set_status(pc, "postcopy-active", false);
    for (unsigned i = 1; i < pc->n; i++) {
        int err = pthread_create(&pc->s[i].thread, NULL, stream_thread, &pc->s[i]);
        if (err)
            return vs_fail(err, "cannot start a post-copy stream thread: %s", strerror(err));
        pc->s[i].started = true;
    }
    /* Faults that waited through a lost connection are asked for again. */
    uint64_t again[MAX_PENDING];
    pthread_mutex_lock(&pc->lock);
    unsigned n = pc->npending;
    for (unsigned i = 0; i < n; i++)
        again[i] = pc->pending[i].gpa;
    pthread_mutex_unlock(&pc->lock);
    for (unsigned i = 0; i < n; i += VS_WIRE_MAX_PAGES)
        vs_postcopy_request(pc, again + i,
                            n - i < VS_WIRE_MAX_PAGES ? n - i : VS_WIRE_MAX_PAGES);
    rc = vs_postcopy_read_stream(&pc->s[0]);
    if (rc)
        session_fail(pc);
    return rc ? rc : complete(pc);
}

void vs_postcopy_close_session(struct vs_postcopy_dest *pc)
{
    for (unsigned i = 1; i < pc->n; i++)
        if (pc->s[i].started) {
            pthread_join(pc->s[i].thread, NULL);
            pc->s[i].started = false;
        }
    pthread_mutex_lock(&pc->w0_lock);
    pc->connected = false;
    vs_wire_writer_destroy(&pc->w0);
    pthread_mutex_unlock(&pc->w0_lock);
    for (unsigned i = 0; i < pc->n; i++) {
        vs_wire_reader_destroy(&pc->s[i].r);
        vs_channel_close(pc->s[i].ch);
        pc->s[i].ch = NULL;
    }
}

/* Tear a broken session down; the VM is paused (its vCPUs may also wait on a page). */
void vs_postcopy_lost(struct vs_postcopy_dest *pc)
{
    session_fail(pc);
    vs_postcopy_close_session(pc);
    if (pc->vm_started && !pc->paused) {
        vs_vm_block_resume(pc->vm, "post-copy lost its connection: the pages the VM lacks are "
                           "at the source; resume the migration there (resume-migration)");
        vs_vm_request_pause(pc->vm);
        pc->paused = true;
    }
}

static void *control_thread(void *arg)
{
    struct vs_postcopy_dest *pc = arg;
    for (;;) {
        int rc = session(pc);
        if (!rc) {
            set_status(pc, "completed", false);
            vs_postcopy_serve_completed(pc);
            return NULL;
        }
        vs_postcopy_lost(pc);
        if (pc->failed || atomic_load(&pc->stopping)) {
            set_status(pc, "failed", true);
            return NULL;
        }
        vs_fail_context(-EPIPE, "post-copy paused until the source resumes it");
        set_status(pc, "postcopy-paused", true);
        vs_log(VS_LOG_ERROR, "post-copy lost the source (%s); the VM is paused here until the "
               "source reconnects, which it does by itself to %s (if it must use another "
               "address: vmshift ctl SOURCE resume-migration to=HOST:PORT)", pc->stats.error,
               pc->opts->resume_addr ? pc->opts->resume_addr : "this destination's address");
        if (vs_postcopy_wait_for_source(pc)) {
            if (vs_postcopy_dest_failed(pc))
                set_status(pc, "discarded", true);
            return NULL;
        }
        set_status(pc, "postcopy-recover", false);
    }
}

int vs_postcopy_dest_start(struct vs_postcopy_dest *pc, const struct vs_postcopy_handover *ho)
{
    pc->n = ho->nr_streams;
    pc->claim = ho->claim;
    memcpy(pc->session, ho->session, sizeof(pc->session));
    pthread_mutex_lock(&pc->lock);
    struct vs_postcopy_stats keep = pc->stats.postcopy;
    pc->stats = ho->stats;
    pc->stats.postcopy = keep;
    pc->stats.status = "verified";
    pthread_mutex_unlock(&pc->lock);
    for (unsigned i = 0; i < pc->n; i++) {
        struct pc_stream *st = &pc->s[i];
        st->pc = pc;
        st->index = i;
        st->ch = ho->ch[i];
        vs_wire_reader_init(&st->r, st->ch);
        st->r.next_seq = ho->next_seq[i];
        st->r.offset = ho->offset[i];
        st->r.postcopy = true;
        if (!(st->buf = aligned_alloc(VS_WIRE_PAGE_SIZE,
                                      (size_t)VS_WIRE_MAX_PAGES * VS_WIRE_PAGE_SIZE)))
            return vs_fail(ENOMEM, "out of memory for post-copy page buffers");
    }
    int rc = vs_wire_writer_init(&pc->w0, pc->s[0].ch);
    if (rc)
        return rc;
    pc->w0.seq = ho->w0_seq;
    pc->connected = true;
    if ((pc->wake_fd = eventfd(0, EFD_CLOEXEC)) < 0)
        return vs_fail(errno, "eventfd: %s", strerror(errno));
    int err = pthread_create(&pc->thread, NULL, control_thread, pc);
    if (err)
        return vs_fail(err, "cannot start the post-copy thread: %s", strerror(err));
    pc->thread_started = true;
    return 0;
}

/* ---- For the control socket ---- */

void vs_postcopy_dest_stats(struct vs_postcopy_dest *pc, struct vs_migration_stats *out)
{
    pthread_mutex_lock(&pc->lock);
    *out = pc->stats;
    if (strcmp(out->status, "completed") && strcmp(out->status, "failed"))
        out->total_ns = vs_clock_ns() - out->start_ns;
    if (pc->run_ns && !out->postcopy.verified_present)
        out->postcopy.time_ns = vs_clock_ns() - pc->run_ns;
    pthread_mutex_unlock(&pc->lock);
}

bool vs_postcopy_dest_busy(struct vs_postcopy_dest *pc)
{
    return pc && pc->uffd.fd >= 0 && atomic_load(&pc->missing_count) > 0;
}

bool vs_postcopy_dest_failed(struct vs_postcopy_dest *pc)
{
    pthread_mutex_lock(&pc->lock);
    bool failed = pc->failed;
    pthread_mutex_unlock(&pc->lock);
    return failed;
}

int vs_postcopy_dest_resume(struct vs_postcopy_dest *pc, char *where, size_t len)
{
    pthread_mutex_lock(&pc->lock);
    const char *status = pc->stats.status;
    bool paused = !strcmp(status, "postcopy-paused");
    pthread_mutex_unlock(&pc->lock);
    if (!paused)
        return vs_fail(EINVAL, "no paused post-copy here: the incoming migration is %s", status);
    snprintf(where, len, "%s", pc->opts->resume_addr ? pc->opts->resume_addr : "");
    return 0;
}

void vs_postcopy_dest_stop(struct vs_postcopy_dest *pc)
{
    if (!pc || atomic_exchange(&pc->stopping, true))
        return;
    atomic_store(&pc->fault_stop, true);
    uint64_t one = 1;
    if (pc->wake_fd >= 0 && write(pc->wake_fd, &one, sizeof(one)) < 0)
        vs_warn("cannot wake the post-copy fault thread");
    session_fail(pc);
    if (pc->fault_started)
        pthread_join(pc->fault_thread, NULL);
    pc->fault_started = false;
    vs_uffd_close(&pc->uffd);   /* releases vCPUs waiting for a page */
    if (pc->thread_started)
        pthread_join(pc->thread, NULL);
    pc->thread_started = false;
}

void vs_postcopy_dest_free(struct vs_postcopy_dest *pc)
{
    if (!pc)
        return;
    vs_postcopy_dest_stop(pc);
    vs_postcopy_lost(pc);
    for (unsigned i = 0; i < VS_WIRE_MAX_STREAMS; i++)
        free(pc->s[i].buf);
    if (pc->wake_fd >= 0)
        close(pc->wake_fd);
    pthread_mutex_destroy(&pc->w0_lock);
    pthread_mutex_destroy(&pc->lock);
    pthread_cond_destroy(&pc->cv);
    free(pc->orig);
    free(pc->missing);
    free(pc);
}
