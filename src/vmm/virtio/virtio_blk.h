/* virtio-blk, the block device (virtio 1.2, 5.2; device id 2), over a raw file or block
 * device (blk_backend.h): `vmshift run --disk FILE[,shared][,ro]`.
 *
 * One request queue. The vCPU that notifies takes the chains off the queue, checks each
 * request (blk_request.h) and hands it to the disk's I/O thread, which reads or writes the
 * guest's buffers in place (preadv/pwritev), flushes (fdatasync), discards or zeroes
 * (fallocate), then returns the chain with its status under the transport's lock. At most
 * VS_VIRTIO_BLK_MAX_INFLIGHT requests are out at a time; the rest wait in the ring and are
 * taken as requests complete. Every chain taken is returned exactly once, unless the
 * driver resets the device first (then none is: the driver forgets them too).
 *
 * Requests and the VM's life (vm.c calls these with the vCPUs stopped):
 *  - vs_virtio_blk_quiesce (every pause): take no more chains, wait until every request
 *    taken is complete and returned, flush. What the device wrote into guest RAM is noted
 *    before the pause returns, so the migration's last dirty sync sees it; the device's
 *    state is saved only when nothing is in flight.
 *  - vs_virtio_blk_activate (every start or resume): open the file for writing if it is
 *    not (a destination opens it read-only until the VM is its own, after the commit), then
 *    take the chains the driver made available meanwhile: their notification may have gone
 *    to the source.
 *  - vs_virtio_blk_release (the VM was handed to another host): close the file; the source
 *    can no longer write the disk the destination now owns.
 *
 * Migration: the transport's section "virtio-mmio" (queue state), then the device's own,
 * "virtio-blk" (struct vs_virtio_blk_record): the disk's capacity and read-only flag (the
 * destination's file must match), the id the guest reads, and the in-flight count (always
 * 0: the source drained). */
#ifndef VS_VIRTIO_BLK_H
#define VS_VIRTIO_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/virtio/blk_backend.h"
#include "vmm/virtio/blk_dirty.h"
#include "vmm/virtio/blk_request.h"
#include "vmm/virtio/virtio_mmio.h"

#define VS_VIRTIO_ID_BLOCK 2
#define VS_VIRTIO_BLK_QUEUE_MAX 256
#define VS_VIRTIO_BLK_MAX_INFLIGHT 32
#define VS_VIRTIO_BLK_CONFIG_BYTES 60   /* up to write_zeroes_may_unmap and its padding */

/* Feature bits (virtio 1.2, 5.2.3). */
#define VS_VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VS_VIRTIO_BLK_F_RO (1ull << 5)
#define VS_VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VS_VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VS_VIRTIO_BLK_F_DISCARD (1ull << 13)
#define VS_VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

/* Configuration space offsets (virtio 1.2, 5.2.4). */
#define VS_VIRTIO_BLK_CFG_CAPACITY 0
#define VS_VIRTIO_BLK_CFG_SEG_MAX 12
#define VS_VIRTIO_BLK_CFG_BLK_SIZE 20
#define VS_VIRTIO_BLK_CFG_NUM_QUEUES 34
#define VS_VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VS_VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VS_VIRTIO_BLK_CFG_DISCARD_ALIGN 44
#define VS_VIRTIO_BLK_CFG_MAX_WZ_SECTORS 48
#define VS_VIRTIO_BLK_CFG_MAX_WZ_SEG 52
#define VS_VIRTIO_BLK_CFG_WZ_MAY_UNMAP 56

/* Counters since the device was built (status: "disks"). */
struct vs_virtio_blk_stats {
    uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
    uint64_t bytes_read, bytes_written;
    uint64_t refused;         /* answered IOERR or UNSUPP without reaching the file */
    uint64_t io_errors;       /* the file failed a request (IOERR) */
    uint64_t reconnects;      /* NBD: lost connections made again */
    uint32_t in_flight;
    bool open, writable, running;
};

