#include "virtio_mmio.h"
#include "io.h"
#include "paging.h"
#include "serial.h"
#include "telemetry.h"

#define REG_MAGIC     0x000
#define REG_VERSION   0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c

enum probe_result { SLOT_DEVICE, SLOT_EMPTY, SLOT_BAD };

/* What the probe found: the device id of each slot with a version 2 device, else 0. */
static const struct vs_guest_params *probed;
static uint32_t slot_device[VS_VIRTIO_MMIO_MAX];

static const char *device_name(uint32_t id)
{
    switch (id) {
    case 1: return "network";
    case 2: return "block";
    case 3: return "console";
    case 4: return "entropy";
    case 5: return "balloon";
    case 9: return "9p";
    case 16: return "gpu";
    case 18: return "input";
    case 19: return "vsock";
    case 26: return "fs";
    }
    return "other";
}

static void slot_prefix(struct vs_line *l, unsigned i, const struct vs_virtio_mmio_slot *s)
{
    vs_line_start(l);
    vs_line_str(l, "vmshift-guest: virtio-mmio slot ");
    vs_line_dec(l, i);
    vs_line_str(l, " at ");
    vs_line_hex(l, s->base);
    vs_line_str(l, " size ");
    vs_line_hex(l, s->size);
    vs_line_str(l, " irq ");
    vs_line_dec(l, s->irq);
    vs_line_str(l, ": ");
}

static enum probe_result probe(unsigned i, const struct vs_virtio_mmio_slot *s, uint32_t *id)
{
    struct vs_line l;
    uint32_t magic, version;

    slot_prefix(&l, i, s);
    if (s->size < VS_VMMIO_REGS_SIZE || vs_map_mmio(s->base, VS_VMMIO_REGS_SIZE)) {
        vs_line_str(&l, "cannot be mapped (too small, or crosses a 2 MiB boundary)");
        vs_line_end(&l);
        return SLOT_BAD;
    }
    magic = mmio_read32(s->base + REG_MAGIC);
    version = mmio_read32(s->base + REG_VERSION);
    *id = mmio_read32(s->base + REG_DEVICE_ID);
    if (magic != VS_VIRTIO_MMIO_MAGIC) {
        vs_line_str(&l, "no virtio-mmio device (magic ");
        vs_line_hex(&l, magic);
        vs_line_str(&l, ")");
    } else if (version != 2) {
        vs_line_str(&l, version == 1 ? "legacy virtio-mmio (version 1), not supported"
                                     : "unknown virtio-mmio version ");
        if (version != 1)
            vs_line_dec(&l, version);
    } else if (*id == 0) {
        vs_line_str(&l, "empty");
        vs_line_end(&l);
        return SLOT_EMPTY;
    } else {
        vs_line_str(&l, "device ");
        vs_line_dec(&l, *id);
        vs_line_str(&l, " (");
        vs_line_str(&l, device_name(*id));
        vs_line_str(&l, ") vendor ");
        vs_line_hex(&l, mmio_read32(s->base + REG_VENDOR_ID));
        vs_line_end(&l);
        return SLOT_DEVICE;
    }
    vs_line_end(&l);
    return SLOT_BAD;
}

void vs_virtio_mmio_probe(const struct vs_guest_params *p)
{
    uint32_t devices = 0, ids = 0;

    probed = p;
    for (unsigned i = 0; i < p->nr_virtio; i++) {
        uint32_t id = 0;

        if (probe(i, &p->virtio[i], &id) != SLOT_DEVICE)
            continue;
        devices++;
        slot_device[i] = id;
        if (id < 32)
            ids |= 1u << id;
    }
    vs_telemetry_virtio(p->nr_virtio, devices, ids);
}

const struct vs_virtio_mmio_slot *vs_virtio_mmio_find(uint32_t id)
{
    return vs_virtio_mmio_find_nth(id, 0);
}

const struct vs_virtio_mmio_slot *vs_virtio_mmio_find_nth(uint32_t id, unsigned n)
{
    for (unsigned i = 0; probed && i < probed->nr_virtio && i < VS_VIRTIO_MMIO_MAX; i++)
        if (slot_device[i] == id && n-- == 0)
            return &probed->virtio[i];
    return 0;
}
