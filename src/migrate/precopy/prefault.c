#include "migrate/precopy/prefault.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CHUNK (2ULL << 20)
/* How far ahead of the furthest received page the threads may fault RAM in. */
#define WINDOW (256ULL << 20)

static bool stopped(struct vs_prefault *pf)
{
    return __atomic_load_n(&pf->stop, __ATOMIC_ACQUIRE);
}

/* The next chunk to fault in, or pf->size when done: not behind the frontier (the streams
 * have been there) and not more than WINDOW ahead of it (waits for the streams). */
static uint64_t next_chunk(struct vs_prefault *pf)
{
    for (;;) {
        if (stopped(pf))
            return pf->size;
        uint64_t f = __atomic_load_n(&pf->frontier, __ATOMIC_RELAXED) & ~(CHUNK - 1);
        uint64_t c = __atomic_load_n(&pf->next, __ATOMIC_RELAXED);
        if (c < f) {    /* skip what the streams already wrote */
            __atomic_compare_exchange_n(&pf->next, &c, f, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED);
            continue;
        }
        if (c >= pf->size)
            return pf->size;
        if (c >= f + WINDOW) {
            struct timespec ts = { 0, 200 * 1000 };
            nanosleep(&ts, NULL);
            continue;
        }
        if (__atomic_compare_exchange_n(&pf->next, &c, c + CHUNK, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return c;
    }
}

static void *prefault_thread(void *arg)
{
    struct vs_prefault *pf = arg;
    for (;;) {
        uint64_t c = next_chunk(pf);
        if (c >= pf->size)
            return NULL;
        uint64_t len = pf->size - c < CHUNK ? pf->size - c : CHUNK;
        if (madvise(pf->base + c, len, MADV_POPULATE_WRITE) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (!__atomic_exchange_n(&pf->stop, 1, __ATOMIC_ACQ_REL))
                vs_warn("prefaulting guest RAM stopped: MADV_POPULATE_WRITE failed at RAM "
                        "offset 0x%llx: %s (the streams fault it in themselves)",
                        (unsigned long long)c, strerror(errno));
            return NULL;
        }
        __atomic_fetch_add(&pf->faulted, len, __ATOMIC_RELAXED);
    }
}

void vs_prefault_start(struct vs_prefault *pf, const struct vs_memory *mem, unsigned n)
{
    memset(pf, 0, sizeof(*pf));
    pf->base = mem->base;
    pf->size = mem->size;
    if (n > VS_PREFAULT_MAX_THREADS)
        n = VS_PREFAULT_MAX_THREADS;
    for (unsigned i = 0; i < n; i++) {
        int err = pthread_create(&pf->threads[i], NULL, prefault_thread, pf);
        if (err) {
            vs_warn("started %u of %u prefault threads: %s", i, n, strerror(err));
            break;
        }
        pf->nthreads++;
    }
}

void vs_prefault_stop(struct vs_prefault *pf)
{
    __atomic_store_n(&pf->stop, 1, __ATOMIC_RELEASE);
}

void vs_prefault_join(struct vs_prefault *pf)
{
    vs_prefault_stop(pf);
    if (pf->joined)
        return;
    for (unsigned i = 0; i < pf->nthreads; i++)
        pthread_join(pf->threads[i], NULL);
    pf->joined = true;
}
