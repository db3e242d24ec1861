/* The shared disk of a random device trial (plan device RD_DISK): one sparse file in the
 * trial's directory that both sides reach (`--disk FILE,shared`), which the guest's disk
 * workload writes with sequenced, checksummed blocks and checks (guest/disk.c).
 *  - Never two writers: from the migrate request on, a thread samples both processes'
 *    descriptors of the file every 2 ms (tests/integration/disk_writers.c), and at every
 *    look of the watch the destination's and then the source's view of disk 0 (status
 *    "disks": open and writable): never may both write (the destination first: once it
 *    may write, the source never may again).
 *  - After the trial: where the VM runs, the disk is open for writing and its workload
 *    makes progress with 0 errors; the side that does not run it, if alive, has no
 *    descriptor of the file open for writing, its disk is closed or read-only, and its
 *    write count does not move while the survivor's workload is checked.
 *  - Nobody runs it: nobody may write, except a destination paused in post-copy (it owns the
 *    VM and keeps its disk open, but writes nothing while paused). */
#include "random_internal.h"
#include "disk_probe.h"
#include "disk_writers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DISK_BYTES (16u << 20)

void rt_disk_create(struct rt_ctx *c, const char *work_dir)
{
    snprintf(c->disk_path, sizeof(c->disk_path), "%s/shared.img", work_dir);
    snprintf(c->disk_spec, sizeof(c->disk_spec), "%s,shared", c->disk_path);
    if (!disk_file_create(c->disk_path, DISK_BYTES))
        fail_msg("cannot create the shared disk %s", c->disk_path);
}

void rt_disk_watch(struct rt_ctx *c)
{
    if (c->p->device == RD_DISK)
        c->disk_watch = disk_watch_start(c->dst.vm.pid, c->src.vm.pid, c->disk_path);
}

void rt_disk_look(struct rt_ctx *c, struct json_object *dst_st, struct json_object *src_st)
{
    if (c->p->device != RD_DISK || c->two_writers)
        return;
    if (disk_status_writes(dst_st, NULL) && disk_status_writes(src_st, NULL)) {
        c->two_writers = true;
        rt_note(c, "TWO WRITERS of the shared disk at %.0f ms (both status replies said "
                "open and writable)", (now_s() - c->t_migrate) * 1000);
    }
}

/* The watch thread's count: samples where both had the file open for writing. */
static void stop_watch(struct rt_ctx *c)
{
    unsigned samples, both;
    double at_ms;
    if (!c->disk_watch)
        return;
    disk_watch_stop(c->disk_watch, &samples, &both, &at_ms);
    c->disk_watch = NULL;
    if (both && !c->two_writers) {
        c->two_writers = true;
        rt_note(c, "TWO WRITERS of the shared disk: both had it open for writing in %u of %u "
                "samples, first %.0f ms after the watch began", both, samples, at_ms);
    }
}

static struct json_object *side_status(struct rt_peer *x)
{
    return x->vm.pid > 0 ? rt_ask(x, "status", NULL) : NULL;
}

/* The side that does not run the VM: if alive, it neither may nor does write the disk. */
static bool loser_writes(struct rt_ctx *c, struct rt_peer *o, const char *who, uint64_t *writes,
                         char *why, size_t n)
{
    struct json_object *st = side_status(o);
    bool says = disk_status_writes(st, writes);
    json_object_put(st);
    if (says)
        snprintf(why, n, "the %s, which does not run the VM, has the disk open for writing "
                 "(status)", who);
    else if (rt_peer_alive(o) && disk_fd_writes(o->vm.pid, c->disk_path))
        snprintf(why, n, "the %s, which does not run the VM, holds a descriptor of the disk "
                 "open for writing", who);
    return says || why[0];
}

/* The survivor's disk workload: one more pass of vCPU 0 with 0 errors (the guest's check
 * already waited for two of every vCPU), and its writes
 * reach the file through this side's disk. */
