/* The destination's side of the commit window (docs/state-machine.md, "The commit
 * window"), for as long as `vmshift receive` holds the VM: answer the source's RESOLVE
 * calls on the listening address, and, while the copy is in doubt, ask the source's
 * RESOLVE endpoint until the outcome is known. */
#ifndef VS_DEST_RESOLVE_H
#define VS_DEST_RESOLVE_H

#include <stdbool.h>
#include "migrate/precopy/dest.h"
#include "migrate/report.h"
#include "transport/channel.h"

struct vs_dest_resolver;
struct vs_resolve_conn;
struct vs_tls;

struct vs_dest_resolver_opts {
    /* The receiver's listener: the next admitted (accepted and secured) connection, as
     * vs_incoming_opts.accept_stream. */
    int (*accept)(void *ctx, unsigned want, int timeout_ms, struct vs_channel **out);
    void *accept_ctx;
    struct vs_tls *tls;         /* TLS client side for asking the source (NULL: plain) */
    bool in_doubt;              /* the VM is paused in doubt (else it runs) */
    bool *quit;                 /* set on a decision to discard the copy (the caller's
                                   monitor loop then ends) */
    struct vs_migration_stats *stats;   /* its status follows the outcome */
};

/* Start serving for vm, which is running or paused in doubt. */
int vs_dest_resolver_start(struct vs_dest_resolver **out, const struct vs_dest_resolver_opts *o,
                           struct vs_vm *vm, const struct vs_incoming_session *session);
/* VS_OUTCOME_DST_IN_DOUBT, _RUNNING or _DISCARDED. */
uint32_t vs_dest_resolver_state(struct vs_dest_resolver *r);
void vs_dest_resolver_stop(struct vs_dest_resolver *r);

/* The destination's answer on a settling connection c whose first RESOLVE said `said`:
 * decide(ctx, said) acts on the source's state and returns ours; a committed source may
 * grant on the same connection when we say we are in doubt. Used by the resolver above
 * and by the post-copy engine, which owns the listener in post-copy. */
void vs_dest_resolve_answer(struct vs_resolve_conn *c, const uint8_t *session, uint32_t said,
                            uint32_t (*decide)(void *ctx, uint32_t said), void *ctx);

/* After a migration failed before this side verified its copy (which it discarded): is
 * the source process gone? One call to its RESOLVE endpoint (addr gets it, "HOST:PORT"),
 * saying our copy is discarded. 1: provably gone (connection refused, or another process
 * that knows no such session), and the VM died with it; 0: it answered (it keeps the
 * VM); a negative errno when it cannot be told (unreachable, no endpoint). */
int vs_dest_probe_source(const struct vs_incoming_session *session, struct vs_tls *tls,
                         int timeout_ms, char *addr, size_t addr_size);

#endif
