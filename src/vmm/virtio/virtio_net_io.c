/* The I/O thread of one virtio-net NIC: waits with poll() on its backend (when frames may
 * go into the guest) and on an eventfd (a notify, a change of state, the end), moves
 * frames into the guest (vs_virtio_net_rx_pump) and runs its timers (announcement rounds,
 * what the rate limit held back). Everything it does to the device happens under the transport's lock. */
#include "vmm/virtio/virtio_net.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* One turn under the lock: what to wait for next. */
static bool turn(struct vs_virtio_net *n, bool *want_backend, int *timeout_ms)
{
    vs_virtio_mmio_lock(n->transport);
    bool quit = n->quit;
    enum vs_net_rx rx = quit ? VS_NET_RX_WAIT : vs_virtio_net_rx_pump(n);
    int64_t next = quit ? -1 : vs_virtio_net_timers(n, vs_clock_ns());
    vs_virtio_mmio_unlock(n->transport);
    *want_backend = rx == VS_NET_RX_IDLE;
    if (rx == VS_NET_RX_MORE)
        *timeout_ms = 0;
    else if (next >= 0)
        *timeout_ms = (int)((next + 999999) / 1000000);
    else
        *timeout_ms = -1;
    return !quit;
}

static void *io_thread(void *arg)
{
    struct vs_virtio_net *n = arg;
    bool want_backend;
    int timeout_ms;
    while (turn(n, &want_backend, &timeout_ms)) {
        struct pollfd p[2] = { { .fd = n->wake_fd, .events = POLLIN },
                               { .fd = n->fd, .events = POLLIN } };
        int rc = poll(p, want_backend ? 2 : 1, timeout_ms);
        if (rc < 0 && errno != EINTR) {
            vs_warn("%s: its I/O thread stops: poll: %s", n->backend, strerror(errno));
            break;
        }
        if (rc > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(n->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                break;
        }
        if (want_backend && (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))) {
            vs_warn("%s: its backend failed (poll events 0x%x): the NIC receives nothing more",
                    n->backend, p[1].revents);
            break;
        }
    }
    return NULL;
}

int vs_virtio_net_io_start(struct vs_virtio_net *n)
{
    n->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (n->wake_fd < 0)
        return vs_fail(errno, "%s: an eventfd for its I/O thread: %s", n->backend, strerror(errno));
    int err = pthread_create(&n->thread, NULL, io_thread, n);
    if (err)
        return vs_fail(err, "%s: cannot start its I/O thread: %s", n->backend, strerror(err));
    n->thread_started = true;
    char name[16];
    snprintf(name, sizeof(name), "net-%.11s", n->backend);
    pthread_setname_np(n->thread, name);
    return 0;
}

void vs_virtio_net_io_wake(struct vs_virtio_net *n)
{
    uint64_t one = 1;
    if (n->wake_fd >= 0 && write(n->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        vs_debug("%s: waking its I/O thread: %s", n->backend, strerror(errno));
}

void vs_virtio_net_io_stop(struct vs_virtio_net *n)
{
    if (n->thread_started) {
        vs_virtio_mmio_lock(n->transport);
        n->quit = true;
        vs_virtio_mmio_unlock(n->transport);
        vs_virtio_net_io_wake(n);
        pthread_join(n->thread, NULL);
        n->thread_started = false;
    }
    if (n->wake_fd >= 0)
        close(n->wake_fd);
    n->wake_fd = -1;
}
