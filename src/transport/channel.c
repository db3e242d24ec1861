/* Channel helpers (exact reads and writes with peer-naming errors) and the generic
 * channel over a connected stream socket. */
#include "transport/channel.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include "transport/zerocopy.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The transport's own explanation of an EPROTO failure, else strerror. */
static const char *why(const struct vs_channel *ch, int err)
{
    return err == EPROTO && ch->failure[0] ? ch->failure : strerror(err);
}

static int set_rcvtimeo(struct vs_channel *ch, long ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    return setsockopt(ch->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* The timeout set on the socket (for messages), 0 if none or unknown. */
static long channel_timeout_ms(const struct vs_channel *ch, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (ch->fd < 0 || getsockopt(ch->fd, SOL_SOCKET, opt, &tv, &len) < 0)
        return 0;
    return (long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int vs_channel_write_all(struct vs_channel *ch, struct iovec *iov, int iovcnt)
{
    return vs_channel_write_all_flags(ch, iov, iovcnt, 0);
}

/* What write_all says when a send fails after `done` of `total` bytes. */
static int send_failed(struct vs_channel *ch, int err, uint64_t done, uint64_t total)
{
    if (err == EAGAIN || err == EWOULDBLOCK)
        return vs_fail(ETIMEDOUT, "sending to %s timed out after %llu of %llu bytes (no "
                       "progress for %ld ms); is the peer stuck or the network down?",
                       ch->peer, (unsigned long long)done, (unsigned long long)total,
                       channel_timeout_ms(ch, SO_SNDTIMEO));
    return vs_fail(err, "sending to %s failed after %llu bytes (%llu on this channel): %s",
                   ch->peer, (unsigned long long)done, (unsigned long long)ch->bytes_sent,
                   why(ch, err));
}

int vs_channel_write_all_flags(struct vs_channel *ch, struct iovec *iov, int iovcnt,
                               int flags)
{
    uint64_t total = 0, done = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;

    while (iovcnt > 0) {
        /* Skip empty entries so a finished iov never reaches writev. */
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        int n = iovcnt > IOV_MAX ? IOV_MAX : iovcnt;
        ssize_t w = ch->ops->writev(ch, iov, n, n < iovcnt ? flags | VS_CH_MORE : flags);
        if (w < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            return send_failed(ch, err, done, total);
        }
        if (w == 0)
            return vs_fail(EPIPE, "sending to %s failed after %llu bytes: the channel "
                           "accepted no data", ch->peer, (unsigned long long)done);
        __atomic_fetch_add(&ch->bytes_sent, (uint64_t)w, __ATOMIC_RELAXED);
        done += (uint64_t)w;
        size_t left = (size_t)w;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (left > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    while (ch->ops->flush && !(flags & VS_CH_MORE) && ch->ops->flush(ch) < 0)
        if (errno != EINTR)
            return send_failed(ch, errno, done, total);
    return 0;
}

int vs_channel_write(struct vs_channel *ch, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    return vs_channel_write_all(ch, &iov, 1);
}

/* With a deadline, each read waits at most until it (and never longer than the timeout). */
static int arm_deadline(struct vs_channel *ch, size_t done, size_t len)
{
    uint64_t now = mono_ns();
    if (now >= ch->deadline_ns)
        return vs_fail(ETIMEDOUT, "%s did not complete %s in time (got %zu of %zu bytes "
                       "when the time allowed ran out): a silent or trickling peer",
                       ch->peer, ch->deadline_what, done, len);
    long left = (long)((ch->deadline_ns - now + 999999) / 1000000);
    if (ch->timeout_ms > 0 && ch->timeout_ms < left)
        left = ch->timeout_ms;
    set_rcvtimeo(ch, left);
    return 0;
}

int vs_channel_read_exact(struct vs_channel *ch, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        int rc;
        if (ch->deadline_ns && (rc = arm_deadline(ch, done, len)))
            return rc;
        if (__atomic_load_n(&ch->cut, __ATOMIC_SEQ_CST))
            return vs_fail(ECONNRESET, "the connection to %s was cut (fault injected) after "
                           "%zu of %zu bytes", ch->peer, done, len);
        ssize_t r = ch->ops->read(ch, (uint8_t *)buf + done, len - done);
        if (r < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if ((err == EAGAIN || err == EWOULDBLOCK) && ch->deadline_ns &&
                mono_ns() >= ch->deadline_ns)
                continue;           /* the deadline's message, above */
            if (err == EAGAIN || err == EWOULDBLOCK)
                return vs_fail(ETIMEDOUT, "no data from %s for %ld ms (got %zu of %zu "
                               "bytes); is the peer stuck or the network down?", ch->peer,
                               channel_timeout_ms(ch, SO_RCVTIMEO), done, len);
            return vs_fail(err, "receiving from %s failed after %zu of %zu bytes: %s",
                           ch->peer, done, len, why(ch, err));
        }
        if (r == 0)
            return vs_fail(EPIPE, "connection closed by %s after %zu of %zu bytes",
                           ch->peer, done, len);
        if (ch->record_fd > 0 && write(ch->record_fd, (uint8_t *)buf + done, (size_t)r) != r)
            ch->record_fd = -1;   /* a recording is best effort: stop, keep migrating */
        done += (size_t)r;
        __atomic_fetch_add(&ch->bytes_received, (uint64_t)r, __ATOMIC_RELAXED);
    }
    return 0;
}

int vs_channel_set_deadline(struct vs_channel *ch, int ms, const char *what)
{
    if (ms <= 0) {
        ch->deadline_ns = 0;
        return set_rcvtimeo(ch, ch->timeout_ms) < 0 ? -errno : 0;
    }
    ch->deadline_ns = mono_ns() + (uint64_t)ms * 1000000ULL;
    ch->deadline_what = what;
    return 0;
}

void vs_channel_linger_close(struct vs_channel *ch, int ms)
{
    if (!ch)
        return;
    if (ch->fd >= 0) {
        shutdown(ch->fd, SHUT_WR);
        uint64_t until = mono_ns() + (uint64_t)ms * 1000000ULL;
        char sink[4096];
        size_t total = 0;
        for (uint64_t now = mono_ns(); now < until && total < (1u << 20); now = mono_ns()) {
            set_rcvtimeo(ch, (long)((until - now) / 1000000) + 1);
            ssize_t n = recv(ch->fd, sink, sizeof(sink), 0);
            if (n <= 0 && !(n < 0 && errno == EINTR))
                break;
            total += n > 0 ? (size_t)n : 0;
        }
    }
    vs_channel_close(ch);
}

int vs_channel_set_timeout(struct vs_channel *ch, int timeout_ms)
{
    if (timeout_ms < 0)
        return vs_fail(EINVAL, "channel timeout %d ms for %s is negative; use 0 to wait "
                       "forever", timeout_ms, ch->peer);
    struct timeval tv = { .tv_sec = timeout_ms / 1000,
                          .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };
    ch->timeout_ms = timeout_ms;
    if (setsockopt(ch->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(ch->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
        int err = errno;
        return vs_fail(err, "cannot set a %d ms timeout on the channel to %s: %s",
                       timeout_ms, ch->peer, strerror(err));
    }
    return 0;
}

int vs_channel_set_liveness(struct vs_channel *ch, int dead_ms)
{
    int rc = vs_channel_set_timeout(ch, 0);
    if (rc)
        return rc;
    /* Best effort: not every channel is TCP (socketpairs in tests). */
    int one = 1, idle = 1, intvl = 1, cnt = dead_ms / 1000 > 1 ? dead_ms / 1000 : 1;
    unsigned user = (unsigned)dead_ms;
    setsockopt(ch->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(ch->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(ch->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(ch->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(ch->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user));
    return 0;
}

void vs_channel_shutdown_read(struct vs_channel *ch)
{
    if (ch && ch->fd >= 0)
        shutdown(ch->fd, SHUT_RD);
}

void vs_channel_record_from_env(struct vs_channel *ch, const char *role)
{
    static unsigned counter;
    const char *dir = getenv("VMSHIFT_RECORD_DIR");
    if (!dir || !dir[0])
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/%d-%u-%s.bin", dir, (int)getpid(),
             __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), role);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == 0) {   /* 0 means "not recording" in the channel */
        fd = fcntl(0, F_DUPFD_CLOEXEC, 1);
        close(0);
    }
    ch->record_fd = fd;
}

/* Generic operations on a connected stream socket. */

static ssize_t fd_writev(struct vs_channel *ch, const struct iovec *iov, int iovcnt, int flags)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    int f = MSG_NOSIGNAL | ((flags & VS_CH_MORE) ? MSG_MORE : 0);
    if ((flags & VS_CH_ZEROCOPY) && ch->zerocopy)
        return vs_zerocopy_sendmsg(ch, &msg, f);
    return sendmsg(ch->fd, &msg, f);
}

static ssize_t fd_read(struct vs_channel *ch, void *buf, size_t len)
{
    return recv(ch->fd, buf, len, 0);
}

static void fd_shutdown(struct vs_channel *ch)
{
    shutdown(ch->fd, SHUT_RDWR);
}

static void fd_close(struct vs_channel *ch)
{
    if (ch->fd >= 0)
        close(ch->fd);
    if (ch->record_fd > 0)
        close(ch->record_fd);
    free(ch);
}

static const struct vs_channel_ops fd_ops = {
    .name = "socket",
    .writev = fd_writev,
    .read = fd_read,
    .shutdown = fd_shutdown,
    .close = fd_close,
    .can_zerocopy = true,
};

int vs_channel_from_fd(int fd, const char *peer, struct vs_channel **out)
{
    *out = NULL;
    if (fd < 0)
        return vs_fail(EBADF, "cannot make a channel from fd %d: not an open descriptor", fd);
    struct vs_channel *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        close(fd);
        return vs_fail(ENOMEM, "out of memory creating the channel to %s",
                       peer ? peer : "a peer");
    }
    ch->ops = &fd_ops;
    ch->fd = fd;
    if (peer)
        snprintf(ch->peer, sizeof(ch->peer), "%s", peer);
    else
        snprintf(ch->peer, sizeof(ch->peer), "fd %d", fd);
    *out = ch;
    return 0;
}
