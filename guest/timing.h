/* Microsecond time and stalls: the pvport clock and sleep when the monitor offers them,
 * otherwise the TSC calibrated against the PIT and a busy wait. */
#ifndef VS_GUEST_TIMING_H
#define VS_GUEST_TIMING_H

#include <stdint.h>

/* vCPU 0 at boot. Returns -1 when there is no usable clock (no pvport and the PIT
 * calibration failed); then vs_now_us() is 0 and vs_sleep_us() returns at once. */
int vs_timing_init(int pvport);
int vs_timing_usable(void);

/* Wraps every ~71 minutes: use differences over short intervals only. */
uint32_t vs_now_us(void);
void vs_sleep_us(uint32_t us);

#endif
