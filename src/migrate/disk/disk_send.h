/* The source's side of copying disks with the VM (`vmshift migrate --with-disks`): every
 * disk of the VM not on shared storage goes with the RAM, on stream 0, between the RAM
 * passes (docs/stream-format.md "Disks copied with the VM").
 *
 *  - A first (bulk) pass sends the disk's allocated blocks (SEEK_DATA/SEEK_HOLE skip holes;
 *    all-zero blocks are not sent: the destination starts from an all-zero file).
 *  - From the start the disk device marks the blocks the guest writes (blk_dirty.h); each
 *    later pass sends the blocks marked since the last (a block now all zero as a zero
 *    entry). The blackout's pass sends the rest once the device has drained.
 *  - After the blackout's pass the source sends DISK_DIGEST; the destination compares it
 *    with what it wrote. The digest is over per-block hashes: by default (x-disk-verify
 *    after) those of the blocks as they were sent, kept as they go, so the blackout reads
 *    nothing, and after the commit the source re-reads its final disk (frozen: the VM
 *    is the destination's) and audits the hashes (vs_disk_send_audit); with blackout the
 *    source re-reads its final disk inside the blackout, so a write the tracking missed
 *    fails the migration before the commit.
 *
 * The source's disk is only read: its own descriptor is O_RDONLY and holds an OFD read
 * lock for the migration, so a destination on this host cannot write the same file (its
 * write lock fails). The guest keeps writing through the device as before. */
#ifndef VS_DISK_SEND_H
#define VS_DISK_SEND_H

#include <stdint.h>
#include "migrate/report.h"
#include "vmm/vm.h"
#include "wire/writer.h"

struct vs_disk_send;

/* The disks of vm to copy (not `shared`); *mask gets HELLO's disks_copied (0: none, and
 * *out is NULL). Opens and locks them. */
int vs_disk_send_new(struct vs_disk_send **out, struct vs_vm *vm, uint32_t *mask);
void vs_disk_send_free(struct vs_disk_send *s);
/* Track the guest's writes and note the allocated blocks as the bulk pass's work. */
int vs_disk_send_start(struct vs_disk_send *s, struct vs_disk_report *rep);
/* Stop tracking and close the disks (the VM left, or the migration rolled back). */
void vs_disk_send_stop(struct vs_disk_send *s);
/* Take the blocks written since the last call into the work of the next pass; returns
 * the blocks that pass will send. */
uint64_t vs_disk_send_sync(struct vs_disk_send *s);
/* Called after each record with its bytes: paces to --max-bandwidth and says whether to go
 * on (non-zero: stop with that error, e.g. cancelled). */
typedef int (*vs_disk_pace_fn)(void *ctx, uint64_t bytes);
/* Send the pass's blocks on w (stream 0, no other writer); adds to ps and rep. */
int vs_disk_send_pass(struct vs_disk_send *s, struct vs_wire_writer *w, uint32_t pass,
                      vs_disk_pace_fn pace, void *pace_ctx, struct vs_pass_stats *ps,
                      struct vs_disk_report *rep);
/* The guest is stopped and every block sent: send DISK_DIGEST for each disk, from its
 * blocks' hashes as sent, or (reread) from its file as it is now. */
int vs_disk_send_digests(struct vs_disk_send *s, struct vs_wire_writer *w, bool reread,
                         struct vs_disk_report *rep);
/* After the commit: re-read each disk and compare it block by block with what was sent;
 * sets rep->audit. Fails (naming the disk and block) if a block differs. */
int vs_disk_send_audit(struct vs_disk_send *s, struct vs_disk_report *rep);

#endif
