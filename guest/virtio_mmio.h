/* Virtio-mmio discovery as Linux does it: the slots come from virtio_mmio.device=
 * parameters; each is probed (magic, version 2, device id), reported on the console and
 * summed up in the telemetry header. No drivers yet. */
#ifndef VS_GUEST_VIRTIO_MMIO_H
#define VS_GUEST_VIRTIO_MMIO_H

#include "params.h"

#define VS_VIRTIO_MMIO_MAGIC 0x74726976u     /* "virt" */

/* vCPU 0 at boot, before the other vCPUs run (it maps the slots). */
void vs_virtio_mmio_probe(const struct vs_guest_params *p);

#endif
