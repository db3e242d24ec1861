#include "vmm/virtio/virtio_rng.h"

#include <sys/random.h>

/* Fill the chain's writable buffers (up to VS_VIRTIO_RNG_MAX_REQUEST bytes); returns the
 * bytes written. Readable buffers (a driver must not give any) are ignored. */
static uint32_t fill_random(struct vs_virtqueue *vq, const struct vs_vq_chain *c)
{
    uint8_t buf[VS_VIRTIO_RNG_MAX_REQUEST];
    size_t want = c->write_bytes < sizeof(buf) ? (size_t)c->write_bytes : sizeof(buf);
    size_t got = 0;
    while (got < want) {
        ssize_t n = getrandom(buf + got, want - got, GRND_NONBLOCK);
        if (n <= 0)
            break;   /* no entropy yet (early host boot) or interrupted: give what we have */
        got += (size_t)n;
    }
    return (uint32_t)vs_vq_chain_write(vq, c, 0, buf, got);
}

static void rng_queue_notify(void *dev, struct vs_virtio_mmio *t, struct vs_virtqueue *vq)
{
    struct vs_virtio_rng *rng = dev;
    (void)t;
    while (vs_vq_pop(vq, &rng->chain) > 0) {
        uint32_t written = fill_random(vq, &rng->chain);
        if (vs_vq_push(vq, rng->chain.head, written) < 0)
            return;
        rng->requests++;
        rng->bytes += written;
    }
    vs_vq_notify_driver(vq);
}

const struct vs_virtio_device_ops vs_virtio_rng_ops = {
    .name = "virtio-rng",
    .device_id = VS_VIRTIO_ID_RNG,
    .features = 0,
    .nr_queues = 1,
    .queue_max = VS_VIRTIO_RNG_QUEUE_MAX,
    .config_size = 0,
    .queue_notify = rng_queue_notify,
};
