/* TCP transport: address parsing, connect with a timeout, listen and accept. */
#include "transport/tcp.h"
#include "common/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TCP_BACKLOG 64   /* room for every stream of a migration (<= 16) and strangers */

struct vs_tcp_listener {
    int fd;
    char addr[80];   /* the bound address, "127.0.0.1:4444" */
    int stop_fd;     /* accept gives up when it is readable (-1: none) */
};

/* "1.2.3.4:5" or "[::1]:5". */
static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
        snprintf(buf, size, "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        port = ntohs(sin6->sin6_port);
        snprintf(buf, size, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, size, "(family %d)", ss->ss_family);
    }
}

int vs_tcp_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!text || !*text)
        return vs_fail(EINVAL, "empty address; give HOST:PORT, e.g. 127.0.0.1:4444");
    char host[256];
    const char *port_text;
    if (text[0] == '[') {
        const char *close_br = strchr(text, ']');
        if (!close_br)
            return vs_fail(EINVAL, "address '%s' has no ']' after the IPv6 address; write "
                           "it as [::1]:4444", text);
        if (close_br[1] != ':')
            return vs_fail(EINVAL, "address '%s' has no port; write it as [ADDR]:PORT", text);
        size_t n = (size_t)(close_br - text - 1);
        if (n == 0 || n >= sizeof(host))
            return vs_fail(EINVAL, "address '%s' has an empty or too long IPv6 address", text);
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port_text = close_br + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon)
            return vs_fail(EINVAL, "address '%s' has no port; write it as HOST:PORT, e.g. "
                           "%s:4444", text, text);
        size_t n = (size_t)(colon - text);
        if (memchr(text, ':', n))
            return vs_fail(EINVAL, "address '%s' looks like an IPv6 address without "
                           "brackets; write it as [ADDR]:PORT", text);
        if (n == 0 || n >= sizeof(host))
            return vs_fail(EINVAL, "address '%s' has an empty or too long host; write it as "
                           "HOST:PORT, e.g. 127.0.0.1:4444", text);
        memcpy(host, text, n);
        host[n] = '\0';
        port_text = colon + 1;
    }

    unsigned long port = 0;
    if (!*port_text)
        return vs_fail(EINVAL, "address '%s' has no port after ':'; write it as HOST:PORT",
                       text);
    for (const char *p = port_text; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return vs_fail(EINVAL, "bad port '%s' in address '%s': give a number 0..65535",
                           port_text, text);
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return vs_fail(EINVAL, "bad port '%s' in address '%s': give a number 0..65535",
                       port_text, text);

    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
        return 0;
    }
    if (text[0] == '[')
        return vs_fail(EINVAL, "'%s' in address '%s' is not an IPv6 address", host, text);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        if (res)
            freeaddrinfo(res);
        return vs_fail(ENOENT, "unknown host '%s' in address '%s': %s; use an IP address "
                       "or a resolvable name", host, text,
                       rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    }
    /* Prefer IPv4 when the name has both (what a migration network usually uses). */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    if (ss->ss_family == AF_INET)
        sin->sin_port = htons((uint16_t)port);
    else
        sin6->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

/* No Nagle. The socket buffers are left to TCP's autotuning (net.ipv4.tcp_rmem/wmem):
 * setting SO_SNDBUF/SO_RCVBUF turns it off and caps them at net.core.*mem_max; a 4 MiB
 * fixed buffer measured 40% slower, with 50% more receiver CPU, than autotuning on a
 * 4 GiB migration between two network namespaces. */
static void tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int make_channel(int fd, const struct sockaddr_storage *peer, const char *role,
                        struct vs_channel **out)
{
    char text[80];
    addr_text(peer, text, sizeof(text));
    int rc = vs_channel_from_fd(fd, text, out); /* a TCP socket is a plain socket channel */
    if (!rc)
        vs_channel_record_from_env(*out, role);
    return rc;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* poll() one fd for events within timeout_ms (<= 0: forever), riding out EINTR, unless
 * stop_fd (>= 0) becomes readable first. Returns 1 when ready, 0 on timeout, -EINTR on
 * stop, -errno on error. */
static int wait_fd_or_stop(int fd, short events, int timeout_ms, int stop_fd)
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int wait = -1;
        if (timeout_ms > 0) {
            uint64_t now = now_ms();
            wait = now >= deadline ? 0 : (int)(deadline - now);
        }
        struct pollfd p[2] = { { .fd = fd, .events = events },
                               { .fd = stop_fd, .events = POLLIN } };
        int n = poll(p, 2, wait);   /* a negative stop_fd is ignored */
        if (n > 0 && p[1].revents)
            return -EINTR;
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static int wait_fd(int fd, short events, int timeout_ms)
{
    return wait_fd_or_stop(fd, events, timeout_ms, -1);
}

int vs_tcp_connect(const char *addr, int timeout_ms, struct vs_channel **out)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = vs_tcp_parse_addr(addr, &ss, &len);
    if (rc < 0)
        return vs_fail_context(rc, "cannot connect");
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int err = errno;
        return vs_fail(err, "cannot connect to %s: socket: %s", addr, strerror(err));
    }
    tune_socket(fd);

    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        err = errno;
        if (err == EINPROGRESS) {
            int ready = wait_fd(fd, POLLOUT, timeout_ms);
            if (ready == 0) {
                close(fd);
                return vs_fail(ETIMEDOUT, "cannot connect to %s within %d ms: no answer; "
                               "check the address and that no firewall drops the traffic",
                               addr, timeout_ms);
            }
            socklen_t elen = sizeof(err);
            if (ready < 0)
                err = -ready;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                err = errno;
        }
    }
    if (err) {
        close(fd);
        if (err == ECONNREFUSED)
            return vs_fail(err, "cannot connect to %s: %s; is `vmshift receive --listen %s` "
                           "running there?", addr, strerror(err), addr);
        return vs_fail(err, "cannot connect to %s: %s", addr, strerror(err));
    }

    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        err = errno;
        close(fd);
        return vs_fail(err, "cannot connect to %s: fcntl: %s", addr, strerror(err));
    }
    return make_channel(fd, &ss, "connect", out);
}

