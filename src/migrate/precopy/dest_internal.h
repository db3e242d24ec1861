/* The incoming migration's state, shared by dest.c (the records after the handshake)
 * and dest_handshake.c (HELLO, admission, the skeleton VM, the extra streams). */
#ifndef VS_DEST_INTERNAL_H
#define VS_DEST_INTERNAL_H

#include <pthread.h>
#include <xxhash.h>
#include "common/blob.h"
#include "migrate/disk/disk_recv.h"
#include "migrate/precopy/dest.h"
#include "migrate/precopy/recv_streams.h"
#include "migrate/state/digest_tracker.h"
#include "wire/reader.h"
#include "wire/writer.h"

enum phase { PHASE_PAGES, PHASE_STATE, PHASE_VERIFIED };

struct incoming {
    const struct vs_incoming_opts *opts;
    struct vs_incoming_session *session;
    struct vs_channel *ch;
    struct vs_wire_reader r0;   /* stream 0 until the streams are set up */
    struct vs_wire_reader *r;   /* stream 0 */
    struct vs_wire_writer w;
    struct vs_vm *vm;
    struct vs_migration_stats *stats;
    struct vs_recv_streams rs;  /* all streams' pages; stream 0 is read here */
    uint8_t *state_buf;         /* one VCPU_STATE or MACHINE_STATE payload */
    struct vs_blob vcpu_blobs[VS_MAX_VCPUS];  /* as received, for the final check */
    XXH3_state_t *vcpu_hash;
    uint64_t machine_hash;
    struct vs_digest_tracker *digest;   /* RAM digest, kept current as pages arrive */
    uint64_t digest_start_ns;
    uint64_t pass_start_ns, pass_start_bytes;
    uint64_t cpu0_ns;
    enum phase phase;
    bool legacy_commit;         /* a 2.0/2.1 source: resume on COMMIT, no CLAIM/GRANT */
    bool legacy_machine;        /* a 2.0-2.2 source: flat machine, tagged machine blob */
    unsigned next_vcpu;
    bool machine_done;
    struct vs_postcopy_dest *pc;    /* the source switched to post-copy */
    struct vs_disk_recv *disks;     /* disks copied with the VM (HELLO VS_FEATURE_DISKS) */
    bool hello_read;            /* a HELLO record arrived: the peer is a vmshift source */
    bool claimed;               /* CLAIM sent: the source may have granted us the VM */
    bool same_clock;            /* the source runs on this host: its pause_ns is ours */
    /* A stop signal (on_stop) cuts the streams; stop_lock orders it with their setup. */
    pthread_mutex_t stop_lock;
    int stopped;                /* the signal, or 0 */
    bool rs_ready;              /* rs is initialized */
};

const char *vs_dest_phase_name(enum phase p);
/* Read HELLO, admit the VM, build its skeleton, accept the extra streams, reply. */
int vs_dest_handshake(struct incoming *in);

#endif
