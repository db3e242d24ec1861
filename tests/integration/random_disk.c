/* The shared disk of a random device trial (plan device RD_DISK): one sparse file in the
 * trial's directory that both sides reach (`--disk FILE,shared`), which the guest's disk
 * workload writes with sequenced, checksummed blocks and checks (guest/disk.c).
 *  - Never two writers: at every look of the watch, the destination's and then the
 *    source's view of disk 0 (status "disks": open and writable), and then their
 *    descriptors of the file in /proc (one opened for writing), may not both say "writes"
 *    (the destination first: once it may write, the source never may again).
 *  - After the trial: where the VM runs, the disk is open for writing and its workload
 *    makes progress with 0 errors; the side that does not run it, if alive, has no
 *    descriptor of the file open for writing, its disk is closed or read-only, and its
 *    write count does not move while the survivor's workload is checked. */
#include "random_internal.h"
#include "disk_probe.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DISK_BYTES (16u << 20)

void rt_disk_create(struct rt_ctx *c, const char *work_dir)
{
    snprintf(c->disk_path, sizeof(c->disk_path), "%s/shared.img", work_dir);
    snprintf(c->disk_spec, sizeof(c->disk_spec), "%s,shared", c->disk_path);
    int fd = open(c->disk_path, O_CREAT | O_RDWR | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, DISK_BYTES))
        fail_msg("cannot create the shared disk %s", c->disk_path);
    close(fd);
}

/* Whether process pid has the file at path open for writing (from /proc/PID/fd and its
 * fdinfo flags); false when it has none or is gone. */
bool rt_fd_writes(pid_t pid, const char *path)
{
    char dir[32], link[320], target[256], info[320], line[128];
    if (pid <= 0)
        return false;
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    bool writes = false;
    for (struct dirent *e; d && !writes && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path))
            continue;
        snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
        FILE *f = fopen(info, "r");
        unsigned long flags = 0;
        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "flags: %lo", &flags) == 1)
                break;
        if (f)
            fclose(f);
        writes = (flags & O_ACCMODE) != O_RDONLY;
    }
    if (d)
        closedir(d);
    return writes;
}

/* Disk 0 of a status reply: may it write (open and writable), and its write count. */
static bool status_writes(struct json_object *st, uint64_t *writes)
{
    struct json_object *d = st ? json_object_array_get_idx(json_member(st, "disks"), 0) : NULL;
    if (!d)
        return false;
    if (writes)
        *writes = json_object_get_uint64(json_member(d, "writes"));
    return json_object_get_boolean(json_member(d, "open")) &&
           json_object_get_boolean(json_member(d, "writable"));
}

void rt_disk_look(struct rt_ctx *c, struct json_object *dst_st, struct json_object *src_st)
{
    if (c->p->device != RD_DISK || c->two_writers)
        return;
    bool dst_says = status_writes(dst_st, NULL), src_says = status_writes(src_st, NULL);
    bool dst_fd = rt_fd_writes(c->dst.vm.pid, c->disk_path);
    bool src_fd = dst_fd && rt_fd_writes(c->src.vm.pid, c->disk_path);
    if ((dst_says && src_says) || (dst_fd && src_fd)) {
        c->two_writers = true;
        rt_note(c, "TWO WRITERS of the shared disk at %.0f ms (%s)",
                (now_s() - c->t_migrate) * 1000,
                dst_fd && src_fd ? "both had it open for writing" : "both status said writable");
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
    bool says = status_writes(st, writes);
    json_object_put(st);
    if (says)
        snprintf(why, n, "the %s, which does not run the VM, has the disk open for writing "
                 "(status)", who);
    else if (rt_peer_alive(o) && rt_fd_writes(o->vm.pid, c->disk_path))
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
    bool may = status_writes(st, &writes0);
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
        status_writes(st, &writes);
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

/* Nobody runs the VM: nobody writes the disk either. */
bool rt_disk_judge_none(struct rt_ctx *c, char *why, size_t n)
{
    why[0] = '\0';
    if (c->p->device != RD_DISK)
        return true;
    if (c->two_writers) {
        snprintf(why, n, "the two sides both wrote the shared disk during the trial");
        return false;
    }
    uint64_t w;
    return !loser_writes(c, &c->src, "source", &w, why, n) &&
           !loser_writes(c, &c->dst, "destination", &w, why, n);
}