int vs_tcp_listen(const char *addr, struct vs_tcp_listener **out)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = vs_tcp_parse_addr(addr, &ss, &len);
    if (rc < 0)
        return vs_fail_context(rc, "cannot listen");
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int err = errno;
        return vs_fail(err, "cannot listen on %s: socket: %s", addr, strerror(err));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Non-blocking so accept() after poll() cannot hang; buffers set before listen()
     * so accepted sockets inherit them (window scaling). */
    tune_socket(fd);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        int err = errno;
        close(fd);
        if (err == EADDRINUSE)
            return vs_fail(err, "cannot listen on %s: address already in use; is another "
                           "`vmshift receive` running? Pick another port", addr);
        if (err == EADDRNOTAVAIL)
            return vs_fail(err, "cannot listen on %s: no local interface has that address",
                           addr);
        return vs_fail(err, "cannot listen on %s: %s", addr, strerror(err));
    }
    if (listen(fd, TCP_BACKLOG) < 0) {
        int err = errno;
        close(fd);
        return vs_fail(err, "cannot listen on %s: %s", addr, strerror(err));
    }
    struct vs_tcp_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return vs_fail(ENOMEM, "cannot listen on %s: out of memory", addr);
    }
    l->fd = fd;
    l->stop_fd = -1;
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        addr_text(&ss, l->addr, sizeof(l->addr));
    else
        snprintf(l->addr, sizeof(l->addr), "%s", addr);
    *out = l;
    return 0;
}

int vs_tcp_listen_beside(struct vs_channel *ch, struct vs_tcp_listener **out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(ch->fd, (struct sockaddr *)&ss, &len) < 0) {
        int err = errno;
        return vs_fail(err, "cannot read the local address of the connection to %s: %s",
                       ch->peer, strerror(err));
    }
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
    char text[80];
    addr_text(&ss, text, sizeof(text));
    return vs_tcp_listen(text, out);
}

int vs_tcp_listener_port(struct vs_tcp_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0) {
        int err = errno;
        return vs_fail(err, "cannot read the port of listener %s: %s", l->addr,
                       strerror(err));
    }
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int vs_tcp_accept(struct vs_tcp_listener *l, int timeout_ms, struct vs_channel **out)
{
    *out = NULL;
    for (;;) {
        int ready = wait_fd_or_stop(l->fd, POLLIN, timeout_ms, l->stop_fd);
        if (ready == -EINTR)
            return vs_fail(EINTR, "stopped while waiting for a connection on %s", l->addr);
        if (ready == 0)
            return vs_fail(ETIMEDOUT, "no migration arrived on %s within %.1f s; start "
                           "`vmshift migrate` on the source or raise the timeout", l->addr,
                           timeout_ms / 1000.0);
        if (ready < 0)
            return vs_fail(ready, "waiting for a migration on %s failed: %s", l->addr,
                           strerror(-ready));
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            /* The client gave up between poll and accept: wait for another one. */
            if (err == EINTR || err == ECONNABORTED || err == EAGAIN)
                continue;
            return vs_fail(err, "accepting a migration on %s failed: %s", l->addr,
                           strerror(err));
        }
        tune_socket(fd);
        return make_channel(fd, &ss, "accept", out);
    }
}

void vs_tcp_listener_stop_on(struct vs_tcp_listener *l, int stop_fd)
{
    l->stop_fd = stop_fd;
}

void vs_tcp_listener_close(struct vs_tcp_listener *l)
{
    if (!l)
        return;
    close(l->fd);
    free(l);
}
