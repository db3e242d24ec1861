#include "thp_collapse.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define TWO_MIB (2UL << 20)

static int collapse_range(int pidfd, unsigned long start, unsigned long end)
{
    start = (start + TWO_MIB - 1) & ~(TWO_MIB - 1);
    end &= ~(TWO_MIB - 1);
    int done = 0;
    for (unsigned long a = start; a < end; a += TWO_MIB) {   /* one 2 MiB page at a time */
        struct iovec v = { .iov_base = (void *)a, .iov_len = TWO_MIB };
        if (syscall(SYS_process_madvise, pidfd, &v, 1, MADV_COLLAPSE, 0) == (long)TWO_MIB)
            done = 1;
    }
    return done;
}

int thp_collapse_anon(pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -1;
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        close(pidfd);
        return -1;
    }
    int collapsed = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end;
        char perms[8];
        int name_at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &name_at) < 3)
            continue;
        const char *name = line + name_at;
        if (strncmp(perms, "rw-p", 4) || (name[0] && name[0] != '\n') || end - start < TWO_MIB)
            continue;
        collapsed += collapse_range(pidfd, start, end);
    }
    fclose(f);
    close(pidfd);
    return collapsed;
}
