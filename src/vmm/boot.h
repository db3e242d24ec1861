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
 * tables (identity map of all RAM with 2 MiB pages). */
int vs_boot_write_info(struct vs_memory *m, const struct vs_boot_entry *entry,
                       const char *cmdline);

/* Build identity-mapping page tables for ram_size bytes into guest memory `ram` (which
 * starts at guest-physical 0). Returns the CR3 value, or 0 if the tables do not fit. */
uint64_t vs_boot_build_page_tables(uint8_t *ram, uint64_t ram_size);

/* Initial special and general registers of vCPU `index` for the entry. sregs must hold
 * the vCPU's current values (from KVM_GET_SREGS); only what the protocol defines changes. */
void vs_boot_initial_state(const struct vs_boot_entry *entry, unsigned index, uint64_t cr3,
                           struct kvm_sregs *sregs, struct kvm_regs *regs);

#endif
