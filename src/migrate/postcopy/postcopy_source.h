/* Post-copy on the source: switch a running pre-copy over (the destination runs the VM
 * before every page arrived), then serve the pages it still lacks — on demand first, the
 * rest in the background — and survive a lost connection: it reconnects by itself, or
 * when the operator says where to.
 * docs/state-machine.md ("Post-copy") describes the states. */
#ifndef VS_POSTCOPY_SOURCE_H
#define VS_POSTCOPY_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include "wire/format.h"

struct vs_migration;

/* Switch to post-copy at the end of the current pass (start-postcopy, --converge postcopy,
 * or a throttle that would stall the guest too long). Fails when the destination did not
 * agree to post-copy or pre-copy is not running (any more). Idempotent. */
int vs_postcopy_switch(struct vs_migration *m);
/* Resume a post-copy whose connection was lost, at once: reconnect to `to` (NULL or "":
 * the same address; later automatic attempts go there too) and send what the destination
 * still lacks. Refused unless the migration is postcopy-paused. */
int vs_migration_resume(struct vs_migration *m, const char *to);

/* ---- Hooks of the source state machine (source.c) ---- */
/* Pre-copy stops here and goes on in post-copy (the operator's start-postcopy, or the
 * convergence policy decided, src/migrate/convergence/converge.c): 0 when the switchover that follows
 * will be a post-copy one; an error naming `why` when the destination cannot do it. */
int vs_postcopy_take_over(struct vs_migration *m, const char *why);
/* After pre-copy: set up post-copy if it was asked for (no-op otherwise). */
int vs_postcopy_prepare(struct vs_migration *m);
/* In the blackout, instead of the final pass (vCPUs paused, last sync done): PASS_END
 * final with no pages on every stream, then POSTCOPY_START with the missing-page map. */
int vs_postcopy_start(struct vs_migration *m, uint32_t pass, uint64_t pause_ns);
/* Instead of DIGEST: POSTCOPY_DIGESTS (the per-block digests and the state digests). */
int vs_postcopy_send_digests(struct vs_migration *m, const struct vs_wire_digest *dg);
/* After COMMIT: serve pages until the destination has them all (reconnecting after lost
 * connections). 0 when every page is there. */
int vs_postcopy_source_serve(struct vs_migration *m);
/* The source is going away: stop waiting for a resume (the VM is then lost). */
void vs_postcopy_abandon(struct vs_migration *m);
void vs_postcopy_source_free(struct vs_migration *m);

#endif
