/* Monotonic time helpers. */
#ifndef VS_CLOCK_H
#define VS_CLOCK_H

#include <stdint.h>

uint64_t vs_clock_ns(void);              /* CLOCK_MONOTONIC in nanoseconds */
uint64_t vs_clock_since_start_ns(void);  /* since the first call in this process */
void vs_sleep_ns(uint64_t ns);

#endif
