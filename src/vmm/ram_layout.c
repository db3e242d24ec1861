#include "vmm/ram_layout.h"

#include <string.h>

void vs_ram_layout_init(struct vs_ram_layout *l, uint64_t size, bool mmio_gap)
{
    memset(l, 0, sizeof(*l));
    l->mmio_gap = mmio_gap;
    uint64_t below = mmio_gap && size > VS_PC_MMIO_GAP_START ? VS_PC_MMIO_GAP_START : size;
    l->regions[0] = (struct vs_ram_region){ .gpa = 0, .offset = 0, .size = below };
    l->nr_regions = 1;
    if (size > below) {
        l->regions[1] = (struct vs_ram_region){
            .gpa = VS_PC_HIGH_RAM_START, .offset = below, .size = size - below,
        };
        l->nr_regions = 2;
    }
}

bool vs_ram_gpa_to_offset(const struct vs_ram_layout *l, uint64_t gpa, uint64_t len,
                          uint64_t *offset)
{
    for (unsigned i = 0; i < l->nr_regions; i++) {
        const struct vs_ram_region *r = &l->regions[i];
        if (gpa < r->gpa || gpa - r->gpa >= r->size)
            continue;
        if (len > r->size - (gpa - r->gpa))
            return false;
        *offset = r->offset + (gpa - r->gpa);
        return true;
    }
    return false;
}

uint64_t vs_ram_offset_to_gpa(const struct vs_ram_layout *l, uint64_t offset)
{
    for (unsigned i = 0; i < l->nr_regions; i++) {
        const struct vs_ram_region *r = &l->regions[i];
        if (offset >= r->offset && offset - r->offset < r->size)
            return r->gpa + (offset - r->offset);
    }
    return UINT64_MAX;
}

uint64_t vs_ram_top(const struct vs_ram_layout *l)
{
    const struct vs_ram_region *last = &l->regions[l->nr_regions - 1];
    return last->gpa + last->size;
}

uint64_t vs_ram_bytes_from(const struct vs_ram_layout *l, uint64_t gpa)
{
    uint64_t bytes = 0;
    for (unsigned i = 0; i < l->nr_regions; i++) {
        const struct vs_ram_region *r = &l->regions[i];
        uint64_t end = r->gpa + r->size;
        if (gpa < end)
            bytes += end - (gpa > r->gpa ? gpa : r->gpa);
    }
    return bytes;
}

uint64_t vs_ram_identity_map_top(const struct vs_ram_layout *l)
{
    uint64_t top = vs_ram_top(l);
    return l->mmio_gap && top < VS_PC_HIGH_RAM_START ? VS_PC_HIGH_RAM_START : top;
}
