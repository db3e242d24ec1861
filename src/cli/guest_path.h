/* Where `vmshift run` finds the workload guest (vmshift-guest.elf) when --kernel is not
 * given: the VMSHIFT_GUEST environment variable; else the install layout next to the
 * running binary (PREFIX/bin/vmshift -> PREFIX/lib/vmshift/vmshift-guest.elf); else the
 * guest in the build tree vmshift was built in (so build/vmshift works from a checkout). */
#ifndef VS_GUEST_PATH_H
#define VS_GUEST_PATH_H

#include <stddef.h>

#define VS_GUEST_FILE "vmshift-guest.elf"

/* The places looked at, in order; any may be NULL (not set / not known). */
struct guest_search {
    const char *env;        /* VMSHIFT_GUEST's value */
    const char *self_exe;   /* the running binary, e.g. /usr/bin/vmshift */
    const char *build_path; /* the guest in the build tree */
};

/* Fill the search from this process: getenv, /proc/self/exe (into self_buf) and the build
 * tree path compiled in. */
void guest_search_from_process(struct guest_search *s, char *self_buf, size_t self_len);

/* The first readable guest into out. A set but unreadable VMSHIFT_GUEST is an error (it is
 * not skipped); when nothing is found the error names every place looked at and what to do. */
int guest_path_find(const struct guest_search *s, char *out, size_t len);

#endif
