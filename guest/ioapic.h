/* The IOAPIC: all pins masked at setup, then one redirection entry per interrupt used. */
#ifndef VS_GUEST_IOAPIC_H
#define VS_GUEST_IOAPIC_H

#include <stdint.h>

/* Use the IOAPIC at paddr (mapped already) and mask every pin. Returns -1 if nothing
 * answers there like an IOAPIC (the version register reads all ones or no pins). */
int vs_ioapic_setup(uint32_t paddr);
uint32_t vs_ioapic_version(void);   /* the version register: version, pins - 1 << 16 */
unsigned vs_ioapic_pins(void);
/* Route pin to vector on the LAPIC with id dest: fixed delivery, physical destination,
 * edge triggered, active high (ISA's defaults), unmasked. -1 if pin does not exist. */
int vs_ioapic_route(unsigned pin, uint8_t vector, uint8_t dest);

#endif
