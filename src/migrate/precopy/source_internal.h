/* Shared between the source state machine (source.c) and its page-sending stream threads
 * (send_streams.c). Not for other users. */
#ifndef VS_SOURCE_INTERNAL_H
#define VS_SOURCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "codec/codec.h"
#include "migrate/convergence/bw_sampler.h"
#include "migrate/convergence/converge.h"
#include "migrate/state/digest_tracker.h"
#include "migrate/precopy/dirty.h"
#include "migrate/precopy/source.h"
#include "transport/dialer.h"
#include "transport/tls.h"
#include "wire/format.h"
#include "wire/reader.h"
#include "wire/writer.h"
#include "transport/tcp.h"

/* Pages a stream claims at a time: 16 MiB, one dirty-log clear each. */
#define VS_SEND_UNIT_PAGES 4096ULL

/* One connection and the thread that sends pages on it. */
struct vs_send_stream {
    struct vs_migration *m;
    unsigned index;
    struct vs_channel *ch;
    struct vs_wire_writer w;
    pthread_t thread;
    bool thread_started;
    struct vs_codec_ctx *codec;       /* NULL: pages go raw */
    unsigned codec_id;
    bool auto_compress;
    struct vs_codec_auto autoc;
    uint8_t *cbuf;                    /* compressed batch */
    size_t cbuf_cap;
    uint64_t data[VS_WIRE_MAX_PAGES], zero[VS_WIRE_MAX_PAGES];   /* the batch being built */
    uint32_t ndata, nzero;
    struct vs_pass_stats ps;          /* this stream's part of the current pass */
    uint64_t pass_bytes0;
    uint64_t compressed_pages, compressed_raw, compressed_wire;  /* cumulative */
    int rc;                           /* result of the last pass */
    char error[512];
};

/* The pass the stream threads work on (send_streams.c): the pass loop starts a pass
 * (generation) and waits until every stream has done its part. */
struct vs_pass_sched {
    pthread_mutex_t lock;
    pthread_cond_t start_cv;        /* a new pass (generation) or quit */
    pthread_cond_t done_cv;         /* a stream finished its part */
    uint64_t generation;
    unsigned done;                  /* streams done with this generation */
    bool quit;
    uint32_t pass_no;
    bool final;                     /* the blackout pass */
    atomic_uint_fast64_t next_unit; /* next VS_SEND_UNIT_PAGES unit to claim */
    atomic_uint_fast64_t pages_left;    /* of the current pass, for progress */
};

/* --max-bandwidth: one budget for all streams, pre-copy only. */
struct vs_bandwidth_cap {
    bool on;
    uint64_t start_ns;
    atomic_uint_fast64_t bytes;     /* sent since start_ns */
};

/* Post-copy as the source's pass loop sees it; the engine itself is postcopy/. */
struct vs_source_postcopy_link {
    bool agreed;                    /* the destination offered VS_FEATURE_POSTCOPY */
    atomic_bool requested;          /* switch to post-copy: the pass ends early */
    struct vs_postcopy_source *engine;  /* from the switch on */
    uint64_t closed_bytes;          /* sent on channels a post-copy resume replaced */
};

/* The commit window, source side (commit/source_commit.c and commit/source_resolve.c;
 * docs/state-machine.md, "The commit window"). Under vs_migration.lock. */
struct vs_source_commit_window {
    uint32_t outcome;               /* VS_OUTCOME_SRC_*: undecided -> committed -> granted,
                                       or undecided/committed -> aborted; never back */
    uint32_t dest_state;            /* the destination's last RESOLVE state (0: none) */
    bool digest_sent;               /* DIGEST may have arrived: the destination may hold a
                                       verified copy */
    bool dest_refused;              /* it said its copy is bad or aborted: it holds none */
    bool dest_gave_up;              /* before COMMIT it said on the RESOLVE endpoint that it
                                       discarded its copy: the migration stops at once */
    bool settled;                   /* settling decided that the VM resumes here */
    pthread_cond_t settle_cv;       /* dest_state changed, or closing */
    struct vs_callback *resolve;    /* the RESOLVE endpoint the destination asks (opened
                                       by the dialer, beside stream 0) */
    pthread_t thread;
    bool thread_started;
};

struct vs_migration {
    struct vs_vm *vm;
    struct vs_migration_opts opts;
    struct vs_tls *tls;             /* NULL: --insecure */
    struct vs_dialer dialer;        /* how streams and calls reach opts.to: opts.dialer, or
                                       TCP + tls */
    pthread_t thread;
    pthread_mutex_t lock;           /* guards stats, ch, committed */
    struct vs_migration_stats stats;
    bool finished;
    bool committed;                 /* point of no return passed */
    atomic_bool cancel;
    struct vs_channel *ch;          /* stream 0: control and pages */
    struct vs_wire_writer *w;       /* stream 0's writer */
    struct vs_wire_reader r;        /* stream 0's reader */
    struct vs_dirty dirty;
    bool dirty_on;
    bool paused_by_us;
    bool unconfirmed;               /* committed, but the destination did not confirm */
    bool lost;                      /* granted, and the destination is provably gone */
    bool reclaimed;                 /* ... and the operator took the VM back here */
    double bandwidth;               /* bytes/s, measured on the last pass */
    uint64_t cpu0_ns;               /* process minus vCPU CPU time at start */

