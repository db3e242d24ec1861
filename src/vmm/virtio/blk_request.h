/* A virtio-blk request (virtio 1.2, 5.2.6) as the device reads it out of one descriptor
 * chain: the 16-byte header in the chain's device-readable bytes, the data after it (OUT,
 * DISCARD, WRITE_ZEROES) or in the device-writable bytes (IN, GET_ID), and the status byte,
 * the chain's last device-writable byte.
 *
 * Everything here comes from the guest and is checked before any of it reaches the
 * backend: the type, the data length (whole sectors), the sector range against the
 * capacity (no overflow: the count is checked against what is left after the first
 * sector), the ranges of DISCARD and WRITE_ZEROES (count, flags, sizes), a write to a
 * read-only disk. A request that fails a check gets its status (IOERR or UNSUPP) and never
 * reaches the backend. A chain that cannot carry a request at all (no complete header, no
 * status byte) is reported as such: the device stops the queue (the driver broke the
 * protocol, and there is nowhere to put a status).
 *
 * Pure: no I/O, no locks (the unit tests and the fuzz target call it directly). */
#ifndef VS_BLK_REQUEST_H
#define VS_BLK_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/virtio/virtqueue.h"

#define VS_BLK_SECTOR 512u
#define VS_BLK_HEADER_BYTES 16u
#define VS_BLK_ID_BYTES 20u            /* GET_ID: the device's serial, NUL-padded */
#define VS_BLK_RANGE_BYTES 16u         /* one DISCARD / WRITE_ZEROES segment */
#define VS_BLK_MAX_RANGES 16u          /* segments per DISCARD / WRITE_ZEROES request */

/* Request types (virtio 1.2, 5.2.6). */
#define VS_BLK_T_IN 0u
#define VS_BLK_T_OUT 1u
#define VS_BLK_T_FLUSH 4u
#define VS_BLK_T_GET_ID 8u
#define VS_BLK_T_GET_LIFETIME 10u
#define VS_BLK_T_DISCARD 11u
#define VS_BLK_T_WRITE_ZEROES 13u
#define VS_BLK_T_SECURE_ERASE 14u

/* Status values. */
#define VS_BLK_S_OK 0u
#define VS_BLK_S_IOERR 1u
#define VS_BLK_S_UNSUPP 2u

#define VS_BLK_WZ_F_UNMAP 1u           /* WRITE_ZEROES: the range may be deallocated */

/* What the disk accepts (the device's configuration space says the same to the driver). */
struct vs_blk_limits {
    uint64_t capacity;                 /* sectors */
    bool ro;
    uint32_t max_discard_sectors, max_discard_seg;
    uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
};

/* One DISCARD or WRITE_ZEROES segment, checked: inside the disk. */
struct vs_blk_range {
    uint64_t sector, nr_sectors;
    bool unmap;
};

struct vs_blk_request {
    uint32_t type;
    uint64_t sector;                   /* IN, OUT: the first sector */
    uint8_t status;                    /* VS_BLK_S_OK: to be served; else the answer */
    uint64_t data_len;                 /* IN, OUT: bytes of data (whole sectors); GET_ID:
                                          bytes of the buffer for the id */
    unsigned nr_ranges;                /* DISCARD, WRITE_ZEROES */
    struct vs_blk_range range[VS_BLK_MAX_RANGES];
    char why[96];                      /* when status is not OK: what was wrong */
};

/* Read and check the request in chain c. Returns 0 with *req filled (its status says
 * whether it may be served), or -1 with req->why when the chain has no room for a header
 * or a status byte. */
int vs_blk_parse(const struct vs_vq_chain *c, const struct vs_blk_limits *lim,
                 struct vs_blk_request *req);

/* The I/O vector of the request's data: for IN the writable bytes before the status byte,
 * for OUT the readable bytes after the header. At most `max` entries (a chain has at most
 * VS_VQ_MAX_SEGS buffers, so VS_VQ_MAX_SEGS always suffice). Returns the entries used. */
unsigned vs_blk_data_iov(const struct vs_vq_chain *c, const struct vs_blk_request *req,
                         struct iovec *iov, unsigned max);

/* The offset of the status byte in the chain's writable bytes. */
static inline uint64_t vs_blk_status_offset(const struct vs_vq_chain *c)
{
    return c->write_bytes - 1;
}

#endif
