#include "vmm/virtio/blk_dirty.h"
#include "common/error.h"

#include <stdlib.h>

int vs_blk_dirty_init(struct vs_blk_dirty *d, uint64_t size)
{
    d->nblocks = (size + VS_BLK_DIRTY_BLOCK - 1) / VS_BLK_DIRTY_BLOCK;
    d->nwords = (d->nblocks + 63) / 64;
    d->words = calloc(d->nwords ? d->nwords : 1, sizeof(*d->words));
    if (!d->words)
        return vs_fail(ENOMEM, "out of memory for the dirty map of a %llu-byte disk",
                       (unsigned long long)size);
    return 0;
}

void vs_blk_dirty_destroy(struct vs_blk_dirty *d)
{
    free((void *)d->words);
    d->words = NULL;
}

void vs_blk_dirty_mark(struct vs_blk_dirty *d, uint64_t off, uint64_t len)
{
    if (!len)
        return;
    uint64_t first = off / VS_BLK_DIRTY_BLOCK;
    uint64_t last = (off + len - 1) / VS_BLK_DIRTY_BLOCK;
    if (off + len < off || last >= d->nblocks)
        last = d->nblocks - 1;
    for (uint64_t b = first; b <= last && b < d->nblocks; b++)
        atomic_fetch_or(&d->words[b / 64], 1ull << (b % 64));
}

uint64_t vs_blk_dirty_take_word(struct vs_blk_dirty *d, uint64_t i)
{
    return i < d->nwords ? atomic_exchange(&d->words[i], 0) : 0;
}
