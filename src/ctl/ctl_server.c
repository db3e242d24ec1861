#include "ctl/ctl_server.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_conn.h"
#include "ctl/ctl_socket.h"
#include "ctl/ctl_tcp.h"
#include "transport/tls_stream.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define IN_CAP (CTL_MAX_LINE + 1)           /* a full request plus a delimiter */
#define OUT_SOFT_LIMIT (256 * 1024)         /* stop serving a client's requests above this */
#define OUT_KEEP_CAP (64 * 1024)            /* free larger output buffers once drained */
#define WRITE_STALL_NS (10ull * 1000000000ull) /* drop clients that stop reading replies */
#define MAX_ACCEPTS_PER_POLL 16
#define ACCEPT_BACKOFF_NS (100ull * 1000000ull) /* pause accepting when out of fds */
#define MAX_READ_ROUNDS 16
#define CTL_MAX_LISTENERS 2                 /* a unix socket and a TCP address */
#define CTL_MAX_HANDSHAKES 16               /* TLS clients not authenticated yet */
#define HANDSHAKE_NS (10ull * 1000000000ull) /* a TLS client must authenticate within this */

struct ctl_listener {
    int fd;
    bool tcp;
    const struct vs_tls *tls;   /* TCP: secure every connection with this (NULL: plain) */
    char *name;                 /* the socket path as given, or HOST:PORT */
    char *abs_path;             /* unix: absolute, for unlink at close */
    dev_t dev;
    ino_t ino;
    int port;                   /* tcp: the port it took */
    uint64_t accept_paused_until; /* after EMFILE & co, so poll() does not spin */
};

struct ctl_server {
    struct ctl_listener listeners[CTL_MAX_LISTENERS];
    int nlisteners;
    const struct ctl_command *table;
    void *ctx;
    struct ctl_conn *conns[CTL_MAX_CLIENTS];
    int nconns;
    struct pollfd pfds[CTL_MAX_CLIENTS + CTL_MAX_LISTENERS];
};

/* ---- the bytes of a connection: a plain socket, or a TLS session over one -------- */

static ssize_t conn_recv(struct ctl_conn *c, void *buf, size_t len)
{
    if (c->tls)
        return vs_tls_stream_read(c->tls, buf, len);
    return recv(c->fd, buf, len, MSG_DONTWAIT);
}

