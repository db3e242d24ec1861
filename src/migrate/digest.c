#include "migrate/digest.h"
#include "common/error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <xxhash.h>

#define MAX_THREADS 16

struct digest_job {
    const uint8_t *ram;
    uint64_t size;
    uint64_t *blocks;
    uint64_t first, step, nblocks;
};

static void *digest_thread(void *arg)
{
    struct digest_job *j = arg;
    for (uint64_t b = j->first; b < j->nblocks; b += j->step) {
        uint64_t off = b * VS_DIGEST_BLOCK;
        uint64_t len = j->size - off < VS_DIGEST_BLOCK ? j->size - off : VS_DIGEST_BLOCK;
        j->blocks[b] = XXH3_64bits(j->ram + off, len);
    }
    return NULL;
}

int vs_digest_ram(const uint8_t *ram, uint64_t size, unsigned threads, uint64_t *digest)
{
    uint64_t nblocks = (size + VS_DIGEST_BLOCK - 1) / VS_DIGEST_BLOCK;
    uint64_t stack_blocks[64];
    uint64_t *blocks = nblocks <= 64 ? stack_blocks : malloc(nblocks * sizeof(uint64_t));
    if (!blocks)
        return vs_fail(ENOMEM, "out of memory for %llu block digests",
                       (unsigned long long)nblocks);
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > nblocks)
        threads = (unsigned)nblocks;
    struct digest_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS] = { false };
    for (unsigned i = 0; i < threads; i++) {
        jobs[i] = (struct digest_job){ ram, size, blocks, i, threads, nblocks };
        if (i > 0)
            started[i] = pthread_create(&tids[i], NULL, digest_thread, &jobs[i]) == 0;
    }
    digest_thread(&jobs[0]);
    for (unsigned i = 1; i < threads; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            digest_thread(&jobs[i]); /* could not start a thread: do its share here */
    }
    *digest = XXH3_64bits(blocks, nblocks * sizeof(uint64_t));
    if (blocks != stack_blocks)
        free(blocks);
    return 0;
}
