/* Shared by unit tests of the boot page tables: walk the 4-level tables as the MMU does for
 * a 2 MiB mapping. */
#ifndef VS_TEST_PAGE_WALK_H
#define VS_TEST_PAGE_WALK_H

#include <stdint.h>

/* The physical address va maps to (*ok = 1), or 0 with *ok = 0 when it is not mapped by a
 * present, writable 2 MiB page. *pde_out (if not NULL) gets the page-directory entry. */
static inline uint64_t page_walk(const uint8_t *ram, uint64_t cr3, uint64_t va, int *ok,
                                 uint64_t *pde_out)
{
    const uint64_t *pml4 = (const uint64_t *)(ram + cr3);
    uint64_t e = pml4[(va >> 39) & 511];
    *ok = 0;
    if (!(e & 1))
        return 0;
    const uint64_t *pdpt = (const uint64_t *)(ram + (e & ~0xfffULL));
    e = pdpt[(va >> 30) & 511];
    if (!(e & 1) || (e & 0x80))
        return 0;
    const uint64_t *pd = (const uint64_t *)(ram + (e & ~0xfffULL));
    e = pd[(va >> 21) & 511];
    if (!(e & 1) || !(e & 0x80) || !(e & 2))
        return 0;
    *ok = 1;
    if (pde_out)
        *pde_out = e;
    return (e & ~0x1fffffULL & ((1ULL << 52) - 1)) | (va & 0x1fffff);
}

#endif
