/* Faulting guest RAM in ahead of the first pass (MADV_POPULATE_WRITE), in helper threads,
 * so that the streams find pages allocated and zeroed (the kernel's clear_page is most of
 * a fresh destination's receive cost) and the zeroing runs on other CPUs. The threads stay
 * within a window ahead of the furthest page received so far: RAM the source never sends
 * (its holes, which the first pass skips) is faulted in only a window's worth past each
 * jump. They stop at the end of the first pass. */
#ifndef VS_PREFAULT_H
#define VS_PREFAULT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "vmm/memory.h"

#define VS_PREFAULT_MAX_THREADS 8

struct vs_prefault {
    uint8_t *base;
    uint64_t size;
    uint64_t next;              /* the next 2 MiB chunk to take (atomic) */
    uint64_t frontier;          /* end of the furthest page received (atomic) */
    uint64_t faulted;           /* bytes faulted in (atomic), for the report and tests */
    int stop;                   /* atomic */
    unsigned nthreads;          /* started (kept after the join, for the log) */
    bool joined;
    pthread_t threads[VS_PREFAULT_MAX_THREADS];
};

/* Start n (<= VS_PREFAULT_MAX_THREADS; 0: none, nothing to do) threads over mem.
 * A thread that cannot start is a warning, not an error: prefaulting only saves time. */
void vs_prefault_start(struct vs_prefault *pf, const struct vs_memory *mem, unsigned n);
/* A stream wrote RAM up to offset end. */
static inline void vs_prefault_note(struct vs_prefault *pf, uint64_t end)
{
    uint64_t f = __atomic_load_n(&pf->frontier, __ATOMIC_RELAXED);
    while (end > f && !__atomic_compare_exchange_n(&pf->frontier, &f, end, true,
                                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}
/* Ask the threads to stop (they finish their chunk); returns at once. */
void vs_prefault_stop(struct vs_prefault *pf);
/* Stop and wait for the threads (once; later calls return at once). Post-copy joins them
 * before it drops pages: a late prefault must never fill a page it waits for. */
void vs_prefault_join(struct vs_prefault *pf);

#endif
