/* virtio-rng, the entropy device (virtio 1.2, 5.4; device id 4): one queue of
 * device-writable buffers that it fills from the host's getrandom(). No features, no
 * configuration space, no state of its own beyond the transport's (virtio_mmio.h). */
#ifndef VS_VIRTIO_RNG_H
#define VS_VIRTIO_RNG_H

#include <stdint.h>

#include "vmm/virtio/virtio_mmio.h"

#define VS_VIRTIO_ID_RNG 4
#define VS_VIRTIO_RNG_QUEUE_MAX 64
#define VS_VIRTIO_RNG_MAX_REQUEST 4096   /* bytes given per request at most */

struct vs_virtio_rng {
    struct vs_virtio_mmio *transport;    /* owned */
    struct vs_vq_chain chain;            /* the request being served */
    uint64_t requests, bytes;            /* served so far */
};

extern const struct vs_virtio_device_ops vs_virtio_rng_ops;

/* Create the device and put it into the VM as p says (see vs_virtio_mmio_create;
 * virtio_devices.c). */
int vs_virtio_rng_create(struct vs_virtio_rng **out, const struct vs_virtio_mmio_params *p);
void vs_virtio_rng_free(struct vs_virtio_rng *rng);

#endif
