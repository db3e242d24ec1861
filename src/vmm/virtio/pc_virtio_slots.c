#include "vmm/virtio/pc_virtio_slots.h"
#include "vmm/virtio/virtio_mmio.h"
#include "common/error.h"

#include <stdio.h>

/* ISA interrupt lines nobody else on the pc machine uses (0 PIT, 1 keyboard, 2 cascade,
 * 4 COM1, 8 RTC, 13 FPU, 14/15 the IDE controllers of a PC stay free of virtio). */
static const uint32_t slot_gsi[VS_PC_VIRTIO_SLOTS] = { 5, 9, 10, 11, 7, 6, 3, 12 };

int vs_pc_virtio_slot(unsigned slot, uint64_t *base, uint32_t *gsi)
{
    if (slot >= VS_PC_VIRTIO_SLOTS)
        return vs_fail(ENOSPC, "the VM needs virtio slot %u; the pc machine has %d (virtio-rng, "
                       "NICs and disks together): give fewer --nic/--disk", slot + 1,
                       VS_PC_VIRTIO_SLOTS);
    *base = VS_PC_VIRTIO_BASE + (uint64_t)slot * VS_VIRTIO_MMIO_SIZE;
    *gsi = slot_gsi[slot];
    return 0;
}

int vs_pc_virtio_cmdline(char *buf, size_t size, unsigned nr_slots)
{
    if (nr_slots > VS_PC_VIRTIO_SLOTS)
        return -ENOSPC;
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    for (unsigned i = 0; i < nr_slots; i++) {
        uint64_t base;
        uint32_t gsi;
        vs_pc_virtio_slot(i, &base, &gsi);
        int n = snprintf(buf + len, len < size ? size - len : 0,
                         " virtio_mmio.device=0x%x@0x%llx:%u", (unsigned)VS_VIRTIO_MMIO_SIZE,
                         (unsigned long long)base, gsi);
        if (n < 0 || len + (size_t)n >= size)
            return -E2BIG;
        len += (size_t)n;
    }
    return (int)len;
}
