#include "paging.h"
#include "io.h"

#define PTE_P       0x001ULL
#define PTE_RW      0x002ULL
#define PTE_PWT     0x008ULL
#define PTE_PCD     0x010ULL
#define PTE_PS      0x080ULL
#define PTE_ADDR    0x000ffffffffff000ULL
#define PAGE_2M     (2ULL << 20)
#define SPARE_PAGES 4               /* page directories / PDPTs for MMIO */

static uint64_t spare[SPARE_PAGES][512] __attribute__((aligned(4096)));
static unsigned spare_used;

/* The table entry e points to, made present from a spare zeroed page if it is not. */
static uint64_t *next_table(uint64_t *e)
{
    if (!(*e & PTE_P)) {
        if (spare_used == SPARE_PAGES)
            return 0;
        /* .bss is zero and identity-mapped: virtual address = physical address. */
        *e = (uint64_t)(uintptr_t)spare[spare_used++] | PTE_P | PTE_RW;
    }
    return (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
}

int vs_map_mmio(uint64_t addr, uint64_t len)
{
    uint64_t page = addr & ~(PAGE_2M - 1);
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR), *pdpt, *pd, *pdpte;

    if (len == 0 || ((addr + len - 1) & ~(PAGE_2M - 1)) != page)
        return -1;
    pdpt = next_table(&pml4[(addr >> 39) & 511]);
    if (!pdpt)
        return -1;
    pdpte = &pdpt[(addr >> 30) & 511];
    /* A 1 GiB page already maps it identity (both boot paths map identity only). */
    if ((*pdpte & PTE_P) && (*pdpte & PTE_PS))
        return 0;
    pd = next_table(pdpte);
    if (!pd)
        return -1;
    pd[(addr >> 21) & 511] = page | PTE_P | PTE_RW | PTE_PS | PTE_PCD | PTE_PWT;
    invlpg(page);
    return 0;
}
