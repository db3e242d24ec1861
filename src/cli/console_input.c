#include "cli/console_input.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define POLL_MS 100

struct console_input {
    struct vs_serial *serial;
    int fd;
    bool is_tty;
    atomic_bool stop;
    pthread_t thread;
    uint8_t buf[512];
    size_t off, len;     /* read from fd, not yet taken by the UART */
};

bool console_input_wanted(int fd)
{
    struct stat st;
    if (isatty(fd))
        return true;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* A background process reading its terminal would be stopped by SIGTTIN. */
static bool may_read(const struct console_input *ci)
{
    return !ci->is_tty || tcgetpgrp(ci->fd) == getpgrp();
}

/* Wait for input and read it into buf. Returns false when input has ended. */
static bool fill(struct console_input *ci)
{
    struct pollfd p = { .fd = ci->fd, .events = POLLIN };
    if (!may_read(ci)) {
        poll(NULL, 0, POLL_MS);
        return true;
    }
    if (poll(&p, 1, POLL_MS) <= 0 || !may_read(ci))
        return true;
    ssize_t n = read(ci->fd, ci->buf, sizeof(ci->buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n < 0) {
        vs_warn("console input: reading stdin: %s; the guest gets no more input", strerror(errno));
        return false;
    }
    if (n == 0 && (!ci->is_tty || (p.revents & POLLHUP)))
        return false;   /* the pipe's writer closed it, or the terminal hung up */
    ci->off = 0;
    ci->len = (size_t)n;   /* 0 on a terminal: ^D at the start of a line, keep reading */
    return true;
}

static void *forward(void *arg)
{
    struct console_input *ci = arg;
    while (!atomic_load(&ci->stop)) {
        if (ci->len == 0) {
            if (!fill(ci))
                break;
            continue;
        }
        size_t took = vs_serial_offer(ci->serial, ci->buf + ci->off, ci->len);
        ci->off += took;
        ci->len -= took;
        if (ci->len)
            vs_serial_wait_rx_room(ci->serial, POLL_MS);
    }
    return NULL;
}

int console_input_start(struct console_input **out, struct vs_serial *s, int fd)
{
    *out = NULL;
    if (!vs_serial_writes_stdout(s) || !console_input_wanted(fd))
        return 0;
    struct console_input *ci = calloc(1, sizeof(*ci));
    if (!ci)
        return vs_fail(ENOMEM, "console input: out of memory");
    ci->serial = s;
    ci->fd = fd;
    ci->is_tty = isatty(fd);
    int err = pthread_create(&ci->thread, NULL, forward, ci);
    if (err) {
        free(ci);
        return vs_fail(err, "console input: cannot start the stdin thread: %s", strerror(err));
    }
    *out = ci;
    return 0;
}

void console_input_stop(struct console_input *ci)
{
    if (!ci)
        return;
    atomic_store(&ci->stop, true);
    pthread_join(ci->thread, NULL);
    free(ci);
}
