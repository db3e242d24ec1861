/* The driver's side of one split virtqueue (virtio 1.2, 2.7): device-writable
 * single-descriptor buffers (vs_vq_post), chains laid out in order (vs_vq_post_chain), or
 * any chain (vs_vq_set_desc, vs_vq_publish), with the checks a driver can make on what the device
 * returns: every used entry names a buffer that is posted and not yet returned, says no
 * more bytes than the buffer holds, and the used index moves forward by at most the
 * number of buffers outstanding. */
#ifndef VS_GUEST_VIRTQ_H
#define VS_GUEST_VIRTQ_H

#include <stdint.h>

#define VS_VQ_MAX 16                /* entries this driver sets a queue up with, at most */
#define VS_VQ_NO_ID 0xffff
#define VS_VQ_DESC_F_NEXT 1
#define VS_VQ_DESC_F_WRITE 2
#define VS_VQ_AVAIL_F_NO_INTERRUPT 1

struct vs_vq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vs_vq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[VS_VQ_MAX];
    uint16_t used_event;            /* unused: no VIRTIO_F_EVENT_IDX */
};

struct vs_vq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct vs_vq_used {
    uint16_t flags;
    uint16_t idx;
    struct vs_vq_used_elem ring[VS_VQ_MAX];
    uint16_t avail_event;
};

/* The rings, one page, laid out at the alignments the spec asks for. */
struct vs_vq_rings {
    struct vs_vq_desc desc[VS_VQ_MAX];                      /* 16-byte aligned */
    struct vs_vq_avail avail __attribute__((aligned(64)));  /* 2-byte aligned */
    struct vs_vq_used used __attribute__((aligned(64)));    /* 4-byte aligned */
} __attribute__((aligned(4096)));

struct vs_vq {
    uint16_t size;                  /* entries in use: a power of two <= VS_VQ_MAX */
    volatile struct vs_vq_rings *r;
    uint16_t avail_idx;             /* the driver's copy of avail.idx */
    uint16_t last_used;             /* used entries taken so far */
    uint16_t outstanding;           /* buffers posted and not yet returned */
    uint8_t in_flight[VS_VQ_MAX];   /* by descriptor (= buffer) id */
    uint32_t posted_len[VS_VQ_MAX];
};

/* Use the zeroed rings r with size entries (a power of two, 1..VS_VQ_MAX). */
void vs_vq_init(struct vs_vq *q, volatile struct vs_vq_rings *r, uint16_t size);

/* Make buffer id (< size, not in flight) of len bytes at guest-physical addr available
 * to the device for writing. The device learns of it at its next notification. */
void vs_vq_post(struct vs_vq *q, uint16_t id, uint64_t addr, uint32_t len);

/* Make a chain of n descriptors available, laid out at ids id..id+n-1 (< size; none in
 * flight) and linked in that order; d[i].next is ignored. The chain is returned under id;
 * its writable buffers' lengths bound the used entry's length. */
void vs_vq_post_chain(struct vs_vq *q, uint16_t id, const struct vs_vq_desc *d, unsigned n);
/* Fill descriptor id (not yet available): len bytes at guest-physical addr, flags
 * VS_VQ_DESC_F_NEXT and/or VS_VQ_DESC_F_WRITE, next the following descriptor of a chain. */
void vs_vq_set_desc(struct vs_vq *q, uint16_t id, uint64_t addr, uint32_t len, uint16_t flags,
                    uint16_t next);
/* Make the chain starting at descriptor head (< size, not in flight) available; write_len
 * is how many device-writable bytes it has (the most the device may say it wrote). */
void vs_vq_publish(struct vs_vq *q, uint16_t head, uint32_t write_len);

/* Used entries the device added since the last call to vs_vq_take_used, checked: their
 * number, or -1 with *why if used.idx moved back or by more than the outstanding
 * buffers (the queue is then unusable). */
int vs_vq_used_new(const struct vs_vq *q, const char **why);

/* Take the next used entry (one per entry vs_vq_used_new counted). 0 with *id and *len;
 * -1 with *why if it names a buffer that is not in flight (*id = VS_VQ_NO_ID) or more
 * bytes than the buffer has (*id is returned, *len clamped). */
int vs_vq_take_used(struct vs_vq *q, uint16_t *id, uint32_t *len, const char **why);

#endif
