/* The control socket's file: checking its path, replacing a stale socket nobody listens
 * on, binding and listening with mode 0600 before the path appears, and removing it only
 * while it is still ours. */
#include "ctl/ctl_socket.h"

#include "common/error.h"
#include "common/log.h"
#include "ctl/ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void dir_of(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, len, ".");
    else if (slash == path)
        snprintf(buf, len, "/");
    else
        snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

/* Is somebody accepting connections at the socket `path`? 1 yes, 0 no (stale), <0 error. */
static int probe_live(const char *path, const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return vs_fail(errno, "cannot create a socket to check control socket %s: %s", path,
                       strerror(errno));
    int rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
    int err = errno;
    close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
        return 1; /* accepted, or a live listener with a full backlog */
    if (err == ECONNREFUSED)
        return 0;
    if (err == ENOENT)
        return 0; /* vanished meanwhile */
    return vs_fail(err, "cannot check whether control socket %s is in use: %s; choose another "
                        "--ctl path",
                   path, strerror(err));
}

char *ctl_socket_absolute_path(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return strdup(path);
    char *abs = NULL;
    if (asprintf(&abs, "%s/%s", cwd, path) < 0)
        abs = NULL;
    free(cwd);
    return abs;
}

int ctl_socket_listen(const char *socket_path, int *fd_out, dev_t *dev, ino_t *ino)
{
    *fd_out = -1;
    if (!socket_path || !*socket_path)
        return vs_fail(EINVAL, "control socket path is empty; give a path such as "
                               "--ctl /tmp/vmshift.sock");
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    size_t plen = strlen(socket_path);
    if (plen >= sizeof(addr.sun_path))
        return vs_fail(ENAMETOOLONG,
                       "control socket path %s is too long (%zu bytes, the limit is %zu); use a "
                       "shorter --ctl path such as /tmp/vmshift.sock",
                       socket_path, plen, sizeof(addr.sun_path) - 1);
    memcpy(addr.sun_path, socket_path, plen + 1);

    char dir[PATH_MAX];
    dir_of(socket_path, dir, sizeof(dir));

    struct stat st;
    if (lstat(socket_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return vs_fail(EEXIST, "control socket path %s exists and is not a socket; remove "
                                   "it or choose another --ctl path",
                           socket_path);
        int live = probe_live(socket_path, &addr);
        if (live < 0)
            return live;
        if (live)
            return vs_fail(EADDRINUSE, "control socket %s is in use by another process; "
                                       "choose another --ctl path",
                           socket_path);
        if (unlink(socket_path) < 0 && errno != ENOENT)
            return vs_fail(errno, "cannot remove stale control socket %s: %s; remove it by "
                                  "hand or choose another --ctl path",
                           socket_path, strerror(errno));
        vs_debug("control: replaced stale socket %s", socket_path);
    } else if (errno == ENOTDIR || (errno == ENOENT && access(dir, F_OK) != 0)) {
        return vs_fail(ENOENT, "cannot create control socket %s: directory %s does not exist; "
                               "create it or choose another --ctl path",
                       socket_path, dir);
    } else if (errno != ENOENT) {
        return vs_fail(errno, "cannot use control socket path %s: %s; choose another --ctl "
                              "path",
                       socket_path, strerror(errno));
    }

    /* The socket is made under a temporary name and renamed into place once it listens:
     * a client that waits for the path to appear (scripts, the benchmark, vmshiftd) must
     * never find it refusing connections between bind() and listen(). */
    struct sockaddr_un tmp = { .sun_family = AF_UNIX };
    static atomic_uint seq; /* several servers of one process may open at once */
    int tlen = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s/.vmshift-ctl-%ld-%u.tmp", dir,
                        (long)getpid(), atomic_fetch_add(&seq, 1));
    bool staged = tlen > 0 && (size_t)tlen < sizeof(tmp.sun_path);
    const char *bound = staged ? tmp.sun_path : socket_path;
    if (staged)
        unlink(tmp.sun_path); /* left by an earlier process with our pid, killed here */

    int rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = vs_fail(errno, "cannot create control socket %s: %s", socket_path,
                     strerror(errno));
        goto fail;
    }
    if (bind(fd, staged ? (struct sockaddr *)&tmp : (struct sockaddr *)&addr,
             sizeof(addr)) < 0) {
        int err = errno;
        if (err == EADDRINUSE)
            rc = vs_fail(err, "control socket %s is in use by another process; choose "
                              "another --ctl path",
                         bound);
        else if (err == ENOENT || err == ENOTDIR)
            rc = vs_fail(err, "cannot create control socket %s: directory %s does not exist; "
                              "create it or choose another --ctl path",
                         socket_path, dir);
        else
            rc = vs_fail(err, "cannot create control socket %s: %s; choose another --ctl "
                              "path in a directory you can write to",
                         bound, strerror(err));
        goto fail;
    }
    /* Nobody can connect before listen(), so tightening the mode here leaves no window. */
    if (chmod(bound, 0600) < 0 || stat(bound, &st) < 0) {
        rc = vs_fail(errno, "cannot set permissions of control socket %s: %s", bound,
                     strerror(errno));
        unlink(bound);
        goto fail;
    }
    if (listen(fd, CTL_MAX_CLIENTS) < 0) {
        rc = vs_fail(errno, "cannot listen on control socket %s: %s", socket_path,
                     strerror(errno));
        unlink(bound);
        goto fail;
    }
    if (staged && renameat2(AT_FDCWD, tmp.sun_path, AT_FDCWD, socket_path,
                            RENAME_NOREPLACE) < 0) {
        int err = errno;
        unlink(tmp.sun_path);
        if (err == EEXIST)
            rc = vs_fail(err, "control socket %s is in use by another process; choose "
                              "another --ctl path",
                         socket_path);
        else
            rc = vs_fail(err, "cannot move control socket %s into place as %s: %s; choose "
                              "another --ctl path",
                         tmp.sun_path, socket_path, strerror(err));
        goto fail;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    *fd_out = fd;
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    return rc;
}

void ctl_socket_remove_if_ours(const char *abs_path, dev_t dev, ino_t ino)
{
    struct stat st;
    if (abs_path && ino && stat(abs_path, &st) == 0 && st.st_dev == dev && st.st_ino == ino &&
        S_ISSOCK(st.st_mode))
        unlink(abs_path);
}
