#include "transport/zerocopy.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

int vs_channel_enable_zerocopy(struct vs_channel *ch)
{
    static bool said;
    if (!ch->ops->can_zerocopy) {
        if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
            vs_info("--zerocopy does nothing on %s channels: the data is copied as it is "
                    "encrypted", ch->ops->name);
        return 0;
    }
    int one = 1;
    if (setsockopt(ch->fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) {
        int err = errno;
        return vs_fail(err, "cannot enable MSG_ZEROCOPY on the channel to %s: %s; run "
                       "without --zerocopy", ch->peer, strerror(err));
    }
    ch->zerocopy = true;
    return 0;
}

/* Read every completion notification queued now; returns how many sends completed. */
static int reap(struct vs_channel *ch)
{
    int reaped = 0;
    for (;;) {
        char control[128];
        struct msghdr msg = { .msg_control = control, .msg_controllen = sizeof(control) };
        if (recvmsg(ch->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
            return reaped;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
                continue;
            struct sock_extended_err serr;
            memcpy(&serr, CMSG_DATA(cm), sizeof(serr));
            if (serr.ee_origin != SO_EE_ORIGIN_ZEROCOPY || serr.ee_errno != 0)
                continue;
            uint32_t n = serr.ee_data - serr.ee_info + 1;  /* sends [ee_info, ee_data] */
            ch->zc_done += n;
            if (serr.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
                ch->zc_copied += n;
            reaped += (int)n;
        }
    }
}

/* Wait up to timeout_ms for the error queue to have something. */
static void wait_errqueue(struct vs_channel *ch, int timeout_ms)
{
    struct pollfd p = { .fd = ch->fd, .events = 0 };   /* POLLERR is always reported */
    poll(&p, 1, timeout_ms);
}

ssize_t vs_zerocopy_sendmsg(struct vs_channel *ch, struct msghdr *msg, int flags)
{
    if (ch->zc_sends - ch->zc_done > 64)
        reap(ch);
    for (int tries = 0;; tries++) {
        ssize_t n = sendmsg(ch->fd, msg, flags | MSG_ZEROCOPY);
        if (n > 0) {
            ch->zc_sends++;
            return n;
        }
        if (n < 0 && errno == ENOBUFS && tries < 100) {
            /* Out of optmem for notifications: let completions arrive. */
            if (!reap(ch))
                wait_errqueue(ch, 10);
            continue;
        }
        return n;
    }
}

int vs_channel_zerocopy_drain(struct vs_channel *ch, int timeout_ms)
{
    if (!ch->zerocopy)
        return 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        reap(ch);
        if (ch->zc_done >= ch->zc_sends)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= timeout_ms)
            return vs_fail(ETIMEDOUT, "the kernel has not finished %llu zero-copy sends to "
                           "%s after %d ms", (unsigned long long)(ch->zc_sends - ch->zc_done),
                           ch->peer, timeout_ms);
        wait_errqueue(ch, 10);
    }
}
