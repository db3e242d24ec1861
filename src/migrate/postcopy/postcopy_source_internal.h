/* Shared by the post-copy source engine (postcopy_source.c) and its reconnection side
 * (postcopy_recover.c). Not for other users. */
#ifndef VS_POSTCOPY_SOURCE_INTERNAL_H
#define VS_POSTCOPY_SOURCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "migrate/precopy/source_internal.h"

struct vs_postcopy_source {
    struct vs_migration *m;
    uint64_t npages;
    uint64_t *to_send;              /* pages not sent yet: the bit's taker sends the page */
    uint64_t *scratch;              /* a resume's bitmap before it is trusted */
    atomic_uint_fast64_t left;      /* bits still set in to_send */
    atomic_uint_fast64_t next_unit; /* background: next 16 MiB unit to claim */
    atomic_uint bg_done;            /* background threads finished this session */
    atomic_bool failed;             /* this session is over (error or lost link) */
    pthread_mutex_t w0_lock;        /* stream 0's writer: answers, END (and background with
                                       one stream) */
    uint64_t stream0_pages;         /* pages sent on stream 0 this session (w0_lock) */
    unsigned first_bg, nr_bg;       /* background streams: 1..n-1, or 0 alone */
    pthread_t bg[VS_WIRE_MAX_STREAMS];
    bool bg_started[VS_WIRE_MAX_STREAMS];
    uint64_t bg_sent[VS_WIRE_MAX_STREAMS];
    uint64_t gpa[VS_WIRE_MAX_PAGES];    /* a request being answered */
    /* Resume (m->lock). */
    pthread_cond_t cv;
    bool resume_requested, abandon;
    char resume_to[sizeof(((struct vs_migration_opts *)0)->to)];
};

/* The connection is lost (vs_last_error() says how; `lost`: a session broke, rather than
 * a reconnection failing): every stream is shut down, the migration is postcopy-paused,
 * and the source reconnects by itself to the last address, after 100 ms and then twice as
 * long each time up to 1 s, or at once on resume-migration (perhaps to another address).
 * 0 once reconnected: the destination said which pages it lacks (to_send); < 0 when the
 * source quits meanwhile (the VM there cannot complete). */
int vs_postcopy_recover(struct vs_postcopy_source *pc, bool lost);

#endif
