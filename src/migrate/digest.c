#include "migrate/digest.h"
#include "common/clock.h"
#include "common/error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_THREADS 16

struct vs_digest_job {
    const struct vs_memory *m;
    uint64_t nblocks;
    uint64_t *blocks;
    uint64_t zero_block;          /* digest of a full block of zeros */
    unsigned nthreads;
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS];
    _Atomic uint64_t next;        /* next block to hash */
    uint64_t start_ns;
};

/* Is [off, off+len) of the memfd one hole? (SEEK_DATA finds no data before its end.) */
static bool is_hole(int fd, uint64_t off, uint64_t len)
{
    off_t data = lseek(fd, (off_t)off, SEEK_DATA);
    return data < 0 ? errno == ENXIO : (uint64_t)data >= off + len;
}

static void *worker(void *arg)
{
    struct vs_digest_job *j = arg;
    const struct vs_memory *m = j->m;
    for (;;) {
        uint64_t b = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (b >= j->nblocks)
            return NULL;
        uint64_t off = b * VS_DIGEST_BLOCK;
        uint64_t len = m->size - off < VS_DIGEST_BLOCK ? m->size - off : VS_DIGEST_BLOCK;
        if (len == VS_DIGEST_BLOCK && m->memfd >= 0 && is_hole(m->memfd, off, len))
            j->blocks[b] = j->zero_block;
        else
            j->blocks[b] = XXH3_64bits(m->base + off, len);
    }
}

int vs_digest_start(struct vs_digest_job **out, const struct vs_memory *m, unsigned threads)
{
    struct vs_digest_job *j = calloc(1, sizeof(*j));
    uint64_t nblocks = (m->size + VS_DIGEST_BLOCK - 1) / VS_DIGEST_BLOCK;
    void *zeros = calloc(1, VS_DIGEST_BLOCK);
    if (j)
        j->blocks = calloc(nblocks, sizeof(uint64_t));
    if (!j || !j->blocks || !zeros) {
        if (j)
            free(j->blocks);
        free(j);
        free(zeros);
        return vs_fail(ENOMEM, "out of memory for a RAM digest");
    }
    j->zero_block = XXH3_64bits(zeros, VS_DIGEST_BLOCK);
    free(zeros);
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
    *digest = XXH3_64bits(j->blocks, j->nblocks * sizeof(uint64_t));
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
