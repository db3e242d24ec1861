/* The interrupt platform of a pc VM: find the LAPIC and the IOAPIC (MP table or the PC
 * defaults), map them, enable vCPU 0's LAPIC, mask the IOAPIC's pins and the 8259s. */
#ifndef VS_GUEST_PLATFORM_H
#define VS_GUEST_PLATFORM_H

#include <stdint.h>
#include "mp.h"

/* vCPU 0, before the others run. Returns 0, or -1 with a message in err. */
int vs_platform_setup(char *err, unsigned errlen);
const struct vs_mp_info *vs_platform_mp(void);
/* Route ISA IRQ irq to vector on vCPU 0's LAPIC through the IOAPIC pin the MP table
 * gives it. Returns 0, or -1 with a message in err. */
int vs_platform_route_isa(unsigned irq, uint8_t vector, char *err, unsigned errlen);
/* Route GSI gsi (as Linux numbers them: ISA IRQs 0-15 through the MP table, then IOAPIC
 * pin = GSI) to vector the same way. Returns 0, or -1 with a message in err. */
int vs_platform_route_gsi(unsigned gsi, uint8_t vector, char *err, unsigned errlen);

#endif
