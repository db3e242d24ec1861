/* Shared by the virtio unit tests: a small fake guest RAM (a heap buffer behind a
 * struct vs_memory, with write tracking on) and a fake driver that lays out one split
 * virtqueue in it the way a guest driver would. */
#ifndef VS_TEST_VIRTIO_GUEST_H
#define VS_TEST_VIRTIO_GUEST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/memory.h"
#include "vmm/ram_layout.h"
#include "vmm/virtio/virtqueue.h"

#define GUEST_RAM (1u << 20)
#define GUEST_DESC 0x1000u
#define GUEST_AVAIL 0x2000u
#define GUEST_USED 0x3000u
#define GUEST_BUF 0x10000u       /* buffers from here */

struct guest {
    struct vs_memory mem;
    uint16_t qsize;
    uint16_t avail_idx;          /* the driver's next available index */
};

static inline void guest_init(struct guest *g, uint16_t qsize)
{
    memset(g, 0, sizeof(*g));
    g->mem.memfd = -1;
    g->mem.base = calloc(1, GUEST_RAM);
    g->mem.size = GUEST_RAM;
    vs_ram_layout_init(&g->mem.layout, GUEST_RAM, false);   /* flat: gpa = RAM offset */
    g->qsize = qsize;
    if (!g->mem.base || vs_memory_track_writes(&g->mem, true) < 0)
        abort();
}

static inline void guest_free(struct guest *g)
{
    free(g->mem.base);
    free(g->mem.written);
    free(g->mem.data_blocks);
}

static inline uint8_t *guest_ptr(struct guest *g, uint64_t gpa)
{
    return g->mem.base + gpa;
}

static inline void guest_put16(struct guest *g, uint64_t gpa, uint16_t v) { memcpy(guest_ptr(g, gpa), &v, 2); }
static inline uint16_t guest_get16(struct guest *g, uint64_t gpa)
{
    uint16_t v;
    memcpy(&v, guest_ptr(g, gpa), 2);
    return v;
}
static inline uint32_t guest_get32(struct guest *g, uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, guest_ptr(g, gpa), 4);
    return v;
}

/* Descriptor i of the table at `table` (the queue's own, or an indirect one). */
static inline void guest_desc_at(struct guest *g, uint64_t table, uint16_t i, uint64_t addr,
                                 uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *d = guest_ptr(g, table + 16ull * i);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static inline void guest_desc(struct guest *g, uint16_t i, uint64_t addr, uint32_t len,
                              uint16_t flags, uint16_t next)
{
    guest_desc_at(g, GUEST_DESC, i, addr, len, flags, next);
}

/* Put chain `head` on the available ring and publish it. */
static inline void guest_offer(struct guest *g, uint16_t head)
{
    guest_put16(g, GUEST_AVAIL + 4 + 2u * (g->avail_idx % g->qsize), head);
    g->avail_idx++;
    guest_put16(g, GUEST_AVAIL + 2, g->avail_idx);
}

static inline void guest_set_avail_idx(struct guest *g, uint16_t idx)
{
    g->avail_idx = idx;
    guest_put16(g, GUEST_AVAIL + 2, idx);
}

static inline uint16_t guest_used_idx(struct guest *g) { return guest_get16(g, GUEST_USED + 2); }
static inline uint32_t guest_used_id(struct guest *g, uint16_t n)
{
    return guest_get32(g, GUEST_USED + 4 + 8u * (n % g->qsize));
}
static inline uint32_t guest_used_len(struct guest *g, uint16_t n)
{
    return guest_get32(g, GUEST_USED + 4 + 8u * (n % g->qsize) + 4);
}
static inline void guest_set_used_event(struct guest *g, uint16_t v)
{
    guest_put16(g, GUEST_AVAIL + 4 + 2u * g->qsize, v);
}
static inline uint16_t guest_avail_event(struct guest *g)
{
    return guest_get16(g, GUEST_USED + 4 + 8u * g->qsize);
}

/* The pages the monitor noted as written since the last call (one bit per page). */
#define GUEST_PAGE_WORDS (GUEST_RAM / 4096 / 64)
static inline void guest_collect_writes(struct guest *g, uint64_t bits[GUEST_PAGE_WORDS])
{
    memset(bits, 0, GUEST_PAGE_WORDS * sizeof(uint64_t));
    vs_memory_collect_writes(&g->mem, bits);
}
static inline int page_noted(const uint64_t bits[GUEST_PAGE_WORDS], uint64_t gpa)
{
    uint64_t p = gpa / 4096;
    return (bits[p / 64] >> (p % 64)) & 1;
}

#endif
