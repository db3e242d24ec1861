#include "migrate/state/digest.h"
#include "common/clock.h"
#include "common/error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <xxh_x86dispatch.h>   /* the widest vector unit this CPU has (AVX2/AVX-512) */

#define MAX_THREADS 16

struct vs_digest_job {
    const struct vs_memory *m;
    uint64_t nblocks;
    uint64_t *blocks;
    unsigned nthreads;
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS];
    _Atomic uint64_t next;        /* next block to hash */
    uint64_t start_ns;
};

static const uint8_t zeros[64 * 1024];
static uint64_t zero_block_digest;      /* XXH3 of VS_DIGEST_BLOCK zero bytes */
static pthread_once_t zero_block_once = PTHREAD_ONCE_INIT;

static void compute_zero_block_digest(void)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return; /* stays 0: whole-hole blocks are then hashed the long way */
    XXH3_64bits_reset(st);
    for (uint64_t done = 0; done < VS_DIGEST_BLOCK; done += sizeof(zeros))
        XXH3_64bits_update(st, zeros, sizeof(zeros));
    zero_block_digest = XXH3_64bits_digest(st);
    XXH3_freeState(st);
}

/* XXH3 of [off, off+len) of guest RAM, reading only its data runs: holes read
 * as zero, so zeros are hashed in their place without touching (allocating) them. */
static uint64_t hash_range(const struct vs_memory *m, uint64_t off, uint64_t len)
{
    uint64_t end = off + len, run_end, data = vs_memory_next_data(m, off, end, &run_end);
    if (data == off && run_end == end)
        return XXH3_64bits(m->base + off, len);   /* all data: the common case */
    XXH3_state_t *st = XXH3_createState();
    if (!st) /* no memory for a streaming state: read the range instead, same result */
        return XXH3_64bits(m->base + off, len);
    XXH3_64bits_reset(st);
    for (uint64_t pos = off; pos < end; pos = run_end) {
        data = vs_memory_next_data(m, pos, end, &run_end);
        for (uint64_t z = pos; z < data; z += sizeof(zeros))
            XXH3_64bits_update(st, zeros, data - z < sizeof(zeros) ? data - z : sizeof(zeros));
        if (data < end)
            XXH3_64bits_update(st, m->base + data, run_end - data);
    }
    uint64_t digest = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return digest;
}

uint64_t vs_digest_block(const struct vs_memory *m, uint64_t b)
{
    pthread_once(&zero_block_once, compute_zero_block_digest);
    uint64_t off = b * VS_DIGEST_BLOCK;
    uint64_t len = m->size - off < VS_DIGEST_BLOCK ? m->size - off : VS_DIGEST_BLOCK;
    uint64_t run_end;
    bool hole = len == VS_DIGEST_BLOCK && zero_block_digest &&
                vs_memory_next_data(m, off, off + len, &run_end) == off + len;
    /* A block that is one hole is zeros: its digest is known without hashing. */
    return hole ? zero_block_digest : hash_range(m, off, len);
}

uint64_t vs_digest_combine(const uint64_t *blocks, uint64_t nblocks)
{
    return XXH3_64bits(blocks, nblocks * sizeof(uint64_t));
}

static void *worker(void *arg)
{
    struct vs_digest_job *j = arg;
    for (;;) {
        uint64_t b = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (b >= j->nblocks)
            return NULL;
        j->blocks[b] = vs_digest_block(j->m, b);
    }
}

int vs_digest_start(struct vs_digest_job **out, const struct vs_memory *m, unsigned threads)
{
    struct vs_digest_job *j = calloc(1, sizeof(*j));
    uint64_t nblocks = (m->size + VS_DIGEST_BLOCK - 1) / VS_DIGEST_BLOCK;
    if (j)
        j->blocks = calloc(nblocks, sizeof(uint64_t));
    if (!j || !j->blocks) {
        free(j);
        return vs_fail(ENOMEM, "out of memory for a RAM digest");
    }
    pthread_once(&zero_block_once, compute_zero_block_digest);
    j->m = m;
    j->nblocks = nblocks;
    j->start_ns = vs_clock_ns();
    j->nthreads = threads > MAX_THREADS ? MAX_THREADS : threads;
    if (j->nthreads > nblocks)
        j->nthreads = (unsigned)nblocks;
    for (unsigned i = 0; i < j->nthreads; i++)
        j->started[i] = pthread_create(&j->tids[i], NULL, worker, j) == 0;
    *out = j;
    return 0;
}

int vs_digest_finish(struct vs_digest_job *j, uint64_t *digest, uint64_t *busy_ns)
{
    worker(j); /* help, and cover for any thread that could not start */
    for (unsigned i = 0; i < j->nthreads; i++)
        if (j->started[i])
            pthread_join(j->tids[i], NULL);
    *digest = vs_digest_combine(j->blocks, j->nblocks);
    if (busy_ns)
        *busy_ns = vs_clock_ns() - j->start_ns;
    free(j->blocks);
    free(j);
    return 0;
}

int vs_digest_ram(const struct vs_memory *m, unsigned threads, uint64_t *digest)
{
    struct vs_digest_job *j;
    int rc = vs_digest_start(&j, m, threads > 1 ? threads - 1 : 0);
    return rc ? rc : vs_digest_finish(j, digest, NULL);
}
