/* Post-copy, destination side: faults. A thread touching a page of the missing map waits
 * in the kernel; the fault thread reads its address from userfaultfd and asks the source
 * for it (once per page, timing the wait), maps zeros for a page that was never written,
 * and wakes the waiters of a page that arrived meanwhile. */
#include "migrate/postcopy/postcopy_dest_internal.h"
#include "migrate/precopy/page_bitmap.h"
#include "common/clock.h"

#include <errno.h>

/* A fault on a missing page: remember when (once per page); true if it must be asked for. */
static bool pending_add(struct vs_postcopy_dest *pc, uint64_t gpa)
{
    pthread_mutex_lock(&pc->lock);
    for (unsigned i = 0; i < pc->npending; i++)
        if (pc->pending[i].gpa == gpa) {
            pthread_mutex_unlock(&pc->lock);
            return false;
        }
    if (pc->npending < MAX_PENDING)
        pc->pending[pc->npending++] = (typeof(pc->pending[0])){ gpa, vs_clock_ns() };
    pc->stats.postcopy.faults++;
    pthread_mutex_unlock(&pc->lock);
    return true;
}

/* Page gpa is in place: how long did its faulting thread wait? */
void vs_postcopy_fault_done(struct vs_postcopy_dest *pc, uint64_t gpa, uint64_t now)
{
    pthread_mutex_lock(&pc->lock);
    for (unsigned i = 0; i < pc->npending; i++) {
        if (pc->pending[i].gpa != gpa)
            continue;
        uint64_t wait = now - pc->pending[i].t;
        struct vs_postcopy_stats *st = &pc->stats.postcopy;
        st->fault_wait_ns += wait;
        if (wait > st->fault_wait_max_ns)
            st->fault_wait_max_ns = wait;
        pc->pending[i] = pc->pending[--pc->npending];
        break;
    }
    pthread_mutex_unlock(&pc->lock);
}

void vs_postcopy_request(struct vs_postcopy_dest *pc, const uint64_t *gpa, uint32_t n)
{
    if (!n)
        return;
    struct vs_wire_page_request rq = { .count = n };
    pthread_mutex_lock(&pc->w0_lock);
    if (pc->connected &&
        vs_wire_send_parts(&pc->w0, VS_REC_PAGE_REQUEST, &rq, sizeof(rq), gpa, n * 8ULL) == 0) {
        pthread_mutex_lock(&pc->lock);
        pc->stats.postcopy.requested_pages += n;
        pthread_mutex_unlock(&pc->lock);
    }
    pthread_mutex_unlock(&pc->w0_lock);
}

void *vs_postcopy_fault_thread(void *arg)
{
    struct vs_postcopy_dest *pc = arg;
    uint64_t off[16], req[16];
    while (!atomic_load(&pc->fault_stop)) {
        int n = vs_uffd_read_faults(&pc->uffd, pc->wake_fd, 500, off, 16);
        uint32_t nreq = 0;
        for (int i = 0; i < n; i++) {
            uint64_t p = off[i] / VS_WIRE_PAGE_SIZE;
            if (p >= pc->npages)
                continue;
            if (!vs_page_bit(pc->orig, p)) {
                /* Never written at the source (a hole on both sides): zeros. */
                if (vs_uffd_zero(&pc->uffd, off[i], VS_WIRE_PAGE_SIZE) == -EEXIST)
                    vs_uffd_wake(&pc->uffd, off[i], VS_WIRE_PAGE_SIZE);
            } else if (!vs_page_bit(pc->missing, p)) {
                vs_uffd_wake(&pc->uffd, off[i], VS_WIRE_PAGE_SIZE);   /* arrived meanwhile */
            } else if (pending_add(pc, off[i])) {
                req[nreq++] = off[i];
            }
        }
        vs_postcopy_request(pc, req, nreq);
    }
    return NULL;
}