static ssize_t conn_send(struct ctl_conn *c, const void *buf, size_t len)
{
    if (c->tls)
        return vs_tls_stream_write(c->tls, buf, len);
    return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void note_tls_failure(struct ctl_conn *c)
{
    if (c->tls && errno == EPROTO)
        vs_warn("control: dropping the client %s on %s: %s", c->peer, c->where,
                vs_tls_stream_failure(c->tls));
}

/* ---- output ---------------------------------------------------------------------- */

static size_t out_pending(const struct ctl_conn *c)
{
    return c->out_len - c->out_off;
}

static int append_out(struct ctl_conn *c, const char *data, size_t len)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + len > c->out_cap) {
        if (c->out_off > 0) { /* compact before growing */
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + len > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < c->out_len + len)
                cap *= 2;
            char *p = realloc(c->out, cap);
            if (!p)
                return -ENOMEM;
            c->out = p;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

void ctl_conn_queue(struct ctl_conn *c, struct json_object *msg)
{
    const char *line = ctl_json_line(msg);
    size_t len = line ? strlen(line) : 0;
    char buf[256];
    if (!line || len > CTL_MAX_REPLY) {
        snprintf(buf, sizeof(buf),
                 "{\"error\":{\"class\":\"GenericError\",\"desc\":\"the reply is too "
                 "large to send (%zu bytes, the limit is %d); ask for less data\"}}",
                 len, CTL_MAX_REPLY);
        line = buf;
        len = strlen(buf);
    }
    if (append_out(c, line, len) || append_out(c, "\r\n", 2)) {
        vs_warn("control: out of memory queueing a reply; dropping the client");
        c->dead = true;
    }
}

static void flush_out(struct ctl_conn *c)
{
    bool progress = false;
    while (!c->dead && out_pending(c) > 0) {
        ssize_t n = conn_send(c, c->out + c->out_off, out_pending(c));
        if (n > 0) {
            c->out_off += (size_t)n;
            progress = true;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            /* EPIPE/ECONNRESET: the peer is gone, its replies are undeliverable. */
            note_tls_failure(c);
            c->dead = true;
        }
    }
    if (out_pending(c) == 0) {
        c->out_off = c->out_len = 0;
        c->stall_since = 0;
        if (c->out_cap > OUT_KEEP_CAP) {
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        }
    } else if (progress || c->stall_since == 0) {
        c->stall_since = vs_clock_ns();
    }
}

/* ---- requests -------------------------------------------------------------------- */

/* Serve complete requests from the input buffer while the client keeps up with replies. */
static void process_input(struct ctl_server *s, struct ctl_conn *c)
{
    while (!c->dead && !c->closing && out_pending(c) < OUT_SOFT_LIMIT) {
        bool need_more;
        struct json_object *v = ctl_conn_next_value(c, &need_more);
        if (v)
            ctl_qmp_handle(s->table, s->ctx, c, v);
        if (need_more) {
            if (c->eof)
                c->closing = true;
            break;
        }
    }
    if (c->in_len == 0) {
        c->in_start = 0;
    } else if (c->in_start > 0 && c->in_start + c->in_len == IN_CAP) {
        /* Make room for the rest of a partial request. */
        memmove(c->in, c->in + c->in_start, c->in_len);
        c->in_start = 0;
    }
}

static bool wants_input(const struct ctl_conn *c)
{
    return !c->dead && !c->closing && !c->eof && out_pending(c) < OUT_SOFT_LIMIT &&
           c->in_start + c->in_len < IN_CAP;
}

static void read_and_process(struct ctl_server *s, struct ctl_conn *c)
{
    for (int round = 0; round < MAX_READ_ROUNDS && wants_input(c); round++) {
        size_t room = IN_CAP - (c->in_start + c->in_len);
        ssize_t n = conn_recv(c, c->in + c->in_start + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
        } else if (n == 0) {
            c->eof = true;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            note_tls_failure(c);
            c->dead = true;
            break;
        }
        process_input(s, c);
        flush_out(c);
    }
}

/* ---- connections ----------------------------------------------------------------- */

static void conn_free(struct ctl_conn *c)
{
    vs_tls_stream_free(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void refuse(int fd, const char *msg)
{
    char line[300];
    int n = snprintf(line, sizeof(line),
                     "{\"error\":{\"class\":\"GenericError\",\"desc\":\"%s\"}}\r\n", msg);
    if (n > 0 && (size_t)n < sizeof(line) &&
        send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        vs_debug("control: could not tell a refused client why: %s", strerror(errno));
    close(fd);
}

/* A client a listener turns away: told why in plain text, unless it speaks TLS. */
static void turn_away(const struct ctl_listener *l, int fd, const char *msg)
{
    if (l->tls)
        close(fd);
    else
        refuse(fd, msg);
}

static int handshakes_under_way(const struct ctl_server *s)
{
    int n = 0;
    for (int i = 0; i < s->nconns; i++)
        n += s->conns[i]->handshaking;
    return n;
}

/* A new client of listener l: greeted at once, or once it has authenticated (TLS). */
static void add_client(struct ctl_server *s, struct ctl_listener *l, int fd)
{
    char peer[80] = "a local client";
    if (l->tcp)
        ctl_tcp_accepted(fd, peer, sizeof(peer));
    if (s->nconns >= CTL_MAX_CLIENTS) {
        vs_warn("control: refusing %s on %s: %d clients already connected", peer, l->name,
                CTL_MAX_CLIENTS);
        turn_away(l, fd, "too many control connections (limit 64); close idle connections "
                         "and retry");
        return;
    }
    if (l->tls && handshakes_under_way(s) >= CTL_MAX_HANDSHAKES) {
        vs_warn("control: refusing %s on %s: %d clients are still authenticating", peer,
                l->name, CTL_MAX_HANDSHAKES);
        close(fd);
        return;
    }
    struct ctl_conn *c = calloc(1, sizeof(*c));
    char *in = malloc(IN_CAP);
    if (!c || !in) {
        free(c);
        free(in);
        turn_away(l, fd, "the VM is out of memory; retry later");
        return;
    }
    c->fd = fd;
    c->in = in;
    c->where = l->name;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    if (l->tls && vs_tls_stream_new(l->tls, fd, peer, &c->tls)) {
        vs_warn("control: refusing %s on %s: %s", peer, l->name, vs_last_error());
        conn_free(c);
        return;
    }
    c->handshaking = l->tls != NULL;
    c->handshake_deadline = vs_clock_ns() + HANDSHAKE_NS;
    s->conns[s->nconns++] = c;
    if (!c->handshaking) {
        ctl_qmp_greet(c);
        flush_out(c);
    }
    vs_debug("control: %s connected on %s (%d open)", peer, l->name, s->nconns);
}

static void accept_clients(struct ctl_server *s, struct ctl_listener *l)
{
    for (int i = 0; i < MAX_ACCEPTS_PER_POLL; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                vs_warn("control: cannot accept a connection on %s: %s", l->name,
                        strerror(errno));
                l->accept_paused_until = vs_clock_ns() + ACCEPT_BACKOFF_NS;
            }
            return;
        }
        add_client(s, l, fd);
    }
}

/* A TLS client authenticates before it is greeted; one that fails a check, or takes too
 * long, is dropped and the reason logged. */
static void advance_handshake(struct ctl_conn *c)
{
    int rc = vs_tls_stream_handshake(c->tls);
    if (rc == -EAGAIN) {
        if (vs_clock_ns() > c->handshake_deadline) {
            vs_warn("control: refused %s on %s: it did not complete the TLS handshake within "
                    "%llu s", c->peer, c->where, HANDSHAKE_NS / 1000000000ull);
            c->dead = true;
        }
        return;
    }
    if (rc) {
        vs_warn("control: refused %s on %s: %s", c->peer, c->where, vs_last_error());
        c->dead = true;
        return;
    }
    c->handshaking = false;
    vs_debug("control: %s authenticated on %s", c->peer, c->where);
    ctl_qmp_greet(c);
    flush_out(c);
}

static short conn_events(const struct ctl_conn *c)
{
    if (c->handshaking)
        return vs_tls_stream_handshake_events(c->tls);
    short ev = 0;
    if (wants_input(c))
        ev |= c->tls ? vs_tls_stream_read_events(c->tls) : POLLIN;
    if (out_pending(c) > 0)
        ev |= c->tls ? vs_tls_stream_write_events(c->tls) : POLLOUT;
    return ev;
}

/* Input already inside a TLS session: the socket may stay silent about it. */
static bool input_waiting(const struct ctl_conn *c)
{
    return c->tls && !c->handshaking && wants_input(c) && vs_tls_stream_pending(c->tls);
}

static int cap_timeout(int timeout_ms, uint64_t until_ns)
{
    uint64_t now = vs_clock_ns();
    int ms = until_ns > now ? (int)((until_ns - now) / 1000000) + 1 : 0;
    return timeout_ms < 0 || timeout_ms > ms ? ms : timeout_ms;
}

static void serve_conn(struct ctl_server *s, struct ctl_conn *c, short re, bool waiting)
{
    if (re & POLLNVAL) {
        c->dead = true;
        return;
    }
    if (c->handshaking) {
        advance_handshake(c);
        return;
    }
    if (re & POLLERR)
        c->dead = true;
    if ((re & POLLOUT) || (c->tls && re))
        flush_out(c);
    if ((re & (POLLIN | POLLHUP)) || (c->tls && re) || waiting)
        read_and_process(s, c);
    if ((re & POLLHUP) && !wants_input(c) && out_pending(c) == 0 && !c->eof)
        c->dead = true; /* hung up while we were not reading: nobody to answer */
    /* Output may have drained: serve lines that were waiting for it. */
    process_input(s, c);
    flush_out(c);
    if (c->closing && out_pending(c) == 0)
        c->dead = true;
    uint64_t now = vs_clock_ns();
    if (!c->dead && out_pending(c) > 0 && c->stall_since && now > c->stall_since &&
        now - c->stall_since > WRITE_STALL_NS) {
        vs_warn("control: dropping %s on %s, which has not read its replies for %llu s",
                c->peer, c->where, (unsigned long long)(WRITE_STALL_NS / 1000000000ull));
        c->dead = true;
    }
}

int ctl_server_poll(struct ctl_server *s, int timeout_ms)
{
    int n = s->nconns, nl = s->nlisteners;
    bool waiting[CTL_MAX_CLIENTS];
    for (int i = 0; i < nl; i++) {
        struct ctl_listener *l = &s->listeners[i];
        bool accepting = vs_clock_ns() >= l->accept_paused_until;
        if (!accepting)
            timeout_ms = cap_timeout(timeout_ms, l->accept_paused_until);
        s->pfds[i] = (struct pollfd){ .fd = l->fd, .events = accepting ? POLLIN : 0 };
    }
    for (int i = 0; i < n; i++) {
        struct ctl_conn *c = s->conns[i];
        s->pfds[nl + i] = (struct pollfd){ .fd = c->fd, .events = conn_events(c) };
        waiting[i] = input_waiting(c);
        if (waiting[i])
            timeout_ms = 0;
        if (c->handshaking)
            timeout_ms = cap_timeout(timeout_ms, c->handshake_deadline);
    }
    int rc = poll(s->pfds, (nfds_t)(nl + n), timeout_ms);
    if (rc < 0) {
        if (errno == EINTR)
            return 0;
        return vs_fail(errno, "cannot wait on control socket %s: %s",
                       nl ? s->listeners[0].name : "(none)", strerror(errno));
    }
    for (int i = 0; i < n; i++)
        serve_conn(s, s->conns[i], s->pfds[nl + i].revents, waiting[i]);

    /* Drop dead connections, keeping the order of the rest. */
    int k = 0;
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i]->dead) {
            vs_debug("control: %s disconnected from %s", s->conns[i]->peer,
                     s->conns[i]->where);
            conn_free(s->conns[i]);
        } else {
            s->conns[k++] = s->conns[i];
        }
    }
    s->nconns = k;

    for (int i = 0; i < nl; i++)
        if (s->pfds[i].revents & POLLIN)
            accept_clients(s, &s->listeners[i]);
    return 0;
}

