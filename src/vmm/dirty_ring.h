/* KVM's per-vCPU dirty ring (KVM_CAP_DIRTY_LOG_RING), the alternative to the dirty-log
 * bitmap: while dirty logging is on, KVM appends the page number of every page a vCPU
 * dirties to that vCPU's ring. vmshift harvests the rings into one bitmap of pages
 * dirtied since the last collection, counts the pages per vCPU (the per-vCPU dirty rate
 * and the input of per-vCPU dirty limits), and resets the harvested entries, which
 * write-protects those pages again.
 *
 * The ring must be enabled on the VM before any vCPU exists (vmshift run --dirty-ring).
 * With it KVM refuses KVM_GET_DIRTY_LOG, so src/migrate/precopy/dirty.c collects through
 * vs_dirty_ring_collect() instead.
 *
 * Who harvests: the migration (or dirty-rate measurement) thread at every sync; a reaper
 * thread, every 5 ms while dirty logging is on, each ring that is 1/8 full; a vCPU
 * thread whose ring is full (KVM_EXIT_DIRTY_RING_FULL: it cannot run before its ring
 * has room); a dirty-limited vCPU at its throttle points. One lock serialises them.
 * The reaper is not optional: KVM asks a vCPU to exit when its ring is nearly full, but a
 * guest running in KVM's instruction emulator can dirty more than KVM's reserve before
 * it checks, and a ring that overflows loses pages and stops the vCPU for good (seen
 * here with 4096-entry rings under full-speed dirtying).
 * Invariant: a page is moved into a caller's bitmap only after the reset that
 * re-protected it, so a write after the caller reads the page always leaves a new
 * entry. */
#ifndef VS_DIRTY_RING_H
#define VS_DIRTY_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "vmm/ram_layout.h"

struct kvm_dirty_gfn;
struct vs_kvm;

struct vs_dirty_ring_vcpu {
    struct kvm_dirty_gfn *gfns;        /* the mapped ring (NULL until mapped) */
    uint32_t fetch;                    /* next entry to harvest */
    atomic_uint_fast64_t pages;        /* entries harvested so far (cumulative) */
    atomic_uint_fast64_t full_exits;   /* KVM_EXIT_DIRTY_RING_FULL in a row with nothing
                                          to harvest */
};

struct vs_dirty_ring {
    int vm_fd;
    uint32_t entries;                  /* per vCPU, a power of two */
    uint64_t npages;                   /* pages of RAM (all slots) */
    unsigned nr_slots;                 /* RAM regions = memory slots 0.. */
    uint64_t slot_first[VS_RAM_MAX_REGIONS];  /* a slot's first page as a RAM offset */
    uint64_t slot_pages[VS_RAM_MAX_REGIONS];
    unsigned nr_vcpus;
    pthread_mutex_t lock;              /* harvest + reset + collect */
    _Atomic uint64_t *harvested;       /* npages bits: harvested, not yet collected */
    struct vs_dirty_ring_vcpu *vcpu;
    pthread_t reaper;
    bool reaper_running;
    atomic_bool reaper_stop;
};

#define VS_DIRTY_RING_REAP_NS 5000000ULL

/* Smallest and largest ring a user may ask for (entries per vCPU). */
#define VS_DIRTY_RING_MIN 4096u
#define VS_DIRTY_RING_MAX 65536u

/* Check a ring size a user gave (entries per vCPU): a power of two in range. */
int vs_dirty_ring_check_entries(uint64_t entries);

/* Enable the ring on a VM that has no vCPU yet; guest RAM lies as `layout` says (its
 * regions are memory slots 0..; an entry's slot and page become a RAM-offset page). */
int vs_dirty_ring_create(struct vs_dirty_ring **out, struct vs_kvm *kvm, uint32_t entries,
                         unsigned nr_vcpus, const struct vs_ram_layout *layout);
/* Map the ring of vCPU `index` (right after it was created). */
int vs_dirty_ring_map(struct vs_dirty_ring *r, unsigned index, int vcpu_fd);
void vs_dirty_ring_destroy(struct vs_dirty_ring *r);

/* Harvest every ring, reset, and OR the pages harvested since the last collect into
 * bitmap (npages bits, one per page of RAM offsets). */
int vs_dirty_ring_collect(struct vs_dirty_ring *r, uint64_t *bitmap);
/* A vCPU thread: its ring is full (full: harvest and reset; an error when KVM overflowed
 * the ring), or it wants its count current (harvest only). */
int vs_dirty_ring_harvest_vcpu(struct vs_dirty_ring *r, unsigned index, bool full);
/* Start (while dirty logging is on) or stop the reaper thread. */
int vs_dirty_ring_reaper(struct vs_dirty_ring *r, bool on);
/* Pages vCPU `index` has dirtied so far (entries harvested from its ring). */
uint64_t vs_dirty_ring_vcpu_pages(struct vs_dirty_ring *r, unsigned index);

#endif
