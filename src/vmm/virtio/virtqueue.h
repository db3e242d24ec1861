/* The device side of a virtio 1.x split virtqueue (virtio 1.2, 2.7), shared by every virtio
 * device: taking descriptor chains off the available ring, returning them on the used ring,
 * and deciding whether the driver wants an interrupt (VIRTIO_F_EVENT_IDX or the ring's
 * NO_INTERRUPT flag).
 *
 * Everything in the rings and descriptors is written by the guest and is hostile: every
 * index is taken modulo the queue size or checked against it, every chain is bounded by
 * the size of the table it lives in, every buffer address goes through vs_memory_gpa_ptr,
 * each descriptor is copied out of guest memory once and only the copy is checked and used.
 * When the guest gives anything invalid the queue becomes broken: it does nothing more
 * until the device is reset, and the owner (the transport) is told through on_broken so
 * that it sets DEVICE_NEEDS_RESET.
 *
 * Every write into guest RAM (used ring, avail_event, buffers) is reported with
 * vs_memory_note_write so that migration sends those pages again.
 *
 * Not thread-safe: the owner serialises calls (the transport's lock). */
#ifndef VS_VIRTQUEUE_H
#define VS_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_memory;

#define VS_VQ_MAX_SIZE 32768u          /* the largest queue size virtio allows */
/* The most buffers (descriptors that are not indirect tables) one chain may have; a device
 * MAY limit this (virtio 1.2, 2.7.4.1). Bounds an indirect table too. */
#define VS_VQ_MAX_SEGS 1024u

/* Descriptor flags (virtq_desc.flags). */
#define VS_VQ_DESC_F_NEXT 1u
#define VS_VQ_DESC_F_WRITE 2u
#define VS_VQ_DESC_F_INDIRECT 4u
#define VS_VQ_AVAIL_F_NO_INTERRUPT 1u

/* One buffer of a chain, already checked to be guest RAM. */
struct vs_vq_seg {
    uint64_t gpa;
    uint8_t *host;
    uint32_t len;
};

/* A descriptor chain taken off the available ring: its device-readable buffers first
 * (seg[0 .. nr_read)), then its device-writable ones (seg[nr_read .. nr_segs)). */
struct vs_vq_chain {
    uint16_t head;              /* what goes back in the used ring */
    unsigned nr_segs, nr_read;
    uint64_t read_bytes, write_bytes;
    struct vs_vq_seg seg[VS_VQ_MAX_SEGS];
};

struct vs_virtqueue;

/* What a queue tells its owner. Called from inside the vs_vq_* call that caused it. */
struct vs_vq_owner {
    void (*on_broken)(void *ctx, struct vs_virtqueue *vq);   /* the queue just broke */
    void (*on_interrupt)(void *ctx, struct vs_virtqueue *vq); /* the driver wants an interrupt */
    void *ctx;
};

/* One queue's state. The fields from `size` to `signalled_valid` are the queue's
 * migratable state (virtio_mmio.h's record carries them). */
struct vs_virtqueue {
    struct vs_memory *mem;
    struct vs_vq_owner owner;
    unsigned index;              /* in its device: for messages */
    /* Set by the driver through the transport. */
    uint16_t size;               /* QueueNum: a power of two, 1..VS_VQ_MAX_SIZE */
    bool ready;                  /* QueueReady */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    /* Negotiated features. */
    bool event_idx, indirect;
    /* The device's progress. */
    uint16_t last_avail_idx;     /* the next available-ring entry to take */
    uint16_t used_idx;           /* the next used-ring entry to fill (== used->idx) */
    uint16_t signalled_used;     /* used_idx when the driver was last asked about an interrupt */
    bool signalled_valid;        /* false: ask as if never asked (after reset or load) */
    bool broken;
    char broken_reason[120];
};

/* A fresh queue (not ready, not broken) on mem. */
void vs_vq_init(struct vs_virtqueue *vq, struct vs_memory *mem, unsigned index,
                struct vs_vq_owner owner);
/* Back to the state after init (device reset): everything but mem, owner and index. */
void vs_vq_reset(struct vs_virtqueue *vq);

/* Whether the driver's queue setup is usable (size a power of two no larger than
 * max_size; rings aligned and inside RAM); if not, *why says what is wrong. */
bool vs_vq_layout_ok(const struct vs_virtqueue *vq, uint16_t max_size, char *why, size_t why_len);
/* The same check before the queue is used: breaks the queue and returns -EIO when wrong. */
int vs_vq_check_layout(struct vs_virtqueue *vq, uint16_t max_size);

/* Whether the queue may be used: ready and not broken. */
static inline bool vs_vq_usable(const struct vs_virtqueue *vq)
{
    return vq->ready && !vq->broken;
}

/* Take the next chain off the available ring into *chain. Returns 1 when one was taken,
 * 0 when the ring is empty (or the queue not ready), -EIO when the queue is (or just
 * became) broken. With EVENT_IDX it also writes avail_event, asking the driver to notify
 * on the next buffer it adds; the barrier in here makes a device that pops until 0 never
 * miss that notification. */
int vs_vq_pop(struct vs_virtqueue *vq, struct vs_vq_chain *chain);
/* Give back the last n chains vs_vq_pop took and the device has not returned: the next
 * pops take them again (from the ring, checked again). For a device that found it needs
 * more chains than the driver has made available (a frame spread over several). */
void vs_vq_unpop(struct vs_virtqueue *vq, uint16_t n);
/* Whether the available ring holds chains not yet taken (0/1), or -EIO if broken. */
int vs_vq_pending(struct vs_virtqueue *vq);

/* Return chain `head` to the driver with `written` bytes written into its device-writable
 * buffers. The used element is visible before used->idx moves. 0, or -EIO (broken). */
int vs_vq_push(struct vs_virtqueue *vq, uint16_t head, uint32_t written);
/* After one or more pushes: if the driver wants an interrupt for them, tell the owner
 * (on_interrupt). Returns whether it did. */
bool vs_vq_notify_driver(struct vs_virtqueue *vq);

/* Copy between a chain's buffers and the host. `offset` counts from the first readable
 * (for read) or the first writable (for write) byte. Return the bytes copied (less than
 * len when the buffers end first). Writes are noted dirty. */
size_t vs_vq_chain_read(const struct vs_vq_chain *chain, uint64_t offset, void *buf, size_t len);
size_t vs_vq_chain_write(struct vs_virtqueue *vq, const struct vs_vq_chain *chain, uint64_t offset,
                         const void *buf, size_t len);

/* Mark the queue broken (the device found a request it cannot accept): logs reason once,
 * stops the queue and tells the owner. Returns -EIO. */
int vs_vq_break(struct vs_virtqueue *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
