#include "migrate/disk/disk_wire.h"
#include "common/error.h"

#include <string.h>
#include <xxhash.h>

typedef unsigned long long ull;

static int check_disk(uint32_t disk, const uint64_t *disk_size, unsigned nr)
{
    if (disk >= nr || !disk_size[disk])
        return vs_fail(EPROTO, "disk %u is not one of the disks this destination copies "
                       "(the VM has %u disk(s); HELLO disks_copied names them)", disk, nr);
    return 0;
}

int vs_disk_blocks_parse(const void *payload, size_t len, const uint64_t *disk_size,
                         unsigned nr, struct vs_disk_blocks_view *out)
{
    const uint8_t *p = payload;
    struct vs_wire_disk_blocks *h = &out->head;
    if (len < sizeof(*h) + 8)
        return vs_fail(EPROTO, "DISK_BLOCKS payload of %zu bytes is shorter than its header "
                       "and one block number", len);
    memcpy(h, p, sizeof(*h));
    int rc = check_disk(h->disk, disk_size, nr);
    if (rc)
        return rc;
    if (h->count < 1 || h->count > VS_WIRE_MAX_DISK_BLOCKS)
        return vs_fail(EPROTO, "block count %u is out of range 1..%u", h->count,
                       VS_WIRE_MAX_DISK_BLOCKS);
    if (h->zero > h->count)
        return vs_fail(EPROTO, "%u zero blocks of %u is more than the record holds", h->zero,
                       h->count);
    uint64_t want = sizeof(*h) + (uint64_t)h->count * 8 +
                    (uint64_t)(h->count - h->zero) * VS_WIRE_DISK_BLOCK;
    if (want != len)
        return vs_fail(EPROTO, "%u blocks (%u zero) need a payload of %llu bytes but it has "
                       "%zu", h->count, h->zero, (ull)want, len);
    memcpy(out->block, p + sizeof(*h), (size_t)h->count * 8);
    uint64_t nblocks = vs_disk_nblocks(disk_size[h->disk]);
    for (uint32_t i = 0; i < h->count; i++) {
        if (out->block[i] >= nblocks)
            return vs_fail(EPROTO, "block %u of %u: block %llu is outside disk %u of %llu "
                           "blocks (%llu bytes)", i, h->count, (ull)out->block[i], h->disk,
                           (ull)nblocks, (ull)disk_size[h->disk]);
        for (uint32_t j = 0; j < i; j++)   /* count <= 64 */
            if (out->block[j] == out->block[i])
                return vs_fail(EPROTO, "block %u of %u: block %llu is listed twice (also "
                               "entry %u)", i, h->count, (ull)out->block[i], j);
    }
    out->data = p + sizeof(*h) + (size_t)h->count * 8;
    return 0;
}

int vs_disk_digest_check(const struct vs_wire_disk_digest *d, const uint64_t *disk_size,
                         unsigned nr)
{
    int rc = check_disk(d->disk, disk_size, nr);
    if (rc)
        return rc;
    if (d->reserved)
        return vs_fail(EPROTO, "DISK_DIGEST reserved field is 0x%x, not 0", d->reserved);
    if (d->size != disk_size[d->disk])
        return vs_fail(EPROTO, "disk %u: the source's disk has %llu bytes but this "
                       "destination's file has %llu: create it with the source's size",
                       d->disk, (ull)d->size, (ull)disk_size[d->disk]);
    return 0;
}

uint64_t vs_disk_nblocks(uint64_t size)
{
    return (size + VS_WIRE_DISK_BLOCK - 1) / VS_WIRE_DISK_BLOCK;
}

uint32_t vs_disk_block_len(uint64_t size, uint64_t b)
{
    uint64_t off = b * VS_WIRE_DISK_BLOCK;
    if (off >= size)
        return 0;
    return size - off < VS_WIRE_DISK_BLOCK ? (uint32_t)(size - off) : VS_WIRE_DISK_BLOCK;
}

uint64_t vs_disk_zero_hash(uint32_t len)
{
    static const uint8_t zeros[VS_WIRE_DISK_BLOCK];
    return XXH3_64bits(zeros, len > sizeof(zeros) ? sizeof(zeros) : len);
}

uint64_t vs_disk_digest(const uint64_t *block_hash, uint64_t nblocks)
{
    return XXH3_64bits(block_hash, nblocks * sizeof(uint64_t));
}