/* ---- open/close ------------------------------------------------------------------ */

int ctl_server_create(struct ctl_server **out, const struct ctl_command *table, void *ctx)
{
    *out = NULL;
    if (!table)
        return vs_fail(EINVAL, "control server: no command table given");
    struct ctl_server *s = calloc(1, sizeof(*s));
    if (!s)
        return vs_fail(ENOMEM, "out of memory creating a control server");
    s->table = table;
    s->ctx = ctx;
    *out = s;
    return 0;
}

static struct ctl_listener *new_listener(struct ctl_server *s, const char *name)
{
    if (s->nlisteners >= CTL_MAX_LISTENERS) {
        vs_fail(E2BIG, "control server: more than %d listeners (%s)", CTL_MAX_LISTENERS, name);
        return NULL;
    }
    struct ctl_listener *l = &s->listeners[s->nlisteners];
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    l->name = strdup(name);
    if (!l->name) {
        vs_fail(ENOMEM, "out of memory creating control socket %s", name);
        return NULL;
    }
    return l;
}

int ctl_server_listen_unix(struct ctl_server *s, const char *socket_path)
{
    if (!socket_path)
        return vs_fail(EINVAL, "no control socket path given");
    struct ctl_listener *l = new_listener(s, socket_path);
    if (!l)
        return -errno;
    int rc = ctl_socket_listen(socket_path, &l->fd, &l->dev, &l->ino);
    if (rc < 0) {
        free(l->name);
        return rc;
    }
    l->abs_path = ctl_socket_absolute_path(socket_path);
    if (!l->abs_path) {
        unlink(socket_path);
        close(l->fd);
        free(l->name);
        return vs_fail(ENOMEM, "out of memory creating control socket %s", socket_path);
    }
    s->nlisteners++;
    return 0;
}

