/* The destination's side of the commit window (docs/state-machine.md, "The commit
 * window"), for as long as `vmshift receive` holds the VM: answer the source's RESOLVE
 * calls on the listening address, and, while the copy is in doubt, ask the source's
 * RESOLVE endpoint until the outcome is known. */
#ifndef VS_DEST_RESOLVE_H
#define VS_DEST_RESOLVE_H

#include <stdbool.h>
#include "migrate/dest.h"
#include "migrate/report.h"
#include "transport/tcp.h"

struct vs_dest_resolver;

/* Start serving for vm, which is running (in_doubt false) or paused in doubt. On a
 * decision to discard the copy, *quit is set (the caller's monitor loop then ends).
 * stats->status follows the outcome. */
int vs_dest_resolver_start(struct vs_dest_resolver **out, struct vs_tcp_listener *l,
                           struct vs_vm *vm, const struct vs_incoming_session *session,
                           bool in_doubt, bool *quit, struct vs_migration_stats *stats);
/* VS_OUTCOME_DST_IN_DOUBT, _RUNNING or _DISCARDED. */
uint32_t vs_dest_resolver_state(struct vs_dest_resolver *r);
void vs_dest_resolver_stop(struct vs_dest_resolver *r);

#endif
