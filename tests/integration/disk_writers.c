#include "disk_writers.h"
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool disk_file_create(const char *path, uint64_t bytes)
{
    int fd = open(path, O_CREAT | O_RDWR | O_EXCL, 0600);
    if (fd < 0)
        return false;
    bool ok = ftruncate(fd, (off_t)bytes) == 0;
    close(fd);
    return ok;
}

/* The access mode of descriptor fd of process pid, from its fdinfo (-1 if unreadable). */
static int fd_mode(pid_t pid, const char *fd)
{
    char info[320], line[128];
    snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", (int)pid, fd);
    FILE *f = fopen(info, "r");
    unsigned long flags = 0;
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f))
        found = sscanf(line, "flags: %lo", &flags) == 1;
    if (f)
        fclose(f);
    return found ? (int)(flags & O_ACCMODE) : -1;
}

bool disk_fd_writes(pid_t pid, const char *path)
{
    char dir[32], link[320], target[256];
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
        if (!strcmp(target, path)) {
            int mode = fd_mode(pid, e->d_name);
            writes = mode == O_WRONLY || mode == O_RDWR;
        }
    }
    if (d)
        closedir(d);
    return writes;
}

bool disk_status_writes(struct json_object *st, uint64_t *writes)
{
    struct json_object *disks, *d;
    if (!st || !json_object_object_get_ex(st, "disks", &disks) ||
        !(d = json_object_array_get_idx(disks, 0)))
        return false;
    if (writes)
        *writes = json_object_get_uint64(json_member(d, "writes"));
    return json_object_get_boolean(json_member(d, "open")) &&
           json_object_get_boolean(json_member(d, "writable"));
}

struct disk_watch {
    pthread_t thread;
    pid_t a, b;
    char path[256];
    atomic_bool stop;
    unsigned samples, both;
    double t0, both_at_ms;
};

static void *watch_thread(void *arg)
{
    struct disk_watch *w = arg;
    while (!atomic_load(&w->stop)) {
        /* a first: the destination, that may write only once the source may not. */
        if (disk_fd_writes(w->a, w->path) && disk_fd_writes(w->b, w->path)) {
            if (!w->both)
                w->both_at_ms = (now_s() - w->t0) * 1000;
            w->both++;
        }
        w->samples++;
        usleep(2000);
    }
    return NULL;
}

struct disk_watch *disk_watch_start(pid_t a, pid_t b, const char *path)
{
    struct disk_watch *w = calloc(1, sizeof(*w));
    if (!w)
        fail_msg("out of memory for the disk watch");
    w->a = a;
    w->b = b;
    w->t0 = now_s();
    snprintf(w->path, sizeof(w->path), "%s", path);
    if (pthread_create(&w->thread, NULL, watch_thread, w))
        fail_msg("cannot start the disk watch thread");
    return w;
}

void disk_watch_stop(struct disk_watch *w, unsigned *samples, unsigned *both, double *both_at_ms)
{
    *samples = *both = 0;
    *both_at_ms = 0;
    if (!w)
        return;
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    *samples = w->samples;
    *both = w->both;
    *both_at_ms = w->both_at_ms;
    free(w);
}
