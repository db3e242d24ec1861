/* Page contents both the loader and the guest can compute: the fill patterns the monitor
 * writes before boot, and the self-checking page format of the `verify` workload.
 * Pure, freestanding, shared by the guest, the monitor and the tests. */
#ifndef VMSHIFT_PAGE_FORMAT_H
#define VMSHIFT_PAGE_FORMAT_H

#include <stdint.h>
#include "guest_abi.h"

#define VS_PAGE_SIZE  4096ULL
#define VS_PAGE_WORDS 512

/* splitmix64 finaliser: a fast bijective mixer. */
static inline uint64_t vs_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The 64-bit word the loader writes at guest-physical address `paddr` (8-byte aligned). */
static inline uint64_t vs_fill_word(uint32_t fill, uint64_t seed, uint64_t paddr)
{
    switch (fill) {
    case VS_FILL_PATTERN:
        return paddr | 0xa500000000000000ULL;
    case VS_FILL_RANDOM:
        return vs_mix64(seed ^ (paddr * 0x2545f4914f6cdd1dULL));
    default:
        return 0;
    }
}

/* ---- verify workload: every written page carries a header and a trailer ----
 * word 0: page address (guest-physical), word 1: generation, word 2: checksum,
 * word 511: checksum ^ VS_VERIFY_TRAILER_TAG.  A page is good for generation g when all
 * four agree with g; anything else is stale (older generation), torn (header and trailer
 * disagree) or wrong (address or checksum mismatch). */
#define VS_VERIFY_TRAILER_TAG 0x7472616c6965722eULL

enum vs_verify_result {
    VS_VERIFY_OK = 0,
    VS_VERIFY_WRONG_ADDR = 1,
    VS_VERIFY_STALE = 2,
    VS_VERIFY_BAD_SUM = 3,
    VS_VERIFY_TORN = 4,
};

static inline uint64_t vs_verify_sum(uint64_t paddr, uint64_t gen, uint64_t seed)
{
    return vs_mix64(paddr ^ vs_mix64(gen ^ seed));
}

static inline void vs_verify_write(volatile uint64_t *page, uint64_t paddr, uint64_t gen,
                                   uint64_t seed)
{
    uint64_t sum = vs_verify_sum(paddr, gen, seed);
    page[0] = paddr;
    page[1] = gen;
    page[2] = sum;
    page[VS_PAGE_WORDS - 1] = sum ^ VS_VERIFY_TRAILER_TAG;
}

static inline int vs_verify_check(const volatile uint64_t *page, uint64_t paddr,
                                  uint64_t gen, uint64_t seed)
{
    uint64_t a = page[0], g = page[1], sum = page[2], trailer = page[VS_PAGE_WORDS - 1];
    if (a != paddr)
        return VS_VERIFY_WRONG_ADDR;
    if (sum != vs_verify_sum(paddr, g, seed))
        return VS_VERIFY_BAD_SUM;
    if ((trailer ^ VS_VERIFY_TRAILER_TAG) != sum)
        return VS_VERIFY_TORN;
    if (g != gen)
        return VS_VERIFY_STALE;
    return VS_VERIFY_OK;
}

#endif
