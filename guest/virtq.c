#include "virtq.h"

/* x86 keeps stores in order and loads in order: the compiler must not reorder either. */
#define barrier() __asm__ volatile("" : : : "memory")

void vs_vq_init(struct vs_vq *q, volatile struct vs_vq_rings *r, uint16_t size)
{
    q->size = size;
    q->r = r;
    q->avail_idx = 0;
    q->last_used = 0;
    q->outstanding = 0;
    for (unsigned i = 0; i < VS_VQ_MAX; i++) {
        q->in_flight[i] = 0;
        q->posted_len[i] = 0;
    }
    r->avail.flags = 0;             /* interrupt on every used buffer */
    r->avail.idx = 0;
}

void vs_vq_set_desc(struct vs_vq *q, uint16_t id, uint64_t addr, uint32_t len, uint16_t flags,
                    uint16_t next)
{
    volatile struct vs_vq_rings *r = q->r;

    r->desc[id].addr = addr;
    r->desc[id].len = len;
    r->desc[id].flags = flags;
    r->desc[id].next = next;
}

void vs_vq_publish(struct vs_vq *q, uint16_t head, uint32_t write_len)
{
    volatile struct vs_vq_rings *r = q->r;

    q->in_flight[head] = 1;
    q->posted_len[head] = write_len;
    q->outstanding++;
    r->avail.ring[q->avail_idx % q->size] = head;
    barrier();                      /* the entry before the index that publishes it */
    r->avail.idx = ++q->avail_idx;
    barrier();
}

void vs_vq_post(struct vs_vq *q, uint16_t id, uint64_t addr, uint32_t len)
{
    vs_vq_set_desc(q, id, addr, len, VS_VQ_DESC_F_WRITE, 0);
    vs_vq_publish(q, id, len);
}

void vs_vq_post_chain(struct vs_vq *q, uint16_t id, const struct vs_vq_desc *d, unsigned n)
{
    uint32_t writable = 0;

    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = d[i].flags & VS_VQ_DESC_F_WRITE;

        if (i + 1 < n)
            flags |= VS_VQ_DESC_F_NEXT;
        if (flags & VS_VQ_DESC_F_WRITE)
            writable += d[i].len;
        vs_vq_set_desc(q, (uint16_t)(id + i), d[i].addr, d[i].len, flags, (uint16_t)(id + i + 1));
    }
    vs_vq_publish(q, id, writable);
}

int vs_vq_used_new(const struct vs_vq *q, const char **why)
{
    uint16_t n = (uint16_t)(q->r->used.idx - q->last_used);

    barrier();                      /* the index before the entries it covers */
    if (n > q->outstanding) {
        *why = n > 0x8000 ? "used index moved backwards"
                          : "used index moved past the buffers outstanding";
        return -1;
    }
    return n;
}

int vs_vq_take_used(struct vs_vq *q, uint16_t *id, uint32_t *len, const char **why)
{
    volatile struct vs_vq_used_elem *e = &q->r->used.ring[q->last_used % q->size];
    uint32_t got_id = e->id, got_len = e->len;

    q->last_used++;
    if (got_id >= q->size || !q->in_flight[got_id]) {
        *id = VS_VQ_NO_ID;
        *len = 0;
        *why = got_id >= q->size ? "used entry names no buffer"
                                 : "used entry returns a buffer already returned (completed twice)";
        return -1;
    }
    *id = (uint16_t)got_id;
    q->in_flight[got_id] = 0;
    q->outstanding--;
    if (got_len > q->posted_len[got_id]) {
        *len = q->posted_len[got_id];
        *why = "used entry says more bytes than the buffer holds";
        return -1;
    }
    *len = got_len;
    return 0;
}
