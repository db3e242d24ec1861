/* The local APIC in xAPIC (MMIO) mode: enable, end of interrupt, and its timer. */
#ifndef VS_GUEST_LAPIC_H
#define VS_GUEST_LAPIC_H

#include <stdint.h>

/* vCPU 0: use the LAPIC at paddr (mapped already). Returns -1 if no LAPIC answers there
 * (the version register must read as an integrated APIC, 0x10-0x1f). */
int vs_lapic_setup(uint32_t paddr);
/* Enable this vCPU's LAPIC: spurious vector on, task priority 0, LINT0 (ExtINT) masked
 * (the 8259s are not used), LINT1 NMI, error vector, timer masked. */
void vs_lapic_enable(void);
uint32_t vs_lapic_id(void);
uint32_t vs_lapic_version(void);
/* No-op before vs_lapic_setup. */
void vs_lapic_eoi(void);

/* Periodic LAPIC timer on vector at hz, calibrated against the guest's clock (timing.h).
 * Returns -1 if there is no clock to calibrate with or the LAPIC timer does not count. */
int vs_lapic_timer_start(uint8_t vector, uint32_t hz);

#endif
