/* The device bus: devices claim ranges of port-I/O or MMIO space; the vCPU loop hands
 * every KVM_EXIT_IO / KVM_EXIT_MMIO to vs_bus_dispatch(), which finds the owner by binary
 * search. Ranges are registered while the VM is built (before any vCPU runs) and never
 * change afterwards, so dispatch takes no lock; each device locks its own state.
 * An access nobody claims is counted per space (reads return all ones, as on a floating
 * bus) and reported by vs_bus_unclaimed(); the first few are logged with their address. */
#ifndef VS_BUS_H
#define VS_BUS_H

#include <stdbool.h>
#include <stdint.h>

enum vs_bus_space { VS_BUS_PIO = 0, VS_BUS_MMIO = 1, VS_BUS_SPACES };

/* One access, as a device sees it. */
struct vs_bus_io {
    uint64_t offset;     /* from the start of the device's range */
    uint8_t *data;       /* `size` bytes, little-endian; a read fills them */
    unsigned size;       /* 1, 2, 4 or 8 */
    bool is_write;
    unsigned vcpu;       /* the vCPU that made the access */
    uint64_t stall_us;   /* out: the device asks that this vCPU pause this long afterwards */
};

typedef void (*vs_bus_handler)(void *dev, struct vs_bus_io *io);

#define VS_BUS_MAX_RANGES 64

struct vs_bus_range {
    uint64_t base, len;
    const char *name;        /* "serial0", "virtio-mmio1", ...: for messages */
    vs_bus_handler handler;
    void *dev;
};

struct vs_bus_space_ranges {
    struct vs_bus_range r[VS_BUS_MAX_RANGES];   /* sorted by base, never overlapping */
    unsigned count;
    _Atomic uint64_t unclaimed;                 /* accesses that hit no range */
    _Atomic uint64_t last_unclaimed_addr;
};

struct vs_bus {
    struct vs_bus_space_ranges space[VS_BUS_SPACES];
};

void vs_bus_init(struct vs_bus *bus);
/* Claim [base, base+len) of `space` for `dev`. Refused (with an error naming both
 * devices and ranges) when it overlaps a registered range, is empty, wraps, or the space
 * is full. */
int vs_bus_register(struct vs_bus *bus, enum vs_bus_space space, uint64_t base, uint64_t len,
                    const char *name, vs_bus_handler handler, void *dev);
/* Hand one access at absolute address `addr` to its owner (io->offset is set here).
 * Returns false when nobody claims it: a read gets all ones, and the miss is counted. */
bool vs_bus_dispatch(struct vs_bus *bus, enum vs_bus_space space, uint64_t addr,
                     struct vs_bus_io *io);
/* Accesses so far that no device claimed, and the address of the last one. */
uint64_t vs_bus_unclaimed(const struct vs_bus *bus, enum vs_bus_space space,
                          uint64_t *last_addr);
const char *vs_bus_space_name(enum vs_bus_space space);

#endif
