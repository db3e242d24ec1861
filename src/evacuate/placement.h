/* Where and in which order `vmshift evacuate` moves VMs. Pure logic.
 *
 * Order: largest VM first (ties by name). The longest migrations start first, so the
 * drain does not end with one large VM migrating alone while the link idles (the
 * longest-processing-time rule for scheduling jobs on parallel machines).
 * Destination: among the hosts not yet tried for this VM that have room for it (no
 * budget, or a free budget at least the VM's RAM), the one with the fewest migrations
 * coming in right now (spreading the network load), then the most free memory. */
#ifndef VS_PLACEMENT_H
#define VS_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

struct evac_vm_size {
    const char *name;
    uint64_t mem;
};

/* Sort idx[0..n) (indexes into vms) into migration order. */
void evac_order(const struct evac_vm_size *vms, unsigned *idx, unsigned n);

struct evac_dest_view {
    bool reachable;         /* host-status answered */
    bool limited;           /* it has a --max-mem budget */
    uint64_t free;          /* what is left of it */
    unsigned incoming;      /* migrations to it running now */
    bool tried;             /* already asked for this VM */
};

/* The destination for a VM of `mem` bytes, or -1 if none has room. */
int evac_pick_dest(const struct evac_dest_view *d, unsigned n, uint64_t mem);

#endif
