/* The source's pass loop and --with-disks (src/migrate/disk/disk_send.c): each pass sends
 * the disks' blocks on stream 0 before the pages, and the convergence model counts them. */
#include "migrate/precopy/source_internal.h"
#include "common/error.h"
#include "common/log.h"

/* Disk blocks in the convergence model and the progress: as many 4 KiB pages. */
#define DISK_BLOCK_PAGES (VS_WIRE_DISK_BLOCK / VS_WIRE_PAGE_SIZE)

/* Post-copy cannot take a VM whose disks are copied: the destination would run on a disk
 * that lacks the blocks still to come. */
bool vs_source_disks_refuse_postcopy(struct vs_migration *m, bool asked)
{
    if (!m->disks)
        return false;
    atomic_store(&m->post.requested, false);
    vs_warn("migration to %s: not switching to post-copy (%s): its disks are copied with "
            "it (--with-disks); pre-copy goes on", m->opts.to,
            asked ? "start-postcopy was asked for" : "pre-copy is not converging");
    return true;
}

/* After each disk record: stop when cancelled, and share the bandwidth cap. */
static int disk_pace(void *ctx, uint64_t bytes)
{
    struct vs_migration *m = ctx;
    pthread_mutex_lock(&m->lock);   /* progress while a long bulk pass runs */
    m->stats.transferred_bytes = vs_send_streams_bytes(m);
    m->stats.disk = m->disk_rep;
    pthread_mutex_unlock(&m->lock);
    int rc = vs_source_check_cancel(m);
    return rc ? rc : vs_send_streams_throttle(m, bytes);
}

/* The pass's disk blocks (stream 0, before the pass's pages); ps counts them. */
static int send_disk_pass(struct vs_migration *m, uint32_t pass, struct vs_pass_stats *ps,
                          uint64_t *disk_ns)
{
    *disk_ns = 0;
    if (!m->disks)
        return 0;
    int rc = vs_disk_send_pass(m->disks, m->w, pass, disk_pace, m, ps, &m->disk_rep);
    *disk_ns = ps->duration_ns;
    ps->duration_ns = 0;
    return rc;
}

/* The RAM pass after the disk's: its time and bytes are the pass's too. */
int vs_source_send_pass(struct vs_migration *m, uint32_t pass, bool final,
                        struct vs_pass_stats *ps)
{
    uint64_t disk_ns, disk_bytes = 0;
    int rc = send_disk_pass(m, pass, ps, &disk_ns);
    disk_bytes = ps->bytes;
    ps->bytes = 0;
    if (!rc)
        rc = vs_send_streams_pass(m, pass, final, ps);
    ps->duration_ns += disk_ns;
    ps->bytes += disk_bytes;
    return rc;
}

uint64_t vs_source_disk_pending_pages(struct vs_migration *m)
{
    return vs_disk_send_sync(m->disks) * DISK_BLOCK_PAGES;
}
