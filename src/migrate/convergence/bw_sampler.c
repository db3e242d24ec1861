#include "migrate/convergence/bw_sampler.h"
#include "common/clock.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wait until the monotonic time `due` or until stopped; true when stopped. */
static bool wait_until(struct vs_bw_sampler *s, uint64_t due)
{
    struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ULL),
                           .tv_nsec = (long)(due % 1000000000ULL) };
    pthread_mutex_lock(&s->lock);
    while (!atomic_load(&s->stop) && vs_clock_ns() < due)
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    pthread_mutex_unlock(&s->lock);
    return atomic_load(&s->stop);
}

static void *sampler_thread(void *arg)
{
    struct vs_bw_sampler *s = arg;
    uint64_t next = vs_clock_ns();
    for (;;) {
        next += (uint64_t)s->interval_ms * 1000000ULL;
        if (wait_until(s, next))
            break;
        unsigned n = atomic_load(&s->count);
        if (n >= s->cap)
            break;
        s->bytes[n] = s->read(s->arg);
        atomic_store(&s->count, n + 1);
    }
    return NULL;
}

static int init_wake(struct vs_bw_sampler *s)
{
    pthread_condattr_t a;
    int err = pthread_condattr_init(&a);
    if (!err && !(err = pthread_condattr_setclock(&a, CLOCK_MONOTONIC)))
        err = pthread_cond_init(&s->wake, &a);
    pthread_condattr_destroy(&a);
    if (!err && (err = pthread_mutex_init(&s->lock, NULL)))
        pthread_cond_destroy(&s->wake);
    return err;
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
    int err = init_wake(s);
    if (err) {
        free(s->bytes);
        s->bytes = NULL;
        return vs_fail(err, "cannot set up the bandwidth sampler's clock: %s", strerror(err));
    }
    err = pthread_create(&s->thread, NULL, sampler_thread, s);
    if (err) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
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
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->stop, true);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    s->running = false;
}

void vs_bw_sampler_free(struct vs_bw_sampler *s)
{
    vs_bw_sampler_stop(s);
    free(s->bytes);
    s->bytes = NULL;
}
