/* A virtio-rng driver (virtio 1.2, 5.4) for the timer workload on a version 2
 * virtio-mmio device: VERSION_1 is the only feature taken, one split queue holds
 * RNG_BUFFERS small device-writable buffers, the device's interrupt is routed through the
 * IOAPIC, and every used entry is checked (virtq.h) before its buffer is posted again.
 * Buffers go back to the device at once, but the device is notified only every few timer
 * ticks, so the requests come at a steady, low rate. vCPU 0 only. */
#ifndef VS_GUEST_VIRTIO_RNG_H
#define VS_GUEST_VIRTIO_RNG_H

#include <stdint.h>

struct vs_rng_counts {
    uint64_t requests;              /* used entries that passed the checks */
    uint64_t bytes;                 /* entropy bytes they brought */
    uint64_t errors;                /* checks that failed, or the device needing a reset */
    uint64_t interrupts;
};

/* vCPU 0 at boot, after vs_platform_setup, interrupts off: find the first entropy
 * device the probe found and start it. Returns 1 if there is none, 0 once it runs, or -1
 * with a message in err (the workload goes on without it). */
int vs_rng_start(char *err, unsigned errlen);

/* vCPU 0, interrupts off, at each new timer tick: notify the device of the buffers posted
 * again since the last notification, every few ticks. */
void vs_rng_tick(uint64_t tick);

/* Interrupts off. */
void vs_rng_counts(struct vs_rng_counts *out);

#endif
