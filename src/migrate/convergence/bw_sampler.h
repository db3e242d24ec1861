/* Throughput over time: a thread that reads a byte counter every interval and keeps the
 * values, for the report's bandwidth plot. */
#ifndef VS_BW_SAMPLER_H
#define VS_BW_SAMPLER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vs_bw_sampler {
    uint64_t (*read)(void *arg);
    void *arg;
    uint32_t interval_ms;
    uint32_t cap;                   /* samples kept at most */
    uint64_t *bytes;                /* cumulative counter at the end of each interval */
    atomic_uint count;
    atomic_bool stop;
    pthread_mutex_t lock;           /* with wake: stopping interrupts the wait at once */
    pthread_cond_t wake;            /* on CLOCK_MONOTONIC */
    pthread_t thread;
    bool running;
};

/* Sample read(arg) every interval_ms, up to cap samples. */
int vs_bw_sampler_start(struct vs_bw_sampler *s, uint32_t interval_ms, uint32_t cap,
                        uint64_t (*read)(void *arg), void *arg);
/* Stop sampling; the samples stay until vs_bw_sampler_free. */
void vs_bw_sampler_stop(struct vs_bw_sampler *s);
void vs_bw_sampler_free(struct vs_bw_sampler *s);

#endif
