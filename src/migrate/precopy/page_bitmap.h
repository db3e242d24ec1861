/* One bit per guest page, shared between threads: atomic test, set and test-and-clear. */
#ifndef VS_PAGE_BITMAP_H
#define VS_PAGE_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

static inline bool vs_page_bit(const uint64_t *map, uint64_t page)
{
    return (__atomic_load_n(&map[page / 64], __ATOMIC_ACQUIRE) >> (page % 64)) & 1;
}

/* Clear the bit; true if it was set (exactly one caller wins a page). */
static inline bool vs_page_bit_take(uint64_t *map, uint64_t page)
{
    uint64_t bit = 1ULL << (page % 64);
    return __atomic_fetch_and(&map[page / 64], ~bit, __ATOMIC_ACQ_REL) & bit;
}

static inline uint64_t vs_page_bitmap_words(uint64_t npages)
{
    return (npages + 63) / 64;
}

static inline uint64_t vs_page_bitmap_count(const uint64_t *map, uint64_t npages)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < vs_page_bitmap_words(npages); i++)
        n += (uint64_t)__builtin_popcountll(__atomic_load_n(&map[i], __ATOMIC_RELAXED));
    return n;
}

#endif
