/* PIT channel 0 as the periodic timer (ISA IRQ 0). Channel 2 is timing.c's. */
#ifndef VS_GUEST_PIT_H
#define VS_GUEST_PIT_H

#include <stdint.h>

#define VS_PIT_HZ 1193182

/* Rate generator (mode 2) at hz (VS_HZ_PIT_MIN..); returns the rate actually programmed
 * in millihertz (the divisor is an integer). */
uint64_t vs_pit_periodic(uint32_t hz);

#endif
