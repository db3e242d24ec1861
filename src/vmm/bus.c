/* The device bus (bus.h): per space, a sorted array of non-overlapping ranges searched
 * by binary search. Registration happens before any vCPU runs; dispatch only reads. */
#include "vmm/bus.h"
#include "common/error.h"
#include "common/log.h"

#include <stdatomic.h>
#include <string.h>

#define LOGGED_UNCLAIMED 8   /* the first accesses nobody claims are logged, per space */

const char *vs_bus_space_name(enum vs_bus_space space)
{
    switch (space) {
    case VS_BUS_PIO: return "port I/O";
    case VS_BUS_MMIO: return "MMIO";
    case VS_BUS_SPACES: break;
    }
    return "?";
}

void vs_bus_init(struct vs_bus *bus)
{
    memset(bus, 0, sizeof(*bus));
}

/* Index of the first range whose base is above addr (0..count). */
static unsigned upper_bound(const struct vs_bus_space_ranges *s, uint64_t addr)
{
    unsigned lo = 0, hi = s->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (s->r[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int refuse_overlap(enum vs_bus_space space, const char *name, uint64_t base,
                          uint64_t len, const struct vs_bus_range *o)
{
    return vs_fail(EBUSY, "device %s cannot claim %s 0x%llx-0x%llx: it overlaps %s at "
                   "0x%llx-0x%llx; give one of them another address", name,
                   vs_bus_space_name(space), (unsigned long long)base,
                   (unsigned long long)(base + len - 1), o->name, (unsigned long long)o->base,
                   (unsigned long long)(o->base + o->len - 1));
}

int vs_bus_register(struct vs_bus *bus, enum vs_bus_space space, uint64_t base, uint64_t len,
                    const char *name, vs_bus_handler handler, void *dev)
{
    if (space >= VS_BUS_SPACES)
        return vs_fail(EINVAL, "device %s: bus space %d does not exist", name, (int)space);
    if (!handler)
        return vs_fail(EINVAL, "device %s: no access handler", name);
    if (len == 0 || base + len < base)
        return vs_fail(EINVAL, "device %s cannot claim %s at 0x%llx with length 0x%llx: the "
                       "range is empty or wraps around", name, vs_bus_space_name(space),
                       (unsigned long long)base, (unsigned long long)len);
    struct vs_bus_space_ranges *s = &bus->space[space];
    if (s->count >= VS_BUS_MAX_RANGES)
        return vs_fail(ENOSPC, "device %s cannot claim %s 0x%llx: the bus holds at most %d "
                       "ranges per space", name, vs_bus_space_name(space),
                       (unsigned long long)base, VS_BUS_MAX_RANGES);
    unsigned at = upper_bound(s, base);
    if (at > 0 && s->r[at - 1].base + s->r[at - 1].len > base)
        return refuse_overlap(space, name, base, len, &s->r[at - 1]);
    if (at < s->count && s->r[at].base < base + len)
        return refuse_overlap(space, name, base, len, &s->r[at]);
    memmove(&s->r[at + 1], &s->r[at], (s->count - at) * sizeof(s->r[0]));
    s->r[at] = (struct vs_bus_range){ .base = base, .len = len, .name = name,
                                      .handler = handler, .dev = dev };
    s->count++;
    return 0;
}

static const struct vs_bus_range *find(const struct vs_bus_space_ranges *s, uint64_t addr)
{
    unsigned at = upper_bound(s, addr);
    if (at == 0)
        return NULL;
    const struct vs_bus_range *r = &s->r[at - 1];
    return addr - r->base < r->len ? r : NULL;
}

bool vs_bus_dispatch(struct vs_bus *bus, enum vs_bus_space space, uint64_t addr,
                     struct vs_bus_io *io)
{
    struct vs_bus_space_ranges *s = &bus->space[space];
    const struct vs_bus_range *r = find(s, addr);
    if (r) {
        io->offset = addr - r->base;
        r->handler(r->dev, io);
        return true;
    }
    if (!io->is_write)
        memset(io->data, 0xff, io->size); /* nothing there: the bus floats high */
    uint64_t n = atomic_fetch_add(&s->unclaimed, 1);
    atomic_store(&s->last_unclaimed_addr, addr);
    if (n < LOGGED_UNCLAIMED)
        vs_info("vCPU %u: %u-byte %s of %s 0x%llx: no device there%s", io->vcpu, io->size,
                io->is_write ? "write" : "read", vs_bus_space_name(space),
                (unsigned long long)addr,
                n + 1 == LOGGED_UNCLAIMED ? " (further ones are only counted)" : "");
    return false;
}

uint64_t vs_bus_unclaimed(const struct vs_bus *bus, enum vs_bus_space space,
                          uint64_t *last_addr)
{
    const struct vs_bus_space_ranges *s = &bus->space[space];
    if (last_addr)
        *last_addr = atomic_load(&s->last_unclaimed_addr);
    return atomic_load(&s->unclaimed);
}
