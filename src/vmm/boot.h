/* Booting the guest: loading the kernel ELF, writing the boot information (PVH start_info,
 * memory map, command line) and the identity page tables, and the initial register state
 * for the two entry protocols:
 *  - long: straight into 64-bit mode at the "vmshift" note's entry (our workload guest);
 *  - pvh:  32-bit protected mode at the Xen PVH note's entry (any PVH kernel, as QEMU does). */
#ifndef VS_BOOT_H
#define VS_BOOT_H

#include <stdint.h>
#include <linux/kvm.h>
#include "vmm/memory.h"
#include "vmshift/guest_abi.h"

enum vs_boot_mode { VS_BOOT_AUTO = 0, VS_BOOT_LONG = 1, VS_BOOT_PVH = 2 };

struct vs_boot_entry {
    enum vs_boot_mode mode;   /* never AUTO after vs_boot_load_kernel */
    uint64_t entry;
};

int vs_boot_parse_mode(const char *text, enum vs_boot_mode *mode);
const char *vs_boot_mode_name(enum vs_boot_mode mode);

/* Load the ELF at path into RAM and choose the entry. */
int vs_boot_load_kernel(struct vs_memory *m, const char *path, enum vs_boot_mode mode,
                        struct vs_boot_entry *entry);

/* Write start_info, the memory map and the command line; for long mode also the page
 * tables (identity map with 2 MiB pages of all RAM, and on pc of the MMIO gap up to
 * 4 GiB too, uncached: vs_ram_identity_map_top). */
int vs_boot_write_info(struct vs_memory *m, const struct vs_boot_entry *entry,
                       const char *cmdline);

/* The e820 map of the layout into map[max]: every RAM region, the first one without the
 * legacy [640 KiB, 1 MiB) hole. Returns the number of entries. */
#define VS_BOOT_MEMMAP_MAX 4
unsigned vs_boot_memmap(const struct vs_ram_layout *l, struct hvm_memmap_table_entry *map,
                        unsigned max);

/* Build identity-mapping page tables for guest-physical [0, map_top) into guest memory
 * `ram` (the host address of guest-physical 0; the tables lie below 1 MiB). Returns the
 * CR3 value, or 0 if the tables do not fit. */
uint64_t vs_boot_build_page_tables(uint8_t *ram, uint64_t map_top);
/* Make the 2 MiB mappings of [from, to) in those tables uncached (PCD|PWT): MMIO. */
void vs_boot_uncache_range(uint8_t *ram, uint64_t cr3, uint64_t from, uint64_t to);

/* Initial special and general registers of vCPU `index` for the entry. sregs must hold
 * the vCPU's current values (from KVM_GET_SREGS); only what the protocol defines changes. */
void vs_boot_initial_state(const struct vs_boot_entry *entry, unsigned index, uint64_t cr3,
                           struct kvm_sregs *sregs, struct kvm_regs *regs);

#endif
