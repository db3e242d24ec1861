/* Dirty-rate control for one vCPU: it may dirty (VM rate / cpus) pages per second.
 * Before every chunk the worker asks vs_rate_gate(), which stalls while the vCPU is
 * ahead of its budget and says how large the next chunk may be. */
#ifndef VS_GUEST_RATE_H
#define VS_GUEST_RATE_H

#include <stdint.h>

#define VS_CHUNK_PAGES 256

struct vs_rate {
    unsigned cpu, cpus;
    uint64_t vm_rate;       /* pages/s for the whole VM in force, 0 = full speed */
    uint64_t target;        /* this vCPU's share of vm_rate */
    uint64_t done;          /* pages since period_start */
    uint32_t period_start;  /* vs_now_us() */
};

void vs_rate_init(struct vs_rate *r, unsigned cpu, unsigned cpus);
/* Waits until the next chunk is due; returns its size in pages (1..VS_CHUNK_PAGES). */
unsigned vs_rate_gate(struct vs_rate *r);

static inline void vs_rate_done(struct vs_rate *r, unsigned pages)
{
    r->done += pages;
}

#endif