int ctl_server_listen_tcp(struct ctl_server *s, const char *addr, const struct vs_tls *tls)
{
    struct ctl_listener *l = new_listener(s, addr);
    if (!l)
        return -errno;
    int rc = ctl_tcp_listen(addr, &l->fd, &l->port);
    if (rc < 0) {
        free(l->name);
        return rc;
    }
    l->tcp = true;
    l->tls = tls;
    size_t n = strlen(addr);
    char bound[128];
    if (n > 2 && !strcmp(addr + n - 2, ":0") && n < 100) {   /* name the port it took */
        snprintf(bound, sizeof(bound), "%.*s:%d", (int)(n - 2), addr, l->port);
        char *name = strdup(bound);
        if (name) {
            free(l->name);
            l->name = name;
        }
    }
    s->nlisteners++;
    return 0;
}

int ctl_server_tcp_port(const struct ctl_server *s)
{
    for (int i = 0; s && i < s->nlisteners; i++)
        if (s->listeners[i].tcp)
            return s->listeners[i].port;
    return 0;
}

int ctl_server_open(struct ctl_server **out, const char *socket_path,
                    const struct ctl_command *table, void *ctx)
{
    int rc = ctl_server_create(out, table, ctx);
    if (rc)
        return rc;
    if ((rc = ctl_server_listen_unix(*out, socket_path))) {
        ctl_server_close(*out);
        *out = NULL;
    }
    return rc;
}

void ctl_server_event(struct ctl_server *s, const char *name, struct json_object *data)
{
    ctl_server_event_at(s, name, data, NULL);
}

void ctl_server_event_at(struct ctl_server *s, const char *name, struct json_object *data,
                         const struct timespec *when)
{
    struct json_object *ev = ctl_qmp_event_at(name, data, when);
    if (!ev)
        return;
    for (int i = 0; s && i < s->nconns; i++) {
        struct ctl_conn *c = s->conns[i];
        if (c->negotiated && !c->dead) {
            ctl_conn_queue(c, ev);
            flush_out(c);
        }
    }
    json_object_put(ev);
}

void ctl_server_close(struct ctl_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nconns; i++)
        conn_free(s->conns[i]);
    s->nconns = 0;
    for (int i = 0; i < s->nlisteners; i++) {
        struct ctl_listener *l = &s->listeners[i];
        /* The name goes first: a client never finds the path without a listener. */
        if (!l->tcp)
            ctl_socket_remove_if_ours(l->abs_path, l->dev, l->ino);
        close(l->fd);
        free(l->name);
        free(l->abs_path);
    }
    free(s);
}
