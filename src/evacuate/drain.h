/* `vmshift evacuate`: drain one vmshiftd into others. One VM at a time per slot: the
 * destination host gets ready for it (vm-receive), the source VM migrates there (its own
 * `migrate`, with every guarantee of a single migration), and once it runs there the
 * source's monitor is stopped. A failed or refused VM keeps running on the source and the
 * others go on. How many migrate at a time is fixed or adapted (parallelism.h). */
#ifndef VS_DRAIN_H
#define VS_DRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "evacuate/evacuate_options.h"
#include "evacuate/parallelism.h"
#include "host/host_client.h"

struct json_object;
struct ctl_remote;

enum evac_state {
    EVAC_PENDING,       /* not started yet */
    EVAC_MIGRATING,     /* its migration runs */
    EVAC_ADOPTING,      /* migrated; waiting until the destination lists it running */
    EVAC_COMPLETED,     /* runs at the destination; the source's monitor was stopped */
    EVAC_FAILED,        /* the migration failed; the VM runs on at the source */
    EVAC_CANCELLED,     /* cancelled (interrupted); the VM runs on at the source */
    EVAC_REFUSED,       /* no destination would take it; the VM runs on at the source */
    EVAC_UNCONFIRMED,   /* committed, but the destination never confirmed (check it) */
    EVAC_SKIPPED,       /* not migrated: not running at the source, or interrupted */
};

struct evac_item {
    char name[40];
    uint64_t mem;
    unsigned vcpus;
    enum evac_state state;
    int dest;                   /* index into the destinations, -1 before placement */
    char to[128];               /* HOST:PORT its receiver listened on */
    double start_s, end_s;      /* since the drain started */
    double bytes, prev_bytes;   /* ram.transferred so far, at the previous look */
    unsigned passes;
    bool struggling;
    unsigned poll_failures;
    double adopt_deadline_s;
    bool cancel_sent;
    bool digest_checked, digest_match;
    struct json_object *report; /* the final migration report (owned) */
    char error[600];
};

struct evac_dest {
    const char *host;           /* its control socket */
    char name[64];              /* what it calls itself */
    unsigned incoming;          /* migrations to it running now */
};

struct evac_sample {            /* one look at the running migrations */
    double t_s;                 /* since the drain started */
    double mbps;                /* aggregate rate since the previous look */
    unsigned active, degree;
};

struct evac_drain {
    const struct evacuate_options *opt;
    struct host_links links;        /* a session per host, and how HOST:PORT ones are reached */
    char source_name[64];
    struct evac_item items[EVAC_MAX_VMS];
    unsigned nitems;
    unsigned order[EVAC_MAX_VMS];   /* migration order (indexes into items) */
    unsigned next;                  /* next position in order to start */
    struct evac_dest dests[EVAC_MAX_DESTS];
    unsigned ndests;
    struct par_controller par;
    unsigned degree;
    struct evac_sample *samples;
    unsigned nsamples, samples_cap;
    uint64_t t0_ns;
    double drain_s;                 /* first start to last migration end */
    double elapsed_s;               /* the whole command */
    bool interrupted;
};

/* Drain o->from into o->to (hosts given as HOST:PORT reached as `remote` says). Returns 0
 * when every VM moved, 1 when some did not, or a negative errno when the source cannot be
 * listed (nothing was started). */
int evac_drain_run(const struct evacuate_options *o, const struct ctl_remote *remote,
                   struct evac_drain *d);
void evac_drain_free(struct evac_drain *d);

const char *evac_state_name(enum evac_state s);
/* How many VMs are in state s. */
unsigned evac_count(const struct evac_drain *d, enum evac_state s);

/* drain_report.c: the JSON report, and the human table on f. */
struct json_object *evac_report_json(const struct evac_drain *d);
void evac_print_summary(const struct evac_drain *d, FILE *f);

#endif
