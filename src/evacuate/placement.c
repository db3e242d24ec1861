#include "evacuate/placement.h"

#include <stdlib.h>
#include <string.h>

static int by_size_then_name(const void *a, const void *b, void *ctx)
{
    const struct evac_vm_size *vms = ctx;
    const struct evac_vm_size *x = &vms[*(const unsigned *)a];
    const struct evac_vm_size *y = &vms[*(const unsigned *)b];
    if (x->mem != y->mem)
        return x->mem > y->mem ? -1 : 1;
    return strcmp(x->name, y->name);
}

void evac_order(const struct evac_vm_size *vms, unsigned *idx, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), by_size_then_name, (void *)vms);
}

static bool better(const struct evac_dest_view *a, const struct evac_dest_view *b)
{
    if (a->incoming != b->incoming)
        return a->incoming < b->incoming;
    if (a->limited != b->limited)
        return !a->limited;             /* no budget: room for anything */
    return a->limited && a->free > b->free;
}

int evac_pick_dest(const struct evac_dest_view *d, unsigned n, uint64_t mem)
{
    int best = -1;
    for (unsigned i = 0; i < n; i++) {
        if (!d[i].reachable || d[i].tried || (d[i].limited && d[i].free < mem))
            continue;
        if (best < 0 || better(&d[i], &d[best]))
            best = (int)i;
    }
    return best;
}
