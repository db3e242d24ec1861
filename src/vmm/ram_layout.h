/* Where guest RAM lies in guest-physical space, and where each piece lies in the RAM
 * mapping. Pure arithmetic (no memory, no KVM), shared by the monitor and the CLI checks.
 *
 * Two address spaces:
 *  - a RAM offset: a byte of the RAM mapping, 0..size. The migration engine works on RAM
 *    offsets only (dirty bitmaps, the stream's page addresses, digests, post-copy);
 *  - a guest-physical address (GPA): what the guest, its page tables, the e820 map,
 *    devices and --preload use.
 * flat machine: one region, GPA == RAM offset.
 * pc machine:   below = min(size, 3 GiB) at GPA 0 (offset 0), the rest at GPA 4 GiB
 *               (offset `below`). [3 GiB, 4 GiB) is the MMIO gap: device MMIO, the IOAPIC
 *               (0xFEC00000) and the LAPIC (0xFEE00000). Below 3 GiB both spaces agree. */
#ifndef VS_RAM_LAYOUT_H
#define VS_RAM_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#define VS_PC_MMIO_GAP_START (3ULL << 30)
#define VS_PC_HIGH_RAM_START (4ULL << 30)
#define VS_RAM_MAX_REGIONS   2

/* Guest-physical [gpa, gpa+size) is RAM offsets [offset, offset+size). Region i is
 * registered with KVM as memory slot i. */
struct vs_ram_region {
    uint64_t gpa;
    uint64_t offset;
    uint64_t size;
};

struct vs_ram_layout {
    bool mmio_gap;                  /* pc: RAM skips [3 GiB, 4 GiB) */
    unsigned nr_regions;            /* 1 or 2, in ascending GPA and offset order */
    struct vs_ram_region regions[VS_RAM_MAX_REGIONS];
};

/* The layout of `size` bytes of RAM: one region from 0 (mmio_gap false: flat), or the pc
 * split around the MMIO gap. */
void vs_ram_layout_init(struct vs_ram_layout *l, uint64_t size, bool mmio_gap);

/* The RAM offset of gpa if all of [gpa, gpa+len) lies in one region (len 0: gpa inside a
 * region); false if it touches the gap or lies beyond RAM. */
bool vs_ram_gpa_to_offset(const struct vs_ram_layout *l, uint64_t gpa, uint64_t len,
                          uint64_t *offset);
/* The GPA of a RAM offset (offset < RAM size); UINT64_MAX beyond RAM. */
uint64_t vs_ram_offset_to_gpa(const struct vs_ram_layout *l, uint64_t offset);
/* The end of the highest region: the first GPA above all RAM. */
uint64_t vs_ram_top(const struct vs_ram_layout *l);
/* Bytes of RAM at or above gpa (counted across the gap). */
uint64_t vs_ram_bytes_from(const struct vs_ram_layout *l, uint64_t gpa);
/* The GPA span the boot page tables identity-map: all RAM, and on pc also the MMIO gap
 * up to 4 GiB so the guest reaches its devices, the IOAPIC and the LAPIC. */
uint64_t vs_ram_identity_map_top(const struct vs_ram_layout *l);

#endif
