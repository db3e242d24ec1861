/* The blocks of a disk the guest wrote while a migration copies the disk (`vmshift migrate
 * --with-disks`): one bit per VS_BLK_DIRTY_BLOCK bytes, set by the disk's I/O thread after a
 * write, discard or write-zeroes reached the file, taken (test and clear) by the migration.
 * Set after the write, so that a block the migration reads before the write landed is
 * marked again and sent again. Bits are atomic: the two sides never take a lock. */
#ifndef VS_BLK_DIRTY_H
#define VS_BLK_DIRTY_H

#include <stdatomic.h>
#include <stdint.h>

#define VS_BLK_DIRTY_BLOCK (64u << 10)   /* = VS_WIRE_DISK_BLOCK */

struct vs_blk_dirty {
    uint64_t nblocks;
    uint64_t nwords;
    _Atomic uint64_t *words;
};

/* For a disk of `size` bytes (the last block may be shorter). */
int vs_blk_dirty_init(struct vs_blk_dirty *d, uint64_t size);
void vs_blk_dirty_destroy(struct vs_blk_dirty *d);
/* Mark the blocks [off, off+len) touches (clipped to the disk). */
void vs_blk_dirty_mark(struct vs_blk_dirty *d, uint64_t off, uint64_t len);
/* Take word i (64 blocks from i*64): its bits, now clear. */
uint64_t vs_blk_dirty_take_word(struct vs_blk_dirty *d, uint64_t i);

#endif