    /* The streams and the pass they are working on. */
    unsigned nr_streams;
    struct vs_send_stream streams[VS_WIRE_MAX_STREAMS];
    struct vs_pass_sched sched;     /* send_streams.c */
    atomic_bool stream_failed;

    struct vs_bandwidth_cap cap;    /* --max-bandwidth (send_streams.c) */

    struct vs_bw_sampler sampler;
    struct vs_digest_tracker *digest;   /* RAM digest, kept current as pages are sent */

    struct vs_source_postcopy_link post;    /* postcopy/ */
    struct vs_convergence conv;         /* measurements, predictions, policy, throttle */

    uint8_t session[VS_WIRE_SESSION_LEN];   /* HELLO's: RESOLVE and post-copy resumes */
    struct vs_source_commit_window window;  /* commit/ */
    atomic_bool closing;            /* vs_migration_free: stop waiting */
};

/* source.c, for postcopy_source.c. */
void vs_source_set_status(struct vs_migration *m, const char *status);
int vs_source_await_verdict(struct vs_migration *m);

/* Is this 4 KiB page all zero? (send_streams.c) */
bool vs_page_is_zero(const uint8_t *p);
/* ECANCELED (with the message) once the operator has cancelled, else 0. */
int vs_source_check_cancel(struct vs_migration *m);
/* Connect and secure every stream, HELLO / STREAM_HELLO, and the destination's
 * HELLO_REPLY (source_handshake.c). */
int vs_source_handshake(struct vs_migration *m);

/* Open the streams' resources (codec, buffers) once their channels are set. */
int vs_send_streams_init(struct vs_migration *m);
/* Start one thread per stream. */
int vs_send_streams_start(struct vs_migration *m);
/* Send every pending dirty page over all streams and end the pass on each; returns when
 * all are done. ps gets the pass's totals. */
int vs_send_streams_pass(struct vs_migration *m, uint32_t pass, bool final,
                         struct vs_pass_stats *ps);
/* Stop the threads and free what init allocated (channels are closed by the caller). */
void vs_send_streams_stop(struct vs_migration *m);
/* Bytes sent on all streams so far. */
uint64_t vs_send_streams_bytes(struct vs_migration *m);
/* With the vCPUs stopped and the final pass sent: VCPU_STATE per vCPU, MACHINE_STATE and
 * DIGEST on stream 0 (source_state.c). pause_ns goes into DIGEST for the downtime. */
int vs_source_send_state(struct vs_migration *m, uint64_t pause_ns);

/* The RESOLVE endpoint: listen beside stream 0 (its port goes into HELLO) and answer the
 * destination's questions about the outcome for as long as the migration object lives. */
int vs_source_resolve_listen(struct vs_migration *m, uint16_t *port);
void vs_source_resolve_stop(struct vs_migration *m);
/* The destination said on the RESOLVE endpoint that it discarded its copy. Before COMMIT
 * the migration stops at once (aborted; its streams are shut down) instead of waiting for
 * the transport to notice: a path that keeps a dead peer's connections open would
 * otherwise hold the source in pre-copy until its timeouts. */
void vs_source_dest_discarded(struct vs_migration *m);
/* committed -> granted (the point of no return: the VM is marked migrated). Returns
 * whether the outcome is now granted. */
bool vs_source_grant(struct vs_migration *m);
/* committed -> aborted, unless the outcome was granted meanwhile. Returns whether the
 * outcome is now aborted. */
bool vs_source_withdraw(struct vs_migration *m);

enum vs_settled {
    VS_SETTLED_SOURCE,      /* the destination holds no copy any more: resume here */
    VS_SETTLED_DEST,        /* the destination runs the VM */
    VS_SETTLED_LOST,        /* granted, and the destination is gone: the VM was lost */
    VS_SETTLED_UNKNOWN,     /* granted and no answer within the timeout, or the
                               migration is being freed: resume nothing */
};
/* Stream 0 was lost after DIGEST: reach the destination over fresh connections (or
 * hear from it on the RESOLVE endpoint) until the outcome is settled. Waits as long as
 * it must while the outcome is aborted or committed (resuming on a guess could run the
 * VM twice); gives up after the timeout once granted. */
enum vs_settled vs_source_settle(struct vs_migration *m);
/* Settled VS_SETTLED_LOST (granted, then the destination died): unconfirmed, and the
 * operator is told, with this VM's control socket, how to take the VM back if the
 * destination never started it, or how to let it go. */
void vs_source_lost(struct vs_migration *m, const char *why);

/* After a positive VERIFY_REPLY (source_commit.c): COMMIT, the destination's CLAIM, GRANT,
 * RESUMED, settling if stream 0 breaks; the status ends completed, unconfirmed or (the
 * destination died before claiming: the VM resumed here) failed. Returns 0 when the VM
 * left, else the error that made it resume here (roll_back does the rest). */
int vs_source_commit(struct vs_migration *m, uint64_t pause_ns);
/* Rolling back after DIGEST may have reached the destination: the outcome becomes
 * aborted, and the VM may resume only once the destination discarded its copy or is
 * gone. Returns NULL when the rollback may go on (resume here), else the final status
 * (the VM must not resume here). */
const char *vs_source_settle_abort(struct vs_migration *m);

#endif