static bool survivor_disk(struct rt_peer *w, char *why, size_t n)
{
    struct json_object *st = rt_ask(w, "status", NULL);
    uint64_t passes = disk_cpu0(st, "passes"), writes0 = 0;
    bool may = disk_status_writes(st, &writes0);
    json_object_put(st);
    if (!may) {
        snprintf(why, n, "the VM runs, but its disk is not open for writing");
        return false;
    }
    double deadline = now_s() + 60;
    for (;;) {
        st = rt_ask(w, "status", NULL);
        if (!st) {
            snprintf(why, n, "the VM stopped answering while its disk was checked");
            return false;
        }
        uint64_t now_passes = disk_cpu0(st, "passes"), errors = disk_cpu0(st, "errors"), writes;
        disk_status_writes(st, &writes);
        json_object_put(st);
        if (errors) {
            snprintf(why, n, "the guest's disk workload found %llu bad blocks",
                     (unsigned long long)errors);
            return false;
        }
        if (now_passes >= passes + 1 && writes > writes0)
            return true;
        if (now_s() > deadline) {
            snprintf(why, n, "the disk workload made no progress in 60 s (passes %llu -> %llu, "
                     "writes %llu -> %llu)", (unsigned long long)passes,
                     (unsigned long long)now_passes, (unsigned long long)writes0,
                     (unsigned long long)writes);
            return false;
        }
        usleep(100000);
    }
}

bool rt_disk_judge(struct rt_ctx *c, struct rt_peer *w, char *why, size_t n)
{
    why[0] = '\0';
    if (c->p->device != RD_DISK)
        return true;
    stop_watch(c);
    if (c->two_writers) {
        snprintf(why, n, "the two sides both wrote the shared disk during the trial");
        return false;
    }
    struct rt_peer *o = w == &c->src ? &c->dst : &c->src;
    const char *who = w == &c->src ? "destination" : "source";
    uint64_t before = 0, after = 0;
    if (loser_writes(c, o, who, &before, why, n))
        return false;
    if (!survivor_disk(w, why, n))
        return false;
    if (loser_writes(c, o, who, &after, why, n))
        return false;
    if (after != before) {
        snprintf(why, n, "the %s, which does not run the VM, wrote the disk while the survivor "
                 "did (%llu -> %llu requests)", who, (unsigned long long)before,
                 (unsigned long long)after);
        return false;
    }
    return true;
}

/* A destination paused in post-copy owns the VM (the source granted it) and waits for its
 * source: it keeps the disk open for writing, as the one writer to be, but its paused
 * vCPUs write nothing while the judge looks twice. */
static bool paused_owner_idle(struct rt_ctx *c, char *why, size_t n)
{
    struct json_object *st = side_status(&c->dst);
    uint64_t before = 0, after = 0;
    bool may = disk_status_writes(st, &before);
    json_object_put(st);
    if (!may)
        return true;
    usleep(300000);
    st = side_status(&c->dst);
    disk_status_writes(st, &after);
    json_object_put(st);
    if (after == before)
        return true;
    snprintf(why, n, "the destination, paused in post-copy, wrote the disk (%llu -> %llu "
             "requests)", (unsigned long long)before, (unsigned long long)after);
    return false;
}

/* Nobody runs the VM: nobody writes the disk either; only a destination paused in post-copy,
 * which owns the VM, may keep it open for writing. */
bool rt_disk_judge_none(struct rt_ctx *c, char *why, size_t n)
{
    why[0] = '\0';
    if (c->p->device != RD_DISK)
        return true;
    stop_watch(c);
    if (c->two_writers) {
        snprintf(why, n, "the two sides both wrote the shared disk during the trial");
        return false;
    }
    uint64_t w;
    if (loser_writes(c, &c->src, "source", &w, why, n))
        return false;
    if (c->look.dst_alive && !strcmp(c->look.dst_in, "postcopy-paused"))
        return paused_owner_idle(c, why, n);
    return !loser_writes(c, &c->dst, "destination", &w, why, n);
}
