/* Dirty-page tracking for pre-copy: KVM's dirty log with manual clearing
 * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, "initially set"), plus the pages the monitor itself
 * wrote (vs_memory_note_write).
 *
 * Each pass: vs_dirty_sync() snapshots the bitmap without stopping the guest; then, unit
 * by unit (src/migrate/precopy/send_streams.c), vs_dirty_clear() re-protects the pages about to
 * be sent, and only after that are they read. A write after the clear marks the page dirty again for the next pass.
 *
 * With the KVM dirty ring (vmshift run --dirty-ring) the same interface collects the
 * rings instead (src/vmm/dirty_ring.c): a sync harvests and resets every vCPU's ring,
 * which re-protects the pages before they are read; vs_dirty_clear() has nothing to do. */
#ifndef VS_DIRTY_H
#define VS_DIRTY_H

#include <stdbool.h>
#include <stdint.h>
#include "vmm/vm.h"

struct vs_dirty {
    struct vs_vm *vm;
    bool manual;               /* manual clear with initially-set bitmap */
    bool ring;                 /* collected from the KVM dirty ring */
    bool first_sync_done;
    uint64_t npages;
    uint64_t *bitmap;          /* npages bits: dirty and not yet sent (accumulates across
                                  syncs until vs_dirty_sent() drops a chunk) */
    uint64_t *scratch;         /* KVM_GET_DIRTY_LOG lands here first */
    uint64_t start_ns;         /* time it took to enable logging */
    uint64_t last_sync_ns;     /* time the last vs_dirty_sync took */
};

/* Enable dirty logging on all of guest RAM. */
int vs_dirty_start(struct vs_dirty *d, struct vs_vm *vm);
/* Add the pages dirtied since the last sync to the pending bitmap; *count = pending
 * pages. The first sync after start reports every page (the first pass sends all RAM). */
int vs_dirty_sync(struct vs_dirty *d, uint64_t *count);
/* Re-arm tracking for the dirty pages of [first, first+n) (first a multiple of 64) before
 * they are read and sent. */
int vs_dirty_clear(struct vs_dirty *d, uint64_t first, uint64_t n);
/* The pending pages of [first, first+n) (first a multiple of 64) have been sent. */
void vs_dirty_sent(struct vs_dirty *d, uint64_t first, uint64_t n);
/* Disable dirty logging and free the bitmap. */
void vs_dirty_stop(struct vs_dirty *d);

#endif
