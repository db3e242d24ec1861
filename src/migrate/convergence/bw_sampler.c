#include "migrate/convergence/bw_sampler.h"
#include "common/clock.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static void *sampler_thread(void *arg)
{
    struct vs_bw_sampler *s = arg;
    uint64_t next = vs_clock_ns();
    while (!atomic_load(&s->stop)) {
        next += (uint64_t)s->interval_ms * 1000000ULL;
        uint64_t now = vs_clock_ns();
        /* Short slices, so stopping is quick. */
        while (now < next && !atomic_load(&s->stop)) {
            uint64_t left = next - now;
            vs_sleep_ns(left < 10000000ULL ? left : 10000000ULL);
            now = vs_clock_ns();
        }
        if (atomic_load(&s->stop))
            break;
        unsigned n = atomic_load(&s->count);
        if (n >= s->cap)
            break;
        s->bytes[n] = s->read(s->arg);
        atomic_store(&s->count, n + 1);
    }
    return NULL;
}

int vs_bw_sampler_start(struct vs_bw_sampler *s, uint32_t interval_ms, uint32_t cap,
                        uint64_t (*read)(void *arg), void *arg)
{
    memset(s, 0, sizeof(*s));
    s->read = read;
    s->arg = arg;
    s->interval_ms = interval_ms;
    s->cap = cap;
    s->bytes = calloc(cap, sizeof(uint64_t));
    if (!s->bytes)
        return vs_fail(ENOMEM, "out of memory for %u bandwidth samples", cap);
    atomic_init(&s->count, 0);
    atomic_init(&s->stop, false);
    int err = pthread_create(&s->thread, NULL, sampler_thread, s);
    if (err) {
        free(s->bytes);
        s->bytes = NULL;
        return vs_fail(err, "cannot start the bandwidth sampler thread: %s", strerror(err));
    }
    s->running = true;
    return 0;
}

void vs_bw_sampler_stop(struct vs_bw_sampler *s)
{
    if (!s->running)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    s->running = false;
}

void vs_bw_sampler_free(struct vs_bw_sampler *s)
{
    vs_bw_sampler_stop(s);
    free(s->bytes);
    s->bytes = NULL;
}
