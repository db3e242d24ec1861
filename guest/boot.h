/* Constants and symbols shared by entry.S and the C side of the boot.
 * Kept free of C so the assembler can include it; main.c checks the values that mirror
 * include/vmshift/guest_abi.h with static assertions. */
#ifndef VS_GUEST_BOOT_H
#define VS_GUEST_BOOT_H

/* Selectors of the guest's own GDT (entry.S). */
#define VS_GDT_CODE64 0x08
#define VS_GDT_DATA   0x10

/* ELF note types (mirrors VS_XEN_ELFNOTE_PHYS32_ENTRY and VS_ELFNOTE_ENTRY64). */
#define VS_NOTE_XEN_PHYS32_ENTRY 18
#define VS_NOTE_VMSHIFT_ENTRY64  1

/* The PVH path builds its own identity map with 2 MiB pages; this many GiB of it. */
#define VS_PVH_MAP_GIB     64
#define VS_PVH_STACK_SIZE  0x4000

/* Values of vs_init_state: how vCPU 0 tells the others that shared state is ready. */
#define VS_INIT_WAIT   0
#define VS_INIT_DONE   1
#define VS_INIT_FAILED 2

#ifndef __ASSEMBLER__
#include <stdint.h>
#include "vmshift/guest_abi.h"

/* Both live in .data (entry.S), not .bss: the other vCPUs read vs_init_state before and
 * while vCPU 0 clears .bss, and the PVH path sets vs_booted_pvh before the clear. */
extern volatile uint32_t vs_init_state;
extern uint8_t vs_booted_pvh;

/* Called by entry.S on every vCPU once .bss is clear (vCPU 0 clears it first). */
void guest_main(const struct hvm_start_info *si, unsigned cpu) __attribute__((noreturn));
#endif

#endif
