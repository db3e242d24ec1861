#include "cli/guest_path.h"
#include "common/error.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The guest's install directory relative to the binaries' (CMake: VS_GUEST_FROM_BIN). */
#ifndef VS_GUEST_FROM_BIN
#define VS_GUEST_FROM_BIN "../lib/vmshift"
#endif

void guest_search_from_process(struct guest_search *s, char *self_buf, size_t self_len)
{
    memset(s, 0, sizeof(*s));
    const char *env = getenv("VMSHIFT_GUEST");
    s->env = env && env[0] ? env : NULL;
    ssize_t n = self_len > 1 ? readlink("/proc/self/exe", self_buf, self_len - 1) : -1;
    if (n > 0) {
        self_buf[n] = '\0';
        s->self_exe = self_buf;
    }
#ifdef VS_GUEST_BUILD_PATH
    s->build_path = VS_GUEST_BUILD_PATH;
#endif
}

static int copy_out(char *out, size_t len, const char *path)
{
    if (strlen(path) >= len)
        return vs_fail(ENAMETOOLONG, "the workload guest's path %.200s is too long", path);
    snprintf(out, len, "%s", path);
    return 0;
}

/* The guest installed next to self_exe: DIR(self_exe)/VS_GUEST_FROM_BIN/vmshift-guest.elf. */
static int install_candidate(const char *self_exe, char *out, size_t len)
{
    const char *slash = strrchr(self_exe, '/');
    if (!slash)
        return -1;
    int n = snprintf(out, len, "%.*s/%s/%s", (int)(slash - self_exe), self_exe,
                     VS_GUEST_FROM_BIN, VS_GUEST_FILE);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* "PATH (why not)" for the error message. */
static void note_missing(char *notes, size_t len, const char *path)
{
    size_t used = strlen(notes);
    if (used < len)
        snprintf(notes + used, len - used, ", %.160s (%s)", path, strerror(errno));
}

int guest_path_find(const struct guest_search *s, char *out, size_t len)
{
    if (s->env) {
        if (access(s->env, R_OK) == 0)
            return copy_out(out, len, s->env);
        return vs_fail(errno, "VMSHIFT_GUEST=%.200s: %s; point it at the workload guest (%s) "
                       "or unset it", s->env, strerror(errno), VS_GUEST_FILE);
    }
    char notes[384] = "VMSHIFT_GUEST (not set)";
    char installed[PATH_MAX];
    if (s->self_exe && install_candidate(s->self_exe, installed, sizeof(installed)) == 0) {
        char clean[PATH_MAX];
        if (access(installed, R_OK) == 0)
            return copy_out(out, len, realpath(installed, clean) ? clean : installed);
        note_missing(notes, sizeof(notes), installed);
    }
    if (s->build_path) {
        if (access(s->build_path, R_OK) == 0)
            return copy_out(out, len, s->build_path);
        note_missing(notes, sizeof(notes), s->build_path);
    }
    return vs_fail(ENOENT, "the workload guest %s was not found; looked at %s. Give --kernel "
                   "ELF, set VMSHIFT_GUEST=PATH, or install vmshift (cmake --install BUILD "
                   "puts it in PREFIX/lib/vmshift)", VS_GUEST_FILE, notes);
}
