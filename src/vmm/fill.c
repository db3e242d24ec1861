#include "vmm/fill.h"
#include "common/error.h"
#include "vmshift/page_format.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static const char *const fill_names[] = {
    [VS_FILL_NONE] = "none", [VS_FILL_PATTERN] = "pattern", [VS_FILL_RANDOM] = "random",
};

int vs_fill_parse(const char *text, uint32_t *fill)
{
    for (uint32_t i = 0; i < sizeof(fill_names) / sizeof(fill_names[0]); i++)
        if (strcmp(text, fill_names[i]) == 0) {
            *fill = i;
            return 0;
        }
    return vs_fail(EINVAL, "--fill '%s' is unknown; use none, pattern or random", text);
}

const char *vs_fill_name(uint32_t fill)
{
    return fill < sizeof(fill_names) / sizeof(fill_names[0]) ? fill_names[fill] : "?";
}

void vs_fill_buffer(void *buf, uint64_t len, uint64_t gpa, uint32_t fill, uint64_t seed)
{
    uint64_t *w = buf;
    if (fill == VS_FILL_NONE) {
        memset(buf, 0, len);
        return;
    }
    for (uint64_t i = 0; i < len / 8; i++)
        w[i] = vs_fill_word(fill, seed, gpa + i * 8);
}

struct fill_job {
    struct vs_memory *m;
    uint64_t start, len, seed;
    uint32_t fill;
};

static void *fill_thread(void *arg)
{
    struct fill_job *j = arg;
    vs_fill_buffer(vs_memory_gpa_ptr(j->m, j->start, j->len), j->len, j->start, j->fill,
                   j->seed);
    return NULL;
}

int vs_fill_range(struct vs_memory *m, uint64_t start, uint64_t len, uint32_t fill,
                  uint64_t seed, unsigned threads)
{
    if ((start | len) & 7)
        return vs_fail(EINVAL, "fill range 0x%llx+0x%llx is not 8-byte aligned",
                       (unsigned long long)start, (unsigned long long)len);
    int rc = vs_memory_check_range(m, start, len, "fill range");
    if (rc)
        return rc;
    if (fill == VS_FILL_NONE || len == 0)
        return 0; /* fresh RAM already reads as zero, and stays sparse */
    if (threads < 1)
        threads = 1;
    if (threads > 16)
        threads = 16;
    struct fill_job jobs[16];
    pthread_t tids[16];
    bool threaded[16];
    uint64_t chunk = (len / threads) & ~4095ULL;
    for (unsigned i = 0; i < threads; i++) {
        uint64_t s = start + chunk * i;
        jobs[i] = (struct fill_job){ m, s, i + 1 == threads ? start + len - s : chunk, seed, fill };
        threaded[i] = pthread_create(&tids[i], NULL, fill_thread, &jobs[i]) == 0;
        if (!threaded[i])
            fill_thread(&jobs[i]); /* no thread to be had: do this slice here */
    }
    for (unsigned i = 0; i < threads; i++)
        if (threaded[i])
            pthread_join(tids[i], NULL);
    return 0;
}

int vs_fill_ram_from(struct vs_memory *m, uint64_t from, uint32_t fill, uint64_t seed,
                     unsigned threads)
{
    for (unsigned i = 0; i < m->layout.nr_regions; i++) {
        const struct vs_ram_region *r = &m->layout.regions[i];
        uint64_t lo = from > r->gpa ? from : r->gpa, end = r->gpa + r->size;
        if (lo >= end)
            continue;
        int rc = vs_fill_range(m, lo, end - lo, fill, seed, threads);
        if (rc)
            return rc;
    }
    return 0;
}
