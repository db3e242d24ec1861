/* The pc machine's virtio-mmio slots: where each virtio device of a VM sits in the MMIO gap,
 * which GSI it interrupts on, and the kernel parameters that announce the slots to the guest
 * (Linux's "virtio_mmio.device=SIZE@BASE:IRQ", also read by our workload guest).
 *
 * Slot N is at VS_PC_VIRTIO_BASE + N * VS_VIRTIO_MMIO_SIZE. Slots are handed out in a fixed
 * order (virtio-rng first, then NICs, then disks, each in the order given), so a source and a
 * destination built from the same device list put every device in the same slot; a device's
 * slot is also its state sections' instance number. */
#ifndef VS_PC_VIRTIO_SLOTS_H
#define VS_PC_VIRTIO_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define VS_PC_VIRTIO_BASE 0xd0000000ULL
#define VS_PC_VIRTIO_SLOTS 8   /* the guest's limit too (guest/params.h VS_VIRTIO_MMIO_MAX) */

/* Slot `slot`'s MMIO base and GSI. Refused (-ENOSPC, with a message): slot out of range. */
int vs_pc_virtio_slot(unsigned slot, uint64_t *base, uint32_t *gsi);

/* Write " virtio_mmio.device=..." for slots 0..nr_slots-1 into buf (NUL-terminated).
 * Returns the length, or -E2BIG if it does not fit, -ENOSPC if nr_slots is too many. */
int vs_pc_virtio_cmdline(char *buf, size_t size, unsigned nr_slots);

#endif
