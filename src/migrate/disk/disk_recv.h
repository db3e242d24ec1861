/* The destination's side of copying disks with the VM (docs/stream-format.md "Disks copied
 * with the VM"): `vmshift receive --disk DEST_FILE` names a pre-created file of the disk's
 * size (as QEMU's destination pre-creates the target of a drive mirror). The migration
 * opens it for writing on its own descriptor with an OFD write lock (so it can never be a
 * file a source on this host is copying from), empties it (all holes), writes the blocks
 * DISK_BLOCKS brings, and keeps the XXH3-64 of every block it wrote: its digest of the
 * disk, compared with the source's DISK_DIGEST before the destination says verified.
 * The VM's own device opens the file for writing only after the commit, as for shared
 * storage. A failed migration leaves the partial file; the VM never runs on it. */
#ifndef VS_DISK_RECV_H
#define VS_DISK_RECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "migrate/report.h"
#include "vmm/vm.h"
#include "wire/reader.h"

struct vs_disk_recv;

/* HELLO asked for the disks of `mask` (bit i: the VM's i-th disk) to be copied into vm's
 * disks (built from this host's --disk options: local_disks must be true). */
int vs_disk_recv_new(struct vs_disk_recv **out, struct vs_vm *vm, uint32_t mask,
                     bool local_disks);
void vs_disk_recv_free(struct vs_disk_recv *d);
/* A DISK_BLOCKS record on stream 0 (header read). */
int vs_disk_recv_blocks(struct vs_disk_recv *d, struct vs_wire_reader *r,
                        const struct vs_wire_header *h, struct vs_disk_report *rep);
/* A DISK_DIGEST record: flushes the disk and compares; a mismatch is kept for the verdict. */
int vs_disk_recv_digest(struct vs_disk_recv *d, struct vs_wire_reader *r,
                        const struct vs_wire_header *h, struct vs_disk_report *rep);
/* At DIGEST: "" when every copied disk's digest arrived and matched, else why not. */
void vs_disk_recv_verdict(struct vs_disk_recv *d, char *reason, size_t len);

#endif
