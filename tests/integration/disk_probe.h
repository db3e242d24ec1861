/* The guest's disk workload as the tests see it: vCPU 0's counters (guest/disk.h) from the
 * VM's status, and waiting for its passes. Shared by the virtio-blk, NBD and --with-disks
 * integration tests. */
#ifndef VS_TEST_DISK_PROBE_H
#define VS_TEST_DISK_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct vm_proc;

struct disk_counts {
    uint64_t passes, written, checked, errors, generation, max_stall_us, kib_s;
};

/* vCPU 0's counter key in a status reply; 0 until the guest has registered its telemetry. */
uint64_t disk_cpu0(struct json_object *status, const char *key);
/* The counters now; the test fails if the guest is in state "failed". */
struct disk_counts disk_read_counts(struct vm_proc *p);
/* Poll until vCPU 0 has completed `passes` passes; the test fails if the guest finds a
 * bad block meanwhile, or after timeout_s (with the guest's serial log). */
struct disk_counts disk_wait_passes(struct vm_proc *p, uint64_t passes, double timeout_s);

/* The host's view of disk i (the "disks" array of status): a number, or a flag as 0/1;
 * disk_stat: disk 0's. */
uint64_t disk_stat_of(struct vm_proc *p, unsigned i, const char *key);
uint64_t disk_stat(struct vm_proc *p, const char *key);
/* The first len bytes of a file (malloc'd; the test fails if it cannot be read). */
uint8_t *file_read_all(const char *path, size_t len);

#endif
