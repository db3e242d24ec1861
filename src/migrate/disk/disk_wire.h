/* The disk records of the migration stream (version 2.6, docs/stream-format.md "Disks copied
 * with the VM"), as pure checks over a payload already in memory (its sum checked by the
 * reader): no I/O, so the hostile-input tests and the fuzzer run them directly. And the disk
 * digest both sides compute: XXH3-64 over the XXH3-64 of every VS_WIRE_DISK_BLOCK block of
 * the disk (the last block over its own, shorter, length), in block order. */
#ifndef VS_DISK_WIRE_H
#define VS_DISK_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "wire/format.h"

/* A DISK_BLOCKS payload, checked. Pointers into the payload. */
struct vs_disk_blocks_view {
    struct vs_wire_disk_blocks head;
    uint64_t block[VS_WIRE_MAX_DISK_BLOCKS];
    const uint8_t *data;        /* (count - zero) blocks of VS_WIRE_DISK_BLOCK bytes */
};

/* Check a DISK_BLOCKS payload of len bytes against the disks this destination copies
 * (disk_size[i] bytes for disk i; 0: disk i is not copied; nr entries): count 1..64, zero
 * <= count, length exactly 16 + 8*count + 65536*(count - zero), the disk copied, every block
 * inside the disk, no block twice. Errors name the field
 * and the value (no record context: the caller adds it). */
int vs_disk_blocks_parse(const void *payload, size_t len, const uint64_t *disk_size,
                         unsigned nr, struct vs_disk_blocks_view *out);
/* Check a DISK_DIGEST payload (exactly 32 bytes, read by the reader): the disk copied,
 * reserved 0, size equal to the destination's. */
int vs_disk_digest_check(const struct vs_wire_disk_digest *d, const uint64_t *disk_size,
                         unsigned nr);

/* Blocks of a disk of size bytes, and the length of block b (the last may be shorter). */
uint64_t vs_disk_nblocks(uint64_t size);
uint32_t vs_disk_block_len(uint64_t size, uint64_t b);
/* XXH3-64 of len zero bytes (len <= VS_WIRE_DISK_BLOCK). */
uint64_t vs_disk_zero_hash(uint32_t len);
/* The disk digest from its per-block hashes. */
uint64_t vs_disk_digest(const uint64_t *block_hash, uint64_t nblocks);

#endif
