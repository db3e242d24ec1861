/* Digests for the end-to-end check: the same function on both sides over all guest RAM.
 * RAM is cut into 2 MiB blocks hashed in parallel (XXH3-64); the RAM digest is the
 * XXH3-64 of the block digests in address order, so it does not depend on how many
 * threads computed it. Holes of RAM (never-written pages) read as zeros: zeros are
 * hashed in their place without touching, and so allocating, those pages.
 *
 * The digest can run in the background (vs_digest_start/finish) while the last pages and
 * the vCPU state travel, as long as nobody writes RAM meanwhile. */
#ifndef VS_DIGEST_H
#define VS_DIGEST_H

#include <stdint.h>
#include "vmm/memory.h"

#define VS_DIGEST_BLOCK (2ULL << 20)

/* XXH3-64 of block b (the last one may be short); holes are hashed as zeros without
 * touching them. */
uint64_t vs_digest_block(const struct vs_memory *m, uint64_t b);
/* The RAM digest from the block digests (nblocks of them, in address order). */
uint64_t vs_digest_combine(const uint64_t *blocks, uint64_t nblocks);

int vs_digest_ram(const struct vs_memory *m, unsigned threads, uint64_t *digest);

struct vs_digest_job;
/* Start digesting in the background with up to `threads` threads. */
int vs_digest_start(struct vs_digest_job **out, const struct vs_memory *m, unsigned threads);
/* Wait for the result and free the job; *busy_ns = how long the digest took. */
int vs_digest_finish(struct vs_digest_job *job, uint64_t *digest, uint64_t *busy_ns);

#endif
