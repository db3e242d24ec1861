/* Post-copy, destination side: the pages that arrive on a stream. Each page arrives
 * exactly once: its bit in `missing` is taken before it is copied in (userfaultfd's
 * UFFDIO_COPY, or UFFDIO_ZEROPAGE for a zero page); a page that was not missing, or
 * arrives again, ends the session with an error. */
#include "migrate/postcopy/postcopy_dest_internal.h"
#include "migrate/precopy/page_bitmap.h"
#include "migrate/postcopy/uffd.h"
#include "common/clock.h"
#include "common/error.h"

#include <stdatomic.h>

/* Copy n consecutive pages (data from buf, or zeros) in at gpa. */
static int place(struct vs_postcopy_dest *pc, uint64_t gpa, const uint8_t *buf, uint32_t n)
{
    uint64_t len = (uint64_t)n * VS_WIRE_PAGE_SIZE;
    int rc = buf ? vs_uffd_copy(&pc->uffd, gpa, buf, len) : vs_uffd_zero(&pc->uffd, gpa, len);
    if (rc == -EEXIST)
        return vs_fail(EEXIST, "post-copy: page 0x%llx is present although it never arrived",
                       (unsigned long long)gpa);
    return rc;
}

static int install(struct pc_stream *st, const struct vs_wire_header *h)
{
    struct vs_postcopy_dest *pc = st->pc;
    struct vs_wire_postcopy_pages info;
    int rc = vs_wire_read_postcopy_pages(&st->r, h, pc->vm->mem.size, &info, st->gpa, st->buf);
    if (rc)
        return rc;
    uint32_t taken, placed = 0, ndata = info.count - info.zero;
    for (taken = 0; taken < info.count; taken++) {
        uint64_t p = st->gpa[taken] / VS_WIRE_PAGE_SIZE;
        if (!vs_page_bit(pc->orig, p) || !vs_page_bit_take(pc->missing, p)) {
            rc = vs_fail(EPROTO, "post-copy stream %u: record #%llu: page 0x%llx %s",
                         st->index, (unsigned long long)h->seq,
                         (unsigned long long)st->gpa[taken],
                         vs_page_bit(pc->orig, p) ? "arrived twice" : "was not missing");
            break;
        }
    }
    while (!rc && placed < info.count) {
        uint32_t i = placed, run = 1, end = i < ndata ? ndata : info.count;
        while (i + run < end &&
               st->gpa[i + run] == st->gpa[i] + (uint64_t)run * VS_WIRE_PAGE_SIZE)
            run++;
        rc = place(pc, st->gpa[i], i < ndata ? st->buf + (size_t)i * VS_WIRE_PAGE_SIZE : NULL,
                   run);
        if (!rc)
            placed += run;
    }
    if (rc) {   /* what did not get in is still missing */
        for (uint32_t i = placed; i < taken; i++)
            __atomic_fetch_or(&pc->missing[st->gpa[i] / VS_WIRE_PAGE_SIZE / 64],
                              1ULL << (st->gpa[i] / VS_WIRE_PAGE_SIZE % 64), __ATOMIC_ACQ_REL);
        return rc;
    }
    atomic_fetch_sub(&pc->missing_count, info.count);
    st->pages += info.count;
    uint64_t now = vs_clock_ns();
    for (uint32_t i = 0; i < info.count; i++)
        vs_postcopy_fault_done(pc, st->gpa[i], now);
    pthread_mutex_lock(&pc->lock);
    struct vs_postcopy_stats *ps = &pc->stats.postcopy;
    *(info.urgent ? &ps->urgent_pages : &ps->background_pages) += info.count;
    *(info.urgent ? &ps->urgent_bytes : &ps->background_bytes) += h->length + 32;
    pc->stats.remaining_bytes = atomic_load(&pc->missing_count) * VS_WIRE_PAGE_SIZE;
    pthread_mutex_unlock(&pc->lock);
    return 0;
}

/* Read stream st until its POSTCOPY_END (0) or an error. */
int vs_postcopy_read_stream(struct pc_stream *st)
{
    for (;;) {
        struct vs_wire_header h;
        int rc = vs_wire_read_header(&st->r, &h);
        if (!rc && h.type == VS_REC_POSTCOPY_PAGES) {
            rc = install(st, &h);
        } else if (!rc && h.type == VS_REC_POSTCOPY_END) {
            struct vs_wire_postcopy_end e;
            if ((rc = vs_wire_read_fixed(&st->r, &h, VS_REC_POSTCOPY_END, &e, sizeof(e))))
                return rc;
            if (e.pages != st->pages)
                return vs_fail(EPROTO, "post-copy stream %u: the source sent %llu pages on it, "
                               "%llu arrived", st->index, (unsigned long long)e.pages,
                               (unsigned long long)st->pages);
            pthread_mutex_lock(&st->pc->lock);
            st->ended = true;
            pthread_cond_broadcast(&st->pc->cv);
            pthread_mutex_unlock(&st->pc->lock);
            return 0;
        } else if (!rc) {
            rc = vs_fail(EPROTO, "post-copy stream %u: record #%llu (%s) is not allowed in "
                         "post-copy", st->index, (unsigned long long)h.seq,
                         vs_wire_type_name(h.type));
        }
        if (rc)
            return rc;
    }
}

