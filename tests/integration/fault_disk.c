/* The shared disk of a named fault trial (fault_trial.h, .disk): the VM's guest runs the
 * disk workload on a file both sides open (--disk FILE,shared; the receiver takes the spec
 * from the stream), and the trial checks the promise of shared storage: never two writers.
 *  - While the migration runs and settles, a thread samples both processes' descriptors
 *    of the file every 2 ms (disk_writers.c), and each look compares the destination's
 *    and then the source's status of disk 0: never may both write.
 *  - Afterwards, where the VM runs its disk is open for writing and the workload completes
 *    another pass with 0 errors (each block is checked before it is overwritten, so a
 *    write lost or made by the other side shows); the other side, alive or not, holds no
 *    descriptor of the file for writing and its write count does not move meanwhile. */
#include "disk_probe.h"
#include "disk_writers.h"
#include "fault_trial.h"
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISK_BYTES (16u << 20)

void fault_disk_create(struct fault_disk *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/vs-fdisk-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->path, sizeof(d->path), "%s/shared.img", d->dir);
    snprintf(d->spec, sizeof(d->spec), "%s,shared", d->path);
    assert_true(disk_file_create(d->path, DISK_BYTES));
}

void fault_disk_watch(struct fault_disk *d, struct vm_proc *src, struct vm_proc *dst)
{
    d->watch = disk_watch_start(dst->pid, src->pid, d->path);
}

void fault_disk_look(struct fault_disk *d, struct vm_proc *src, struct vm_proc *dst)
{
    if (d->two_writers)
        return;
    /* The destination first: once it may write, the source never may again. */
    struct json_object *dst_st = fault_ask(dst, "status");
    struct json_object *src_st = dst_st ? fault_ask(src, "status") : NULL;
    if (disk_status_writes(dst_st, NULL) && disk_status_writes(src_st, NULL)) {
        d->two_writers = true;
        snprintf(d->two_writers_why, sizeof(d->two_writers_why),
                 "the destination's status said disk 0 is open and writable, and then the "
                 "source's");
    }
    json_object_put(dst_st);
    json_object_put(src_st);
}

static void stop_watch(struct fault_disk *d, const char *what)
{
    unsigned samples, both;
    double at_ms;
    disk_watch_stop(d->watch, &samples, &both, &at_ms);
    d->watch = NULL;
    print_message("    disk: %u samples of both sides' descriptors, %u with two writers\n",
                  samples, both);
    if (both)
        fail_msg("%s: TWO WRITERS: both sides had the shared disk open for writing in %u of "
                 "%u samples (first %.0f ms after the migrate request)", what, both, samples,
                 at_ms);
    if (d->two_writers)
        fail_msg("%s: TWO WRITERS: %s", what, d->two_writers_why);
}

/* The other side's write count (0 when gone), and that it may not write. */
static uint64_t loser_writes(struct vm_proc *p, const char *path, const char *what)
{
    uint64_t writes = 0;
    struct json_object *st = fault_ask(p, "status");
    if (disk_status_writes(st, &writes))
        fail_msg("%s: the side that does not run the VM has the disk open for writing", what);
    json_object_put(st);
    if (fault_proc_alive(p) && disk_fd_writes(p->pid, path))
        fail_msg("%s: the side that does not run the VM holds the disk open for writing", what);
    return writes;
}

void fault_disk_check(struct fault_disk *d, struct vm_proc *src, struct vm_proc *dst,
                      struct vm_proc *runs, const char *what)
{
    stop_watch(d, what);
    if (!runs) {
        loser_writes(src, d->path, what);
        loser_writes(dst, d->path, what);
        print_message("    disk: neither side runs the VM, neither may write its disk\n");
        return;
    }
    struct vm_proc *other = runs == src ? dst : src;
    uint64_t before = loser_writes(other, d->path, what), writes0 = 0, writes1 = 0;
    struct json_object *st = vm_cmd(runs, "status", NULL);
    assert_true(disk_status_writes(st, &writes0));
    json_object_put(st);
    struct disk_counts c = disk_read_counts(runs);
    struct disk_counts after = disk_wait_passes(runs, c.passes + 1, 60);
    st = vm_cmd(runs, "status", NULL);
    assert_true(disk_status_writes(st, &writes1));
    json_object_put(st);
    assert_int_equal(after.errors, 0);
    if (writes1 <= writes0)
        fail_msg("%s: the VM's disk took no write over a pass of its workload", what);
    uint64_t later = loser_writes(other, d->path, what);
    if (later != before)
        fail_msg("%s: the side that does not run the VM wrote %llu requests meanwhile", what,
                 (unsigned long long)(later - before));
    print_message("    disk: pass %llu, %llu blocks checked, 0 errors; %llu -> %llu writes here, "
                  "the other side's stayed at %llu\n", (unsigned long long)after.passes,
                  (unsigned long long)after.checked, (unsigned long long)writes0,
                  (unsigned long long)writes1, (unsigned long long)before);
}

void fault_disk_remove(struct fault_disk *d)
{
    char cmd[128];
    if (d->watch) {
        unsigned a, b;
        double c;
        disk_watch_stop(d->watch, &a, &b, &c);
        d->watch = NULL;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    if (d->dir[0] && system(cmd) != 0)
        print_message("could not remove %s\n", d->dir);
}
