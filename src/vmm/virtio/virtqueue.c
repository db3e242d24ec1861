#include "vmm/virtio/virtqueue.h"
#include "common/log.h"
#include "vmm/memory.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Ring layouts (virtio 1.2, 2.7): byte offsets and sizes. */
#define DESC_BYTES 16u
#define AVAIL_RING_OFF 4u    /* after le16 flags, le16 idx */
#define USED_RING_OFF 4u
#define USED_ELEM_BYTES 8u   /* le32 id, le32 len */

/* A descriptor as the device copied it out of guest memory (host byte order). */
struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

static uint64_t desc_table_bytes(uint16_t size) { return (uint64_t)DESC_BYTES * size; }
/* flags, idx, ring[size], used_event */
static uint64_t avail_ring_bytes(uint16_t size) { return 6 + 2ull * size; }
/* flags, idx, ring[size], avail_event */
static uint64_t used_ring_bytes(uint16_t size) { return 6 + (uint64_t)USED_ELEM_BYTES * size; }

void vs_vq_init(struct vs_virtqueue *vq, struct vs_memory *mem, unsigned index,
                struct vs_vq_owner owner)
{
    memset(vq, 0, sizeof(*vq));
    vq->mem = mem;
    vq->index = index;
    vq->owner = owner;
}

void vs_vq_reset(struct vs_virtqueue *vq)
{
    vs_vq_init(vq, vq->mem, vq->index, vq->owner);
}

int vs_vq_break(struct vs_virtqueue *vq, const char *fmt, ...)
{
    if (vq->broken)
        return -EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vq->broken_reason, sizeof(vq->broken_reason), fmt, ap);
    va_end(ap);
    vq->broken = true;
    vs_warn("virtio queue %u stopped: %s; the guest driver must reset the device",
            vq->index, vq->broken_reason);
    if (vq->owner.on_broken)
        vq->owner.on_broken(vq->owner.ctx, vq);
    return -EIO;
}

static uint8_t *avail_ring(const struct vs_virtqueue *vq)
{
    return vs_memory_gpa_ptr(vq->mem, vq->avail_gpa, avail_ring_bytes(vq->size));
}

static uint8_t *used_ring(const struct vs_virtqueue *vq)
{
    return vs_memory_gpa_ptr(vq->mem, vq->used_gpa, used_ring_bytes(vq->size));
}

/* The rings are 2- and 4-aligned (checked), so these are single aligned accesses. */
static uint16_t load16(const uint8_t *p, int order)
{
    return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, order));
}

static void store16(struct vs_virtqueue *vq, uint8_t *ring, uint64_t ring_gpa, uint64_t off,
                    uint16_t v, int order)
{
    __atomic_store_n((uint16_t *)(void *)(ring + off), htole16(v), order);
    vs_memory_note_write(vq->mem, ring_gpa + off, 2);
}

static uint8_t *ring_at(const struct vs_virtqueue *vq, uint64_t gpa, uint64_t len)
{
    return vs_memory_gpa_ptr(vq->mem, gpa, len);
}

