/* Digests for the end-to-end check: the same function on both sides over all guest RAM.
 * RAM is cut into 64 MiB blocks hashed in parallel (XXH3-64); the RAM digest is the
 * XXH3-64 of the block digests in address order, so it does not depend on how many
 * threads computed it. */
#ifndef VS_DIGEST_H
#define VS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define VS_DIGEST_BLOCK (64ULL << 20)

int vs_digest_ram(const uint8_t *ram, uint64_t size, unsigned threads, uint64_t *digest);

#endif
