#include "clock.h"

#include <errno.h>
#include <time.h>

uint64_t vs_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t vs_clock_since_start_ns(void)
{
    static uint64_t start;
    uint64_t now = vs_clock_ns();
    if (!start)
        start = now;
    return now - start;
}

void vs_sleep_ns(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL),
                           .tv_nsec = (long)(ns % 1000000000ULL) };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}