bool vs_vq_layout_ok(const struct vs_virtqueue *vq, uint16_t max_size, char *why, size_t why_len)
{
    uint16_t n = vq->size;
    if (n == 0 || n > max_size || n > VS_VQ_MAX_SIZE || (n & (n - 1))) {
        snprintf(why, why_len, "queue size %u is not a power of two from 1 to %u", n, max_size);
        return false;
    }
    if (vq->desc_gpa % 16 || vq->avail_gpa % 2 || vq->used_gpa % 4) {
        snprintf(why, why_len, "rings at 0x%llx/0x%llx/0x%llx are not aligned to 16/2/4",
                 (unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
                 (unsigned long long)vq->used_gpa);
        return false;
    }
    if (!ring_at(vq, vq->desc_gpa, desc_table_bytes(n)) ||
        !ring_at(vq, vq->avail_gpa, avail_ring_bytes(n)) ||
        !ring_at(vq, vq->used_gpa, used_ring_bytes(n))) {
        snprintf(why, why_len, "rings at 0x%llx/0x%llx/0x%llx for %u entries are not all in "
                 "guest RAM", (unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
                 (unsigned long long)vq->used_gpa, n);
        return false;
    }
    return true;
}

int vs_vq_check_layout(struct vs_virtqueue *vq, uint16_t max_size)
{
    char why[sizeof(vq->broken_reason)];
    if (!vs_vq_layout_ok(vq, max_size, why, sizeof(why)))
        return vs_vq_break(vq, "%s", why);
    return 0;
}

static void read_desc(const uint8_t *table, uint32_t i, struct desc *d)
{
    uint8_t raw[DESC_BYTES];
    memcpy(raw, table + (uint64_t)i * DESC_BYTES, sizeof(raw));   /* one copy, then checks */
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
    memcpy(&addr, raw, 8);
    memcpy(&len, raw + 8, 4);
    memcpy(&flags, raw + 12, 2);
    memcpy(&next, raw + 14, 2);
    d->addr = le64toh(addr);
    d->len = le32toh(len);
    d->flags = le16toh(flags);
    d->next = le16toh(next);
}

/* Append one buffer descriptor to the chain. */
static int add_buffer(struct vs_virtqueue *vq, struct vs_vq_chain *c, const struct desc *d)
{
    if (d->len == 0)
        return 0;   /* an empty buffer: allowed, and nothing to access */
    bool writable = d->flags & VS_VQ_DESC_F_WRITE;
    if (!writable && c->nr_segs > c->nr_read)
        return vs_vq_break(vq, "chain %u has a device-readable buffer after a writable one",
                           c->head);
    if (c->nr_segs == VS_VQ_MAX_SEGS)
        return vs_vq_break(vq, "chain %u has more than %u buffers", c->head, VS_VQ_MAX_SEGS);
    uint8_t *host = vs_memory_gpa_ptr(vq->mem, d->addr, d->len);
    if (!host)
        return vs_vq_break(vq, "chain %u: buffer 0x%llx (+%u bytes) is not guest RAM", c->head,
                           (unsigned long long)d->addr, d->len);
    if (c->read_bytes + c->write_bytes + d->len > UINT32_MAX)
        return vs_vq_break(vq, "chain %u is larger than 4 GiB", c->head);
    c->seg[c->nr_segs++] = (struct vs_vq_seg){ .gpa = d->addr, .host = host, .len = d->len };
    if (writable) {
        c->write_bytes += d->len;
    } else {
        c->nr_read++;
        c->read_bytes += d->len;
    }
    return 0;
}

/* Switch the walk to the indirect table `d` refers to. */
static int enter_indirect(struct vs_virtqueue *vq, const struct vs_vq_chain *c, const struct desc *d,
                          bool nested, const uint8_t **table, uint32_t *entries)
{
    if (!vq->indirect)
        return vs_vq_break(vq, "chain %u uses an indirect table, not negotiated", c->head);
    if (nested)
        return vs_vq_break(vq, "chain %u: indirect table inside an indirect table", c->head);
    if (d->flags & VS_VQ_DESC_F_NEXT)
        return vs_vq_break(vq, "chain %u: indirect descriptor with NEXT set", c->head);
    if (d->len == 0 || d->len % DESC_BYTES || d->len / DESC_BYTES > VS_VQ_MAX_SEGS)
        return vs_vq_break(vq, "chain %u: indirect table of %u bytes (want a multiple of %u, "
                           "at most %u entries)", c->head, d->len, DESC_BYTES, VS_VQ_MAX_SEGS);
    *table = vs_memory_gpa_ptr(vq->mem, d->addr, d->len);
    if (!*table)
        return vs_vq_break(vq, "chain %u: indirect table 0x%llx (+%u bytes) is not guest RAM",
                           c->head, (unsigned long long)d->addr, d->len);
    *entries = d->len / DESC_BYTES;
    return 0;
}

/* Follow the chain from `head`: zero or more descriptors of the queue's table, possibly
 * ending in one that points to an indirect table, whose chain starts at its entry 0. No
 * chain visits more descriptors than its table holds, which also ends every loop. */
static int walk_chain(struct vs_virtqueue *vq, uint16_t head, struct vs_vq_chain *c)
{
    const uint8_t *table = vs_memory_gpa_ptr(vq->mem, vq->desc_gpa, desc_table_bytes(vq->size));
    if (!table)
        return vs_vq_break(vq, "descriptor table 0x%llx is not guest RAM",
                           (unsigned long long)vq->desc_gpa);
    uint32_t entries = vq->size, i = head, visited = 0;
    bool in_indirect = false;
    for (;;) {
        if (visited++ >= entries)
            return vs_vq_break(vq, "chain %u is longer than its table of %u descriptors (a loop?)",
                               head, entries);
        struct desc d;
        read_desc(table, i, &d);
        if (d.flags & VS_VQ_DESC_F_INDIRECT) {
            int rc = enter_indirect(vq, c, &d, in_indirect, &table, &entries);
            if (rc < 0)
                return rc;
            in_indirect = true;
            i = 0;
            visited = 0;
            continue;
        }
        int rc = add_buffer(vq, c, &d);
        if (rc < 0)
            return rc;
        if (!(d.flags & VS_VQ_DESC_F_NEXT))
            return 0;
        if (d.next >= entries)
            return vs_vq_break(vq, "chain %u: next descriptor %u outside a table of %u", head,
                               d.next, entries);
        i = d.next;
    }
}

/* With EVENT_IDX: ask the driver to notify once it adds the entry at last_avail_idx, and
 * make that store visible before the available index is read again. */
static void publish_avail_event(struct vs_virtqueue *vq)
{
    uint8_t *used = used_ring(vq);
    if (!used)
        return;
    store16(vq, used, vq->used_gpa, USED_RING_OFF + (uint64_t)USED_ELEM_BYTES * vq->size,
            vq->last_avail_idx, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Entries the driver made available that the device has not taken; breaks on nonsense. */
static int available_entries(struct vs_virtqueue *vq, const uint8_t *avail)
{
    uint16_t idx = load16(avail + 2, __ATOMIC_ACQUIRE);
    uint16_t pending = (uint16_t)(idx - vq->last_avail_idx);
    if (pending > vq->size)
        return vs_vq_break(vq, "available index %u is %u entries ahead of the device's %u, more "
                           "than the queue's %u", idx, pending, vq->last_avail_idx, vq->size);
    return pending;
}

int vs_vq_pop(struct vs_virtqueue *vq, struct vs_vq_chain *chain)
{
    if (vq->broken)
        return -EIO;
    if (!vq->ready)
        return 0;
    const uint8_t *avail = avail_ring(vq);
    if (!avail)
        return vs_vq_break(vq, "available ring 0x%llx is not guest RAM",
                           (unsigned long long)vq->avail_gpa);
    if (vq->event_idx)
        publish_avail_event(vq);
    int pending = available_entries(vq, avail);
    if (pending <= 0)
        return pending;
    uint16_t slot = vq->last_avail_idx % vq->size;
    uint16_t head = load16(avail + AVAIL_RING_OFF + 2u * slot, __ATOMIC_RELAXED);
    if (head >= vq->size)
        return vs_vq_break(vq, "available ring entry %u names descriptor %u of %u", slot, head,
                           vq->size);
    chain->head = head;
    chain->nr_segs = chain->nr_read = 0;
    chain->read_bytes = chain->write_bytes = 0;
    int rc = walk_chain(vq, head, chain);
    if (rc < 0)
        return rc;
    vq->last_avail_idx++;
    if (vq->event_idx)
        publish_avail_event(vq);
    return 1;
}

void vs_vq_unpop(struct vs_virtqueue *vq, uint16_t n)
{
    if (!n || vq->broken || !vq->ready)
        return;
    vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - n);
    if (vq->event_idx)
        publish_avail_event(vq);   /* so the driver notifies when it adds the next one */
}

int vs_vq_pending(struct vs_virtqueue *vq)
{
    if (vq->broken)
        return -EIO;
    if (!vq->ready)
        return 0;
    const uint8_t *avail = avail_ring(vq);
    if (!avail)
        return vs_vq_break(vq, "available ring 0x%llx is not guest RAM",
                           (unsigned long long)vq->avail_gpa);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int n = available_entries(vq, avail);
    return n < 0 ? n : n > 0;
}

int vs_vq_push(struct vs_virtqueue *vq, uint16_t head, uint32_t written)
{
    if (vq->broken || !vq->ready)
        return -EIO;
    if (head >= vq->size)
        return vs_vq_break(vq, "device returned descriptor %u of %u", head, vq->size);
    uint8_t *used = used_ring(vq);
    if (!used)
        return vs_vq_break(vq, "used ring 0x%llx is not guest RAM", (unsigned long long)vq->used_gpa);
    uint64_t off = USED_RING_OFF + (uint64_t)USED_ELEM_BYTES * (vq->used_idx % vq->size);
    uint32_t elem[2] = { htole32(head), htole32(written) };
    memcpy(used + off, elem, sizeof(elem));
    vs_memory_note_write(vq->mem, vq->used_gpa + off, sizeof(elem));
    vq->used_idx++;
    /* Release: the element (and the buffers written before it) is visible before idx. */
    store16(vq, used, vq->used_gpa, 2, vq->used_idx, __ATOMIC_RELEASE);
    return 0;
}

bool vs_vq_notify_driver(struct vs_virtqueue *vq)
{
    if (vq->broken || !vq->ready)
        return false;
    if (vq->signalled_valid && vq->signalled_used == vq->used_idx)
        return false;   /* nothing returned since the last decision */
    const uint8_t *avail = avail_ring(vq);
    if (!avail) {
        vs_vq_break(vq, "available ring 0x%llx is not guest RAM", (unsigned long long)vq->avail_gpa);
        return false;
    }
    /* used->idx is stored before the driver's suppression fields are read. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bool want;
    if (vq->event_idx) {
        uint16_t event = load16(avail + AVAIL_RING_OFF + 2u * vq->size, __ATOMIC_RELAXED);
        /* Did used idx pass used_event + 1 since the last decision? */
        want = !vq->signalled_valid ||
               (uint16_t)(vq->used_idx - event - 1) < (uint16_t)(vq->used_idx - vq->signalled_used);
    } else {
        want = !(load16(avail, __ATOMIC_RELAXED) & VS_VQ_AVAIL_F_NO_INTERRUPT);
    }
    vq->signalled_used = vq->used_idx;
    vq->signalled_valid = true;
    if (want && vq->owner.on_interrupt)
        vq->owner.on_interrupt(vq->owner.ctx, vq);
    return want;
}

size_t vs_vq_chain_read(const struct vs_vq_chain *chain, uint64_t offset, void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < chain->nr_read && done < len; i++) {
        const struct vs_vq_seg *s = &chain->seg[i];
        if (offset >= s->len) {
            offset -= s->len;
            continue;
        }
        size_t n = s->len - offset < len - done ? s->len - offset : len - done;
        memcpy((uint8_t *)buf + done, s->host + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t vs_vq_chain_write(struct vs_virtqueue *vq, const struct vs_vq_chain *chain, uint64_t offset,
                         const void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = chain->nr_read; i < chain->nr_segs && done < len; i++) {
        const struct vs_vq_seg *s = &chain->seg[i];
        if (offset >= s->len) {
            offset -= s->len;
            continue;
        }
        size_t n = s->len - offset < len - done ? s->len - offset : len - done;
        memcpy(s->host + offset, (const uint8_t *)buf + done, n);
        vs_memory_note_write(vq->mem, s->gpa + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}
