/* The incoming side of a live migration: handshake, capacity check, a paused skeleton
 * VM, then the pages, the state, the end-to-end check, and resume only after the
 * source's COMMIT. Any error before that discards the skeleton. */
#ifndef VS_DEST_H
#define VS_DEST_H

#include <stdint.h>
#include "migrate/precopy/recv_tuning.h"
#include "migrate/report.h"
#include "transport/channel.h"
#include "vmm/vm.h"
#include "vmm/device_list.h"
#include "wire/format.h"

struct vs_postcopy_dest;

struct vs_incoming_opts {
    const char *kvm_device;
    const char *serial;         /* the migrated guest's COM1 output */
    uint64_t max_mem;           /* refuse VMs with more RAM (0: only what the host has) */
    unsigned max_vcpus;         /* refuse VMs with more vCPUs (0: up to VS_MAX_VCPUS) */
    int timeout_ms;             /* a silent source is an error after this */
    int handshake_timeout_ms;   /* each stream's first record must arrive within this,
                                   however slowly the peer sends it (0: no limit) */
    const char *security;       /* "tls-psk", "tls-cert", "insecure": for the report */
    /* Where the extra streams of a multi-stream migration come from (NULL: one stream
     * only): the next secured connection, waiting up to timeout_ms; `want` says how many
     * more are expected (they may be secured together). Returns 0 with *out; 1 when a
     * connection was refused (it logged why); a negative errno when none came. */
    int (*accept_stream)(void *ctx, unsigned want, int timeout_ms, struct vs_channel **out);
    void *accept_ctx;
    /* Post-copy: when the VM continues in post-copy, *postcopy gets the engine that
     * fetches the rest (NULL: this caller cannot serve one; the source is not offered it).
     * A lost post-copy is resumed through accept_stream, at resume_addr. */
    struct vs_postcopy_dest **postcopy;
    const char *resume_addr;
    /* This host's backends for the VM's NICs and disks (`vmshift receive --nic/--disk`);
     * NULL or empty: build the devices the source describes (VM_CONFIG). */
    const struct vs_device_list *local_devices;
    /* How pages go into guest RAM (--page-writes, --prefault-threads). */
    struct vs_recv_tuning tuning;
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
    VS_INCOMING_POSTCOPY = 2,   /* verified, continuing in post-copy: *vm is about to run
                                   here (after COMMIT) while *opts->postcopy fetches the
                                   pages it lacks; stream 0's channel belongs to it now */
    VS_INCOMING_NOT_A_SOURCE = 3,   /* the connection never sent a valid HELLO (silent,
                                   trickling, not vmshift): nothing was created, the
                                   reason is in vs_last_error(); wait for another */
};

/* Receive one VM over ch. On success returns VS_INCOMING_RUNNING or VS_INCOMING_IN_DOUBT
 * with *vm set; VS_INCOMING_POSTCOPY (see above); VS_INCOMING_NOT_A_SOURCE without one;
 * on failure a negative errno (with the reason in vs_last_error()) and no VM. stats gets
 * the destination's view (bytes, passes, verify time); session who sent it (set once
 * HELLO has been read). */
int vs_incoming_run(struct vs_channel *ch, const struct vs_incoming_opts *opts,
                    struct vs_vm **vm, struct vs_migration_stats *stats,
                    struct vs_incoming_session *session);

#endif
