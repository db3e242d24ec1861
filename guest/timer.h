/* The timer workload: vCPU 0 waits for timer interrupts in sti; hlt and checks the clock
 * at each tick (the migration test of a guest that sleeps on an interrupt). */
#ifndef VS_GUEST_TIMER_H
#define VS_GUEST_TIMER_H

#include "params.h"

/* vCPU 0 at boot, after vs_platform_setup and vs_timing_init: program the timer of
 * p->timer at p->hz and route its interrupt. Returns 0, or -1 with a message in err. */
int vs_timer_start(const struct vs_guest_params *p, char *err, unsigned errlen);

/* vCPU 0: wait for ticks forever, publishing them in the telemetry page. */
void vs_timer_run(unsigned cpu) __attribute__((noreturn));

#endif
