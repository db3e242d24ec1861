#include "migrate/state/digest_tracker.h"
#include "migrate/state/digest.h"
#include "common/clock.h"
#include "common/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 16
#define NEVER_MARKED UINT32_MAX   /* not hashed in the background: finish() does it (holes) */

struct vs_digest_tracker {
    const struct vs_memory *m;
    uint64_t nblocks;
    uint64_t *hash;
    atomic_uchar *marked;
    atomic_uint *mark_ms;          /* coarse time of the last mark */
    atomic_uint now_ms;            /* coarse clock, advanced by the background thread */
    uint64_t t0_ns;
    unsigned settle_ms;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    /* finish */
    atomic_uint_fast64_t next;
    atomic_uint_fast64_t rehashed;
};

static unsigned clock_ms(struct vs_digest_tracker *t)
{
    return (unsigned)((vs_clock_ns() - t->t0_ns) / 1000000ULL);
}

int vs_digest_tracker_new(struct vs_digest_tracker **out, const struct vs_memory *m)
{
    struct vs_digest_tracker *t = calloc(1, sizeof(*t));
    uint64_t n = (m->size + VS_DIGEST_BLOCK - 1) / VS_DIGEST_BLOCK;
    if (t) {
        t->hash = calloc(n, sizeof(uint64_t));
        t->marked = calloc(n, sizeof(atomic_uchar));
        t->mark_ms = calloc(n, sizeof(atomic_uint));
    }
    if (!t || !t->hash || !t->marked || !t->mark_ms) {
        vs_digest_tracker_free(t);
        return vs_fail(ENOMEM, "out of memory tracking the digests of %llu RAM blocks",
                       (unsigned long long)n);
    }
    t->m = m;
    t->nblocks = n;
    t->t0_ns = vs_clock_ns();
    for (uint64_t b = 0; b < n; b++) {
        atomic_init(&t->marked[b], 1);
        atomic_init(&t->mark_ms[b], NEVER_MARKED);
    }
    *out = t;
    return 0;
}

void vs_digest_mark(struct vs_digest_tracker *t, uint64_t gpa, uint64_t len)
{
    if (!t || !len)
        return;
    unsigned now = atomic_load_explicit(&t->now_ms, memory_order_relaxed);
    if (now == NEVER_MARKED)
        now--;
    for (uint64_t b = gpa / VS_DIGEST_BLOCK; b <= (gpa + len - 1) / VS_DIGEST_BLOCK &&
                                             b < t->nblocks; b++) {
        atomic_store_explicit(&t->mark_ms[b], now, memory_order_relaxed);
        atomic_store(&t->marked[b], 1);
    }
}

/* Hash block b unless it changes meanwhile; true if its digest is now current. */
static bool refresh(struct vs_digest_tracker *t, uint64_t b)
{
    if (!atomic_exchange(&t->marked[b], 0))
        return true;
    uint64_t h = vs_digest_block(t->m, b);
    if (atomic_load(&t->marked[b]))
        return false;              /* changed while hashed: leave it marked */
    t->hash[b] = h;
    return true;
}

static void *background(void *arg)
{
    struct vs_digest_tracker *t = arg;
    while (!atomic_load(&t->stop)) {
        bool busy = false;
        unsigned now = clock_ms(t);
        for (uint64_t b = 0; b < t->nblocks && !atomic_load(&t->stop); b++) {
            if (busy || b % 256 == 0) {   /* hashing takes time; a skipped block does not */
                now = clock_ms(t);
                atomic_store_explicit(&t->now_ms, now, memory_order_relaxed);
            }
            unsigned at = atomic_load_explicit(&t->mark_ms[b], memory_order_relaxed);
            if (!atomic_load_explicit(&t->marked[b], memory_order_relaxed) ||
                at == NEVER_MARKED || (now >= at && now - at < t->settle_ms))
                continue;
            refresh(t, b);
            busy = true;
        }
        if (!busy)
            vs_sleep_ns(2000000ULL);
        atomic_store_explicit(&t->now_ms, clock_ms(t), memory_order_relaxed);
    }
    return NULL;
}

int vs_digest_tracker_start(struct vs_digest_tracker *t, unsigned settle_ms)
{
    t->settle_ms = settle_ms;
    atomic_store(&t->now_ms, clock_ms(t));
    atomic_store(&t->stop, false);
    int err = pthread_create(&t->thread, NULL, background, t);
    if (err)
        return vs_fail(err, "cannot start the digest thread: %s", strerror(err));
    t->running = true;
    return 0;
}

void vs_digest_tracker_stop(struct vs_digest_tracker *t)
{
    if (!t || !t->running)
        return;
    atomic_store(&t->stop, true);
    pthread_join(t->thread, NULL);
    t->running = false;
}

static void *finisher(void *arg)
{
    struct vs_digest_tracker *t = arg;
    for (;;) {
        uint64_t b = atomic_fetch_add(&t->next, 1);
        if (b >= t->nblocks)
            return NULL;
        if (atomic_load(&t->marked[b])) {
            atomic_store(&t->marked[b], 0);
            t->hash[b] = vs_digest_block(t->m, b);
            atomic_fetch_add(&t->rehashed, 1);
        }
    }
}

int vs_digest_tracker_finish(struct vs_digest_tracker *t, unsigned threads, uint64_t *digest,
                             uint64_t *rehashed)
{
    vs_digest_tracker_stop(t);
    atomic_store(&t->next, 0);
    atomic_store(&t->rehashed, 0);
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS] = { false };
    unsigned n = threads > MAX_THREADS ? MAX_THREADS : threads;
    for (unsigned i = 1; i < n; i++)
        started[i] = pthread_create(&tids[i], NULL, finisher, t) == 0;
    finisher(t);
    for (unsigned i = 1; i < n; i++)
        if (started[i])
            pthread_join(tids[i], NULL);
    *digest = vs_digest_combine(t->hash, t->nblocks);
    if (rehashed)
        *rehashed = atomic_load(&t->rehashed);
    return 0;
}

void vs_digest_tracker_skip_pages(struct vs_digest_tracker *t, const uint64_t *pages)
{
    uint64_t per_block = VS_DIGEST_BLOCK / 4096, npages = t->m->size / 4096;
    for (uint64_t b = 0; b < t->nblocks; b++) {
        bool any = false;
        for (uint64_t w = b * per_block / 64; w < ((b + 1) * per_block + 63) / 64 &&
                                              w * 64 < npages && !any; w++)
            any = pages[w] != 0;
        if (any) {
            atomic_store(&t->marked[b], 0);
            t->hash[b] = 0;
        }
    }
}

const uint64_t *vs_digest_tracker_blocks(const struct vs_digest_tracker *t, uint64_t *nblocks)
{
    *nblocks = t->nblocks;
    return t->hash;
}

void vs_digest_tracker_free(struct vs_digest_tracker *t)
{
    if (!t)
        return;
    vs_digest_tracker_stop(t);
    free(t->hash);
    free((void *)t->marked);
    free((void *)t->mark_ms);
    free(t);
}
