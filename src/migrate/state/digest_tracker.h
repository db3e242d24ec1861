/* The RAM digest kept up to date while pre-copy runs, so the blackout only re-hashes the
 * few blocks that changed at the end.
 *
 * Every change to guest RAM that matters is reported with vs_digest_mark() after it is
 * made: on the destination, each page written from the stream; on the source, each page
 * sent (a page is sent after the guest changed it, and dirty logging guarantees every
 * change is sent again). A background thread hashes marked blocks once they have been
 * left alone for a moment: it clears the block's mark, hashes it, and keeps the digest
 * only if no new mark arrived meanwhile. vs_digest_tracker_finish() then hashes the
 * blocks still marked and combines all blocks into the same digest vs_digest_ram() gives. */
#ifndef VS_DIGEST_TRACKER_H
#define VS_DIGEST_TRACKER_H

#include <stdint.h>
#include "vmm/memory.h"

struct vs_digest_tracker;

/* All blocks start marked, but only blocks marked since are hashed in the background
 * (the rest, typically never-written holes, cost little in finish()). */
int vs_digest_tracker_new(struct vs_digest_tracker **out, const struct vs_memory *m);
/* RAM offsets [gpa, gpa+len) have changed. Cheap; any thread. */
void vs_digest_mark(struct vs_digest_tracker *t, uint64_t gpa, uint64_t len);
/* Hash marked blocks in a background thread, each once it has had no mark for settle_ms. */
int vs_digest_tracker_start(struct vs_digest_tracker *t, unsigned settle_ms);
/* Stop the background thread (idempotent). */
void vs_digest_tracker_stop(struct vs_digest_tracker *t);
/* With RAM no longer changing: hash what is still marked with up to `threads` threads,
 * and combine. *rehashed = blocks hashed here (may be NULL). */
int vs_digest_tracker_finish(struct vs_digest_tracker *t, unsigned threads, uint64_t *digest,
                             uint64_t *rehashed);
/* With the background thread stopped: leave out of finish() every block holding a page
 * set in `pages` (one bit per page); its digest reads 0 (post-copy: those blocks are
 * checked page by page instead). */
void vs_digest_tracker_skip_pages(struct vs_digest_tracker *t, const uint64_t *pages);
/* After finish: the digest of every 2 MiB block (for post-copy's per-block check). */
const uint64_t *vs_digest_tracker_blocks(const struct vs_digest_tracker *t, uint64_t *nblocks);
void vs_digest_tracker_free(struct vs_digest_tracker *t);

#endif
