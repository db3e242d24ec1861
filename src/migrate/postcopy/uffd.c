#include "migrate/postcopy/uffd.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_fd(uint64_t *features)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    if (features)
        *features = api.features;
    return fd;
}

bool vs_uffd_available(void)
{
    int fd = open_fd(NULL);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

int vs_uffd_open(struct vs_uffd *u, void *base, uint64_t size)
{
    memset(u, 0, sizeof(*u));
    u->fd = -1;
    int fd = open_fd(NULL);
    if (fd < 0)
        return vs_fail(-fd, "userfaultfd for post-copy is not available: %s (needs Linux 4.11+ "
                       "and root or vm.unprivileged_userfaultfd=1)", strerror(-fd));
    struct uffdio_register reg = {
        .range = { .start = (uint64_t)(uintptr_t)base, .len = size },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        int err = errno;
        close(fd);
        return vs_fail(err, "cannot register %llu bytes of guest RAM with userfaultfd: %s",
                       (unsigned long long)size, strerror(err));
    }
    if (!(reg.ioctls & (1ULL << _UFFDIO_COPY)) || !(reg.ioctls & (1ULL << _UFFDIO_ZEROPAGE))) {
        close(fd);
        return vs_fail(EOPNOTSUPP, "userfaultfd on guest RAM lacks UFFDIO_COPY or "
                       "UFFDIO_ZEROPAGE on this kernel");
    }
    u->fd = fd;
    u->base = base;
    u->size = size;
    return 0;
}

int vs_uffd_read_faults(struct vs_uffd *u, int wake_fd, int timeout_ms, uint64_t *off,
                        int max)
{
    struct pollfd p[2] = { { .fd = u->fd, .events = POLLIN }, { .fd = wake_fd, .events = POLLIN } };
    int r = poll(p, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : vs_fail(errno, "poll on userfaultfd: %s", strerror(errno));
    if (r == 0 || !(p[0].revents & POLLIN))
        return 0;
    struct uffd_msg msg[16];
    int want = max < 16 ? max : 16;
    ssize_t n = read(u->fd, msg, sizeof(msg[0]) * (size_t)want);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0
               : vs_fail(errno, "reading userfaultfd: %s", strerror(errno));
    int got = 0;
    for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
        if (msg[i].event != UFFD_EVENT_PAGEFAULT)
            continue;
        uint64_t a = msg[i].arg.pagefault.address - (uint64_t)(uintptr_t)u->base;
        off[got++] = a & ~4095ULL;
    }
    return got;
}

int vs_uffd_copy(struct vs_uffd *u, uint64_t off, const void *src, uint64_t len)
{
    for (;;) {
        struct uffdio_copy c = { .dst = (uint64_t)(uintptr_t)(u->base + off),
                                 .src = (uint64_t)(uintptr_t)src, .len = len };
        if (ioctl(u->fd, UFFDIO_COPY, &c) == 0)
            return 0;
        int err = errno;
        if (err == EAGAIN && c.copy > 0) {   /* partial: go on with the rest */
            off += (uint64_t)c.copy;
            src = (const uint8_t *)src + c.copy;
            len -= (uint64_t)c.copy;
            continue;
        }
        if (err == EAGAIN)
            continue;
        if (err == EEXIST)
            return -EEXIST;
        return vs_fail(err, "UFFDIO_COPY of %llu bytes at RAM offset 0x%llx: %s",
                       (unsigned long long)len, (unsigned long long)off, strerror(err));
    }
}

int vs_uffd_zero(struct vs_uffd *u, uint64_t off, uint64_t len)
{
    for (;;) {
        struct uffdio_zeropage z = { .range = { .start = (uint64_t)(uintptr_t)(u->base + off),
                                                .len = len } };
        if (ioctl(u->fd, UFFDIO_ZEROPAGE, &z) == 0)
            return 0;
        int err = errno;
        if (err == EAGAIN)
            continue;
        if (err == EEXIST)
            return -EEXIST;
        return vs_fail(err, "UFFDIO_ZEROPAGE of %llu bytes at RAM offset 0x%llx: %s",
                       (unsigned long long)len, (unsigned long long)off, strerror(err));
    }
}

int vs_uffd_wake(struct vs_uffd *u, uint64_t off, uint64_t len)
{
    struct uffdio_range r = { .start = (uint64_t)(uintptr_t)(u->base + off), .len = len };
    if (ioctl(u->fd, UFFDIO_WAKE, &r) < 0)
        return vs_fail(errno, "UFFDIO_WAKE at RAM offset 0x%llx: %s", (unsigned long long)off,
                       strerror(errno));
    return 0;
}

void vs_uffd_close(struct vs_uffd *u)
{
    if (u->fd < 0)
        return;
    struct uffdio_range r = { .start = (uint64_t)(uintptr_t)u->base, .len = u->size };
    ioctl(u->fd, UFFDIO_UNREGISTER, &r);
    close(u->fd);
    u->fd = -1;
}
