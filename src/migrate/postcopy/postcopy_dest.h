/* Post-copy on the destination: the VM runs before every page arrived. The pages still
 * missing are punched out of guest RAM and registered with userfaultfd; a vCPU (or the
 * monitor) touching one waits while its address goes to the source as a PAGE_REQUEST,
 * and the page is copied in (UFFDIO_COPY) when it arrives, on demand or in the background.
 * A lost connection pauses the VM and waits for the source to resume. docs/state-machine.md
 * ("Post-copy") describes the states. */
#ifndef VS_POSTCOPY_DEST_H
#define VS_POSTCOPY_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "migrate/precopy/dest.h"
#include "migrate/state/digest_tracker.h"
#include "wire/reader.h"

struct vs_postcopy_dest;

/* What the incoming state machine hands over once the state is verified. */
struct vs_postcopy_handover {
    unsigned nr_streams;
    struct vs_channel *ch[VS_WIRE_MAX_STREAMS];     /* now owned by the post-copy */
    uint64_t next_seq[VS_WIRE_MAX_STREAMS], offset[VS_WIRE_MAX_STREAMS];   /* readers */
    uint64_t w0_seq;                                /* stream 0's writer */
    uint8_t session[VS_WIRE_SESSION_LEN];
    bool claim;                 /* a 2.2 source: CLAIM after COMMIT, run only after GRANT */
    struct vs_migration_stats stats;                /* the destination's view so far */
};

/* POSTCOPY_START (header h, on reader r): read the map of missing pages, drop those pages
 * from guest RAM (they must fault when touched) and check that they are gone. */
int vs_postcopy_dest_new(struct vs_postcopy_dest **out, struct vs_vm *vm,
                         const struct vs_incoming_opts *opts, struct vs_wire_reader *r,
                         const struct vs_wire_header *h);
/* The map of the pages missing at the switch (one bit per page). */
const uint64_t *vs_postcopy_dest_missing(const struct vs_postcopy_dest *pc);
/* When the source paused for the switch (POSTCOPY_START), on the source's clock. */
uint64_t vs_postcopy_dest_pause_ns(const struct vs_postcopy_dest *pc);
/* POSTCOPY_DIGESTS: compare every block without a missing page with the finished tracker
 * t; *vcpu_xxh3 / *machine_xxh3 get the source's state digests; reason gets a mismatch
 * ("" if none). */
int vs_postcopy_dest_check(struct vs_postcopy_dest *pc, struct vs_wire_reader *r,
                           const struct vs_wire_header *h, struct vs_digest_tracker *t,
                           uint64_t *vcpu_xxh3, uint64_t *machine_xxh3, char *reason,
                           size_t len);
/* Take over the streams and start: wait for COMMIT, run the VM, fetch the rest. */
int vs_postcopy_dest_start(struct vs_postcopy_dest *pc, const struct vs_postcopy_handover *ho);

/* The destination's report so far (status postcopy-active, postcopy-paused, completed,
 * failed). */
void vs_postcopy_dest_stats(struct vs_postcopy_dest *pc, struct vs_migration_stats *out);
/* Pages are still missing: the monitor must not read guest RAM (it could wait forever). */
bool vs_postcopy_dest_busy(struct vs_postcopy_dest *pc);
/* The source aborted before COMMIT: the VM must never run here. */
bool vs_postcopy_dest_failed(struct vs_postcopy_dest *pc);
/* resume-migration on the destination: where it waits for the source, or an error if the
 * post-copy is not paused. */
int vs_postcopy_dest_resume(struct vs_postcopy_dest *pc, char *where, size_t len);
/* Stop everything (quit): waiting vCPUs are released, pages still missing read as zero. */
void vs_postcopy_dest_stop(struct vs_postcopy_dest *pc);
void vs_postcopy_dest_free(struct vs_postcopy_dest *pc);

#endif
