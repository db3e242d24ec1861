/* Receiving pages over parallel streams. Stream 0 is read by the incoming state machine
 * (dest.c), streams 1.. by one thread each; all of them put pages straight into guest RAM.
 * A pass ends when every stream has sent its PASS_END for it: each stream waits for the
 * others there (a barrier), so a page resent in pass n+1 on one stream can never be
 * overwritten by its older copy from pass n still queued on another. */
#ifndef VS_RECV_STREAMS_H
#define VS_RECV_STREAMS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "migrate/state/digest_tracker.h"
#include "migrate/precopy/prefault.h"
#include "migrate/precopy/recv_tuning.h"
#include "migrate/report.h"
#include "vmm/vm.h"
#include "wire/reader.h"

struct vs_recv_streams;

struct vs_recv_stream {
    struct vs_recv_streams *rs;
    unsigned index;
    struct vs_channel *ch;          /* owned, except stream 0's */
    struct vs_wire_reader r;
    pthread_t thread;
    bool thread_started;
    struct vs_pass_stats ps;        /* this stream's part of the current pass */
    uint32_t next_pass;             /* the pass its next PASS_END must name */
    uint64_t normal, zero, compressed;  /* pages, cumulative */
    uint64_t gpa[VS_WIRE_MAX_PAGES];
};

struct vs_recv_streams {
    struct vs_vm *vm;
    uint64_t *touched;              /* pages that received data (may be non-zero) */
    struct vs_digest_tracker *digest;   /* told about every page written (may be NULL) */
    struct vs_prefault prefault;    /* threads faulting RAM in ahead of the first pass */
    bool page_file;                 /* page data goes through the RAM memfd (recv_tuning.h) */
    const char *ram_pages;          /* the page size guest RAM gets, and why (static text) */
    unsigned n;
    struct vs_recv_stream s[VS_WIRE_MAX_STREAMS];
    pthread_mutex_t lock;
    pthread_cond_t cv;
    unsigned arrived;               /* streams at the barrier of the current pass */
    uint64_t barrier_gen;
    struct vs_pass_stats done;      /* the totals of the pass the barrier last completed */
    uint32_t cur_pass;              /* pass and final flag of the barrier being filled */
    bool cur_final;
    bool failed;
    int err;
    char error[512];
};

/* Set up for n streams on vm; s[0].ch is set by the caller (stream 0), the others by
 * vs_recv_streams_add. */
int vs_recv_streams_init(struct vs_recv_streams *rs, struct vs_vm *vm, unsigned n,
                         uint32_t codecs);
void vs_recv_streams_set_channel(struct vs_recv_streams *rs, unsigned index,
                                 struct vs_channel *ch);
/* How pages go into RAM (before vs_recv_streams_start): through the memfd or the mapping,
 * and the prefault threads, which start here. */
void vs_recv_streams_tune(struct vs_recv_streams *rs, const struct vs_recv_tuning *t);
/* Start the reader threads of streams 1..n-1. */
int vs_recv_streams_start(struct vs_recv_streams *rs);
/* Handle a PAGES, ZERO_PAGES or CPAGES record that arrived on stream index. */
int vs_recv_page_record(struct vs_recv_streams *rs, unsigned index,
                        const struct vs_wire_header *h);
/* Handle a PASS_END on stream index: wait until every stream has ended the pass. *pe
 * gets the record, *totals the pass's totals over all streams. */
int vs_recv_pass_end(struct vs_recv_streams *rs, unsigned index, const struct vs_wire_header *h,
                     struct vs_wire_pass_end *pe, struct vs_pass_stats *totals);
/* Record the first failure (err < 0 with vs_last_error()) seen by stream index, and stop
 * every stream: the extra ones completely, stream 0 only for reading (its owner may still
 * tell the source why). */
void vs_recv_streams_fail(struct vs_recv_streams *rs, unsigned index, int err);
/* Wait for the threads; close the extra channels; free. */
void vs_recv_streams_destroy(struct vs_recv_streams *rs);
/* Pages and bytes received on all streams. */
void vs_recv_streams_totals(struct vs_recv_streams *rs, struct vs_migration_stats *st);

#endif
