/* The incoming side of a live migration: handshake, capacity check, a paused skeleton
 * VM, then the pages, the state, the end-to-end check, and resume only after the
 * source's COMMIT. Any error before that discards the skeleton. */
#ifndef VS_DEST_H
#define VS_DEST_H

#include <stdint.h>
#include "migrate/report.h"
#include "transport/channel.h"
#include "vmm/vm.h"
#include "wire/format.h"

struct vs_incoming_opts {
    const char *kvm_device;
    const char *serial;         /* the migrated guest's COM1 output */
    uint64_t max_mem;           /* refuse VMs with more RAM (0: only what the host has) */
    int timeout_ms;             /* a silent source is an error after this */
    /* Where the extra streams of a multi-stream migration come from (NULL: one stream
     * only): wait up to timeout_ms for the next connection. */
    int (*accept_stream)(void *ctx, int timeout_ms, struct vs_channel **out);
    void *accept_ctx;
};

/* Who sent the VM, for settling the outcome if stream 0 is lost in the commit window. */
struct vs_incoming_session {
    uint8_t id[VS_WIRE_SESSION_LEN];   /* HELLO's session */
    uint16_t resolve_port;             /* the source's RESOLVE port (0: it has none) */
    char source[80];                   /* stream 0's peer address, "HOST:PORT" */
};

enum vs_incoming_result {
    VS_INCOMING_RUNNING = 0,    /* committed: *vm runs here */
    VS_INCOMING_IN_DOUBT = 1,   /* verified, but COMMIT never came: *vm is paused here, and
                                   the operator decides (see docs/state-machine.md) */
};

/* Receive one VM over ch. On success returns VS_INCOMING_RUNNING or VS_INCOMING_IN_DOUBT
 * with *vm set; on failure a negative errno (with the reason in vs_last_error()) and no
 * VM. stats gets the destination's view (bytes, passes, verify time); session who sent
 * it (set once HELLO has been read). */
int vs_incoming_run(struct vs_channel *ch, const struct vs_incoming_opts *opts,
                    struct vs_vm **vm, struct vs_migration_stats *stats,
                    struct vs_incoming_session *session);

#endif