/* The device's own migration section, "virtio-blk" version 1. */
struct vs_virtio_blk_record {
    uint64_t capacity;        /* sectors */
    uint32_t ro;              /* 0 or 1 */
    uint32_t in_flight;       /* requests not yet returned: always 0 when saved */
    uint8_t id[VS_BLK_ID_BYTES];
    uint32_t pad;             /* 0 */
};

/* A request between the queue and the I/O thread. */
struct vs_blk_slot {
    struct vs_vq_chain chain;
    struct vs_blk_request req;
    uint32_t written;         /* bytes written into the chain's writable buffers */
    struct vs_blk_slot *next;
};

struct vs_virtio_blk {
    struct vs_virtio_mmio *transport;       /* owned (virtio_devices.c) */
    struct vs_virtio_device_ops ops;        /* this disk's: features depend on ro */
    struct vs_blk_backend backend;          /* the I/O thread's, or anyone's with none in flight */
    struct vs_blk_limits limits;
    uint8_t config[VS_VIRTIO_BLK_CONFIG_BYTES];
    uint8_t id[VS_BLK_ID_BYTES];
    struct vs_memory *mem;
    _Atomic(struct vs_blk_dirty *) dirty;   /* a migration copying the disk: blocks written */
    pthread_t thread;
    bool thread_started;
    /* Guarded by lock (taken after the transport's lock, never before it). */
    pthread_mutex_t lock;
    pthread_cond_t cond;                    /* any change below */
    bool stop;                              /* the I/O thread ends */
    bool running;                           /* chains may be taken off the queue */
    bool kick;                              /* the I/O thread looks at the queue (after
                                               activate: never on the caller's thread) */
    bool unflushed;                         /* written since the last flush */
    unsigned in_use, executing;
    struct vs_blk_slot *free, *submitted, *submitted_tail, *done, *done_tail;
    struct vs_virtio_blk_stats stats;
    struct vs_virtio_blk_record rec;
    struct vs_blk_slot slots[VS_VIRTIO_BLK_MAX_INFLIGHT];
};

/* Open the disk of `spec` and prepare the device (no transport, no thread yet): for
 * writing, or read-only when `incoming` (a migration's destination) until activated. */
int vs_virtio_blk_open(struct vs_virtio_blk *d, const char *spec, bool incoming,
                       struct vs_memory *mem);
/* Start the I/O thread, serving `transport` (whose ops are d->ops). */
int vs_virtio_blk_start(struct vs_virtio_blk *d, struct vs_virtio_mmio *transport);
/* Complete what is in flight, flush, stop the thread, close the file. */
void vs_virtio_blk_close(struct vs_virtio_blk *d);

/* The VM's life (see above). Called with the vCPUs stopped, no lock held. */
void vs_virtio_blk_quiesce(struct vs_virtio_blk *d);
int vs_virtio_blk_activate(struct vs_virtio_blk *d);
void vs_virtio_blk_release(struct vs_virtio_blk *d);

/* Mark in `dirty` every block a request writes from now on (NULL: stop). Writes that
 * complete after this returns are all marked. */
void vs_virtio_blk_track_writes(struct vs_virtio_blk *d, struct vs_blk_dirty *dirty);

void vs_virtio_blk_stats(struct vs_virtio_blk *d, struct vs_virtio_blk_stats *out);
static inline const struct vs_blk_spec *vs_virtio_blk_spec(const struct vs_virtio_blk *d)
{
    return &d->backend.spec;
}

/* Create the device and put it into the VM as p says (virtio_devices.c). */
int vs_virtio_blk_create(struct vs_virtio_blk **out, const struct vs_virtio_mmio_params *p,
                         const char *spec, bool incoming);
void vs_virtio_blk_free(struct vs_virtio_blk *d);

extern const struct vs_vmstate vs_virtio_blk_vmstate;

#endif
