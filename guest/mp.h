/* Finding the interrupt controllers: the MP table (include/vmshift/mptable.h) if the
 * BIOS area has one, otherwise the PC's standard addresses and wiring (QEMU microvm has
 * none). Pure and freestanding; the unit test builds it hosted. */
#ifndef VS_GUEST_MP_H
#define VS_GUEST_MP_H

#include <stdint.h>
#include "vmshift/mptable.h"

#define VS_MP_NO_PIN 0xFF

struct vs_mp_info {
    int from_table;                     /* 0: the defaults below */
    uint32_t lapic_paddr;
    uint32_t ioapic_paddr;
    uint8_t ioapic_id;
    uint8_t nr_cpus;                    /* enabled processors (0 without a table) */
    uint8_t bsp_lapic_id;
    uint8_t isa_pin[VS_MP_ISA_IRQS];    /* IOAPIC pin of each ISA IRQ, or VS_MP_NO_PIN */
};

/* The PC defaults: LAPIC 0xFEE00000, IOAPIC 0xFEC00000 (id 0), ISA IRQ 0 -> pin 2, the
 * others 1:1. */
void vs_mp_defaults(struct vs_mp_info *out);

/* The first valid floating pointer ("_MP_", length 1, checksum) on a 16-byte boundary of
 * area[0..len) (area 16-byte aligned), or NULL. */
const struct vs_mp_floating *vs_mp_find(const void *area, uint32_t len);

/* Parse the configuration table at cfg, of which avail bytes may be read. Fills *out
 * (starting from no pins at all: the table says which IRQ has which pin). Returns 0, or -1
 * with *why set to a static reason (bad signature, checksum, length or entry). */
int vs_mp_parse(const void *cfg, uint32_t avail, struct vs_mp_info *out, const char **why);

#endif
