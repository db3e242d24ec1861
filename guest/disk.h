/* The disk workload (workload=disk): vCPU 0 writes sequenced, checksummed 4 KiB blocks
 * (include/vmshift/disk_format.h) over the first disk_blocks= blocks of the first virtio-blk
 * disk and reads each back, in passes; before overwriting a block it checks that the block
 * still holds what the previous pass wrote (so writes lost across a migration are found).
 * Requests carry 8 blocks; a flush ends every pass. On a read-only disk it checks that a
 * write is refused, then only reads and checks (any pass's blocks). The other vCPUs run
 * verify over their RAM slices meanwhile.
 *
 * vCPU 0's counters (docs/guide.md): passes, pages_written = blocks written, pages_checked
 * = blocks read and checked, errors, generation = the pass being written, first_bad_addr
 * = the disk byte offset of the first bad block, max_gap_us = the longest request (the
 * longest I/O stall the guest saw), rng_bytes = KiB/s read and written over the last
 * second. */
#ifndef VS_GUEST_DISK_H
#define VS_GUEST_DISK_H

#include "params.h"

#define VS_DISK_DEFAULT_BLOCKS 256   /* 1 MiB */

/* vCPU 0 at boot: start the driver. 0, or -1 with a message in err. */
int vs_disk_start(const struct vs_guest_params *p, char *err, unsigned errlen);

/* vCPU 0: the passes, forever. */
void vs_disk_run(unsigned cpu) __attribute__((noreturn));

#endif
