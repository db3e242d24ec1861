/* The blocks of the `disk` workload: 4 KiB blocks that say which block they are, which
 * pass (sequence number) wrote them, and carry a checksum over all their words. The guest
 * writes and verifies them; the tests check a disk file with the same functions.
 * Pure, freestanding, shared by the guest, the monitor's tests and the host.
 *
 *   word 0      VS_DISK_BLOCK_MAGIC
 *   word 1      block number (byte offset on the disk / 4096)
 *   word 2      sequence number (the workload's pass, from 1)
 *   words 3-510 a stream derived from (seed, block, sequence)
 *   word 511    checksum of words 0-510
 */
#ifndef VMSHIFT_DISK_FORMAT_H
#define VMSHIFT_DISK_FORMAT_H

#include <stdint.h>
#include "page_format.h"

#define VS_DISK_BLOCK_BYTES 4096u
#define VS_DISK_BLOCK_WORDS 512u
#define VS_DISK_BLOCK_MAGIC 0x4b4c425356534d56ULL   /* "VMSVSBLK" */

enum vs_disk_check {
    VS_DISK_OK = 0,
    VS_DISK_EMPTY = 1,        /* all zeros: never written */
    VS_DISK_NOT_A_BLOCK = 2,  /* no magic: something else is there */
    VS_DISK_WRONG_BLOCK = 3,  /* a block of another place */
    VS_DISK_BAD_SUM = 4,      /* torn or corrupted */
    VS_DISK_BAD_DATA = 5,     /* the checksum holds but the contents are not the stream */
    VS_DISK_STALE = 6,        /* a good block of another sequence number */
};

static inline uint64_t vs_disk_stream_start(uint64_t seed, uint64_t block, uint64_t seq)
{
    return vs_mix64(seed ^ vs_mix64(block ^ (seq << 40)));
}

static inline uint64_t vs_disk_stream_next(uint64_t x)
{
    return x * 6364136223846793005ULL + 1442695040888963407ULL;
}

static inline uint64_t vs_disk_sum(const volatile uint64_t *w)
{
    uint64_t s = 0xcbf29ce484222325ULL;
    for (unsigned i = 0; i < VS_DISK_BLOCK_WORDS - 1; i++)
        s = (s ^ w[i]) * 0x100000001b3ULL;
    return s;
}

static inline void vs_disk_block_fill(volatile uint64_t *w, uint64_t seed, uint64_t block,
                                      uint64_t seq)
{
    uint64_t x = vs_disk_stream_start(seed, block, seq);
    w[0] = VS_DISK_BLOCK_MAGIC;
    w[1] = block;
    w[2] = seq;
    for (unsigned i = 3; i < VS_DISK_BLOCK_WORDS - 1; i++) {
        w[i] = x;
        x = vs_disk_stream_next(x);
    }
    w[VS_DISK_BLOCK_WORDS - 1] = vs_disk_sum(w);
}

/* Check block `block` against sequence `seq`; *found_seq gets the sequence the block
 * carries (0 when it is not a good block). seq 0 asks for any good block. */
static inline int vs_disk_block_check(const volatile uint64_t *w, uint64_t seed, uint64_t block,
                                      uint64_t seq, uint64_t *found_seq)
{
    *found_seq = 0;
    if (w[0] != VS_DISK_BLOCK_MAGIC) {
        for (unsigned i = 0; i < VS_DISK_BLOCK_WORDS; i++)
            if (w[i])
                return VS_DISK_NOT_A_BLOCK;
        return VS_DISK_EMPTY;
    }
    if (w[1] != block)
        return VS_DISK_WRONG_BLOCK;
    if (vs_disk_sum(w) != w[VS_DISK_BLOCK_WORDS - 1])
        return VS_DISK_BAD_SUM;
    uint64_t x = vs_disk_stream_start(seed, block, w[2]);
    for (unsigned i = 3; i < VS_DISK_BLOCK_WORDS - 1; i++) {
        if (w[i] != x)
            return VS_DISK_BAD_DATA;
        x = vs_disk_stream_next(x);
    }
    *found_seq = w[2];
    return seq && w[2] != seq ? VS_DISK_STALE : VS_DISK_OK;
}

#endif
