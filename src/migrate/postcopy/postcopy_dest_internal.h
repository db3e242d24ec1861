/* Shared by the post-copy destination engine (postcopy_dest.c) and its resume side
 * (postcopy_resume.c). Not for other users. */
#ifndef VS_POSTCOPY_DEST_INTERNAL_H
#define VS_POSTCOPY_DEST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "migrate/postcopy/postcopy_dest.h"
#include "migrate/postcopy/uffd.h"
#include "wire/writer.h"

#define LIVENESS_MS 5000
#define MAX_PENDING 256     /* faults whose wait is timed */

struct pc_stream {
    struct vs_postcopy_dest *pc;
    unsigned index;
    struct vs_channel *ch;
    struct vs_wire_reader r;
    pthread_t thread;
    bool started;
    bool ended;                     /* its POSTCOPY_END arrived (lock) */
    uint64_t pages, end_pages;      /* this session */
    uint64_t gpa[VS_WIRE_MAX_PAGES];
    uint8_t *buf;                   /* VS_WIRE_MAX_PAGES pages */
};

struct vs_postcopy_dest {
    struct vs_vm *vm;
    const struct vs_incoming_opts *opts;
    uint64_t npages;
    uint64_t *orig, *missing;
    atomic_uint_fast64_t missing_count;
    struct vs_uffd uffd;
    int wake_fd;
    pthread_t fault_thread, thread;
    bool fault_started, thread_started;
    atomic_bool fault_stop, stopping, session_failed;
    unsigned n;
    struct pc_stream s[VS_WIRE_MAX_STREAMS];
    pthread_mutex_t w0_lock;        /* stream 0's writer (requests from the fault thread) */
    struct vs_wire_writer w0;
    bool connected;
    uint8_t session[VS_WIRE_SESSION_LEN];
    bool claim;                     /* CLAIM after COMMIT, wait for GRANT (a 2.2 source) */
    pthread_mutex_t lock;           /* everything below */
    pthread_cond_t cv;
    struct vs_migration_stats stats;
    bool vm_started, failed, paused;
    uint64_t run_ns;                /* when the VM started running here */
    uint64_t pause_ns;              /* POSTCOPY_START: when the source paused (its clock) */
    struct { uint64_t gpa, t; } pending[MAX_PENDING];
    unsigned npending;
};

/* postcopy_dest_pages.c: read stream st until its POSTCOPY_END (0) or an error. */
int vs_postcopy_read_stream(struct pc_stream *st);

/* Tear a broken session down and pause the VM (postcopy_dest.c). */
void vs_postcopy_lost(struct vs_postcopy_dest *pc);
/* postcopy_dest.c: close the connections of a session that ended (its stream threads are
 * done or told to stop); POSTCOPY_END to the source on stream 0 (every page is here). */
void vs_postcopy_close_session(struct vs_postcopy_dest *pc);
int vs_postcopy_send_end(struct vs_postcopy_dest *pc);
/* postcopy_resume.c: after every page arrived, answer a source that lost the connection
 * before our POSTCOPY_END reached it, until the process stops. */
void vs_postcopy_serve_completed(struct vs_postcopy_dest *pc);
/* postcopy_resume.c: after COMMIT from a 2.2 source, CLAIM the VM and wait for GRANT. */
int vs_postcopy_claim(struct vs_postcopy_dest *pc);
/* Wait on the listening address until the source resumes (0), or until stopped, or until
 * the source says over RESOLVE that it kept the VM (the copy here is discarded: failed). */
int vs_postcopy_wait_for_source(struct vs_postcopy_dest *pc);

/* postcopy_faults.c: the fault thread; page gpa is in place (time its waiter); ask the
 * source for n pages now. */
void *vs_postcopy_fault_thread(void *arg);
void vs_postcopy_fault_done(struct vs_postcopy_dest *pc, uint64_t gpa, uint64_t now);
void vs_postcopy_request(struct vs_postcopy_dest *pc, const uint64_t *gpa, uint32_t n);

#endif
