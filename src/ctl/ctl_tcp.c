#include "ctl/ctl_tcp.h"
#include "ctl/ctl_client.h"
#include "common/clock.h"
#include "common/error.h"
#include "transport/security.h"
#include "transport/tcp.h"
#include "transport/tls.h"
#include "transport/tls_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 64

bool ctl_is_tcp_address(const char *where)
{
    if (!where || !*where || strchr(where, '/'))
        return false;
    const char *colon = strrchr(where, ':');
    if (!colon || colon == where || !colon[1])
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(buf, len, "%s:%d", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(buf, len, "[%s]:%d", ip, port);
    } else {
        snprintf(buf, len, "(unknown address)");
    }
}

int ctl_tcp_listen(const char *addr, int *fd, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = vs_tcp_parse_addr(addr, &ss, &len);
    if (rc < 0)
        return vs_fail_context(rc, "--listen");
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return vs_fail(errno, "cannot listen on %s: socket: %s", addr, strerror(errno));
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&ss, len) < 0 || listen(s, LISTEN_BACKLOG) < 0) {
        int err = errno;
        close(s);
        if (err == EADDRINUSE)
            return vs_fail(err, "cannot listen on %s: %s; another vmshiftd or program serves "
                           "there: stop it or choose another --listen", addr, strerror(err));
        if (err == EADDRNOTAVAIL)
            return vs_fail(err, "cannot listen on %s: %s: it is not an address of this host "
                           "(see `ip addr`); give one of its addresses, or 0.0.0.0:PORT for "
                           "all", addr, strerror(err));
        return vs_fail(err, "cannot listen on %s: %s", addr, strerror(err));
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    *port = 0;
    if (getsockname(s, (struct sockaddr *)&bound, &blen) == 0)
        *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *fd = s;
    return 0;
}

/* A request and its reply are small: no waiting to fill a segment. */
static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void ctl_tcp_accepted(int fd, char *peer, size_t len)
{
    set_nodelay(fd);
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &slen) == 0)
        addr_text(&ss, peer, len);
    else
        snprintf(peer, len, "(a TCP client)");
}

static int remaining_ms(uint64_t deadline_ns)
{
    if (!deadline_ns)
        return -1;
    uint64_t now = vs_clock_ns();
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

/* 1 ready, 0 deadline passed, -errno */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, remaining_ms(deadline_ns));
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static int connect_within(const char *addr, uint64_t deadline_ns, int *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = vs_tcp_parse_addr(addr, &ss, &len);
    if (rc < 0)
        return vs_fail_context(rc, "cannot reach the host agent");
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return vs_fail(errno, "cannot connect to %s: socket: %s", addr, strerror(errno));
    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        err = errno;
        if (err == EINPROGRESS) {
            int ready = wait_fd(fd, POLLOUT, deadline_ns);
            socklen_t elen = sizeof(err);
            if (ready == 0)
                err = ETIMEDOUT;
            else if (ready < 0)
                err = -ready;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                err = errno;
        }
    }
    if (err) {
        close(fd);
        if (err == ECONNREFUSED)
            return vs_fail(err, "cannot connect to %s: %s; is vmshiftd running there with "
                           "--listen %s?", addr, strerror(err), addr);
        if (err == ETIMEDOUT)
            return vs_fail(err, "cannot connect to %s: no answer in time; check the address "
                           "and that no firewall drops the traffic", addr);
        return vs_fail(err, "cannot connect to %s: %s", addr, strerror(err));
    }
    set_nodelay(fd);
    *out = fd;
    return 0;
}

static int handshake(const char *addr, struct vs_tls_stream *s, int fd, uint64_t deadline_ns)
{
    for (;;) {
        int rc = vs_tls_stream_handshake(s);
        if (rc != -EAGAIN)
            return rc;
        int ready = wait_fd(fd, vs_tls_stream_handshake_events(s), deadline_ns);
        if (ready == 0)
            return vs_fail(ETIMEDOUT, "TLS: the host agent %s did not complete the TLS "
                           "handshake in time; is it a vmshiftd --listen (with TLS)?", addr);
        if (ready < 0)
            return vs_fail(ready, "TLS: waiting for %s failed: %s", addr, strerror(-ready));
    }
}

int ctl_tcp_connect(const char *addr, const struct vs_tls *tls, uint64_t deadline_ns,
                    int *fd, struct vs_tls_stream **stream)
{
    *fd = -1;
    *stream = NULL;
    int s = -1, rc = connect_within(addr, deadline_ns, &s);
    if (rc)
        return rc;
    if (tls) {
        struct vs_tls_stream *t = NULL;
        rc = vs_tls_stream_new(tls, s, addr, &t);
        if (!rc)
            rc = handshake(addr, t, s, deadline_ns);
        if (rc) {
            vs_tls_stream_free(t);
            close(s);
            return rc;
        }
        *stream = t;
    }
    *fd = s;
    return 0;
}

int ctl_remote_init(struct ctl_remote *r, struct vs_security_opts *o, const char *what)
{
    r->tls = NULL;
    r->insecure = false;
    struct vs_tls *t = NULL;
    int rc = vs_security_finish_for(o, true, what);
    if (!rc)
        rc = vs_tls_new_for(o, VS_TLS_SOURCE, VS_TLS_FOR_CONTROL, &t);
    if (rc)
        return rc;
    r->tls = t;
    r->insecure = o->mode == VS_SEC_INSECURE;
    return 0;
}

void ctl_remote_free(struct ctl_remote *r)
{
    vs_tls_free(r->tls);
    r->tls = NULL;
}
