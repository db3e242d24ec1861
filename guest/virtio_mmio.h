/* Virtio-mmio discovery as Linux does it: the slots come from virtio_mmio.device=
 * parameters; each is probed (magic, version 2, device id), reported on the console and
 * summed up in the telemetry header. The drivers (virtio_rng.c) find their slot with
 * vs_virtio_mmio_find. */
#ifndef VS_GUEST_VIRTIO_MMIO_H
#define VS_GUEST_VIRTIO_MMIO_H

#include "params.h"

#define VS_VIRTIO_MMIO_MAGIC 0x74726976u     /* "virt" */

/* Registers of a version 2 (modern) virtio-mmio device (virtio 1.2, 4.2.2). */
#define VS_VMMIO_DEVICE_FEATURES     0x010
#define VS_VMMIO_DEVICE_FEATURES_SEL 0x014
#define VS_VMMIO_DRIVER_FEATURES     0x020
#define VS_VMMIO_DRIVER_FEATURES_SEL 0x024
#define VS_VMMIO_QUEUE_SEL           0x030
#define VS_VMMIO_QUEUE_NUM_MAX       0x034
#define VS_VMMIO_QUEUE_NUM           0x038
#define VS_VMMIO_QUEUE_READY         0x044
#define VS_VMMIO_QUEUE_NOTIFY        0x050
#define VS_VMMIO_INTERRUPT_STATUS    0x060
#define VS_VMMIO_INTERRUPT_ACK       0x064
#define VS_VMMIO_STATUS              0x070
#define VS_VMMIO_QUEUE_DESC_LOW      0x080
#define VS_VMMIO_QUEUE_DESC_HIGH     0x084
#define VS_VMMIO_QUEUE_DRIVER_LOW    0x090
#define VS_VMMIO_QUEUE_DRIVER_HIGH   0x094
#define VS_VMMIO_QUEUE_DEVICE_LOW    0x0a0
#define VS_VMMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VS_VMMIO_REGS_SIZE           0x100

#define VS_VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VS_VIRTIO_STATUS_DRIVER      2u
#define VS_VIRTIO_STATUS_DRIVER_OK   4u
#define VS_VIRTIO_STATUS_FEATURES_OK 8u
#define VS_VIRTIO_STATUS_NEEDS_RESET 64u
#define VS_VIRTIO_STATUS_FAILED      128u
#define VS_VIRTIO_INT_VRING          1u
#define VS_VIRTIO_INT_CONFIG         2u

/* vCPU 0 at boot, before the other vCPUs run (it maps the slots). */
void vs_virtio_mmio_probe(const struct vs_guest_params *p);

/* The first slot the probe found a version 2 device with virtio device id `id` in (its
 * registers are mapped), or NULL. */
const struct vs_virtio_mmio_slot *vs_virtio_mmio_find(uint32_t id);
/* The same for the n-th such slot (0: the first), or NULL. */
const struct vs_virtio_mmio_slot *vs_virtio_mmio_find_nth(uint32_t id, unsigned n);

#endif
