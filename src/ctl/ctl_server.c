#include "ctl/ctl_server.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_conn.h"
#include "ctl/ctl_socket.h"

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


struct ctl_server {
    int listen_fd;
    char *path;          /* as given (bound with this) */
    char *abs_path;      /* absolute, for unlink at close */
    dev_t dev;
    ino_t ino;
    const struct ctl_command *table;
    void *ctx;
    uint64_t accept_paused_until; /* after EMFILE & co, so poll() does not spin */
    struct ctl_conn *conns[CTL_MAX_CLIENTS];
    int nconns;
    struct pollfd pfds[CTL_MAX_CLIENTS + 1];
};

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
        ssize_t n = send(c->fd, c->out + c->out_off, out_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            progress = true;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            /* EPIPE/ECONNRESET: the peer is gone, its replies are undeliverable. */
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

static size_t skip_space(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

static void consume(struct ctl_conn *c, size_t n)
{
    c->in_start += n;
    c->in_len -= n;
}

/* After invalid input found at byte `at`: skip to the next line (or drop what is
 * buffered when no line follows). */
static void resync(struct ctl_conn *c, size_t at)
{
    char *start = c->in + c->in_start;
    if (at >= c->in_len) {
        consume(c, c->in_len);
        return;
    }
    char *nl = memchr(start + at, '\n', c->in_len - at);
    consume(c, nl ? (size_t)(nl - start) + 1 : c->in_len);
}

/* The length of the first JSON value in p[0..len) (p[0] is not white space), or 0 while
 * it is incomplete. Only brackets and strings are followed; the parser checks the rest. */
static size_t value_end(const char *p, size_t len, bool eof)
{
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"' && (in_string = false, depth == 0))
                return i + 1;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth <= 1)
                return i + 1; /* the end, or a stray closer: the parser says which */
            depth--;
        } else if (depth == 0 && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')) {
            return i; /* a bare number or literal */
        }
    }
    return eof ? len : 0;
}

/* Parse one complete JSON value at the start of the pending input. Returns it (consumed
 * from the buffer), or NULL when more input is needed or an error was answered. */
static struct json_object *next_value(struct ctl_conn *c, bool *need_more)
{
    *need_more = false;
    consume(c, skip_space(c->in + c->in_start, c->in_len));
    if (c->in_len == 0) {
        *need_more = true;
        return NULL;
    }
    const char *start = c->in + c->in_start;
    size_t end = value_end(start, c->in_len, c->eof);
    if (end > CTL_MAX_LINE || (end == 0 && c->in_len > CTL_MAX_LINE)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "request too long (more than %d bytes); closing the "
                 "connection", CTL_MAX_LINE);
        ctl_qmp_error(c, "GenericError", msg, NULL);
        consume(c, c->in_len);
        c->closing = true;
        return NULL;
    }
    if (end == 0)
        end = c->in_len; /* incomplete: parse what there is, to find errors early */
    const char *nul = memchr(start, '\0', end);
    if (nul) {
        ctl_qmp_error(c, "GenericError", "invalid input: a NUL byte; send JSON objects", NULL);
        resync(c, (size_t)(nul - start));
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        c->dead = true;
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *v = json_tokener_parse_ex(tok, start, (int)end);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    bool complete = value_end(start, c->in_len, c->eof) != 0;
    if (!v && jerr == json_tokener_continue && complete) /* a bare number or literal */
        v = json_tokener_parse_ex(tok, " ", 1), jerr = json_tokener_get_error(tok);
    size_t at = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr == json_tokener_continue && !complete) {
        *need_more = true;
        return NULL;
    }
    if (jerr != json_tokener_success) {
        char msg[300];
        snprintf(msg, sizeof(msg), "JSON parse error, %s near byte %zu; send one JSON object "
                 "such as {\"execute\": \"query-status\"}",
                 jerr == json_tokener_continue ? "the input ends inside a value"
                                               : json_tokener_error_desc(jerr), at + 1);
        ctl_qmp_error(c, "GenericError", msg, NULL);
        json_object_put(v);
        resync(c, at);
        return NULL;
    }
    consume(c, end);
    if (!v) /* JSON null */
        ctl_qmp_error(c, "GenericError", "QMP input must be a JSON object", NULL);
    return v;
}

/* Serve complete requests from the input buffer while the client keeps up with replies. */
static void process_input(struct ctl_server *s, struct ctl_conn *c)
{
    while (!c->dead && !c->closing && out_pending(c) < OUT_SOFT_LIMIT) {
        bool need_more;
        struct json_object *v = next_value(c, &need_more);
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
        ssize_t n = recv(c->fd, c->in + c->in_start + c->in_len, room, MSG_DONTWAIT);
        if (n > 0) {
            c->in_len += (size_t)n;
        } else if (n == 0) {
            c->eof = true;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
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

static void accept_clients(struct ctl_server *s)
{
    for (int i = 0; i < MAX_ACCEPTS_PER_POLL; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                vs_warn("control: cannot accept a connection on %s: %s", s->path,
                        strerror(errno));
                s->accept_paused_until = vs_clock_ns() + ACCEPT_BACKOFF_NS;
            }
            return;
        }
        if (s->nconns >= CTL_MAX_CLIENTS) {
            vs_warn("control: refusing a connection on %s: %d clients already connected",
                    s->path, CTL_MAX_CLIENTS);
            refuse(fd, "too many control connections (limit 64); close idle connections "
                       "and retry");
            continue;
        }
        struct ctl_conn *c = calloc(1, sizeof(*c));
        char *in = malloc(IN_CAP);
        if (!c || !in) {
            free(c);
            free(in);
            refuse(fd, "the VM is out of memory; retry later");
            continue;
        }
        c->fd = fd;
        c->in = in;
        s->conns[s->nconns++] = c;
        ctl_qmp_greet(c);
        flush_out(c);
        vs_debug("control: client connected on %s (%d open)", s->path, s->nconns);
    }
}

int ctl_server_poll(struct ctl_server *s, int timeout_ms)
{
    int n = s->nconns;
    bool accepting = vs_clock_ns() >= s->accept_paused_until;
    if (!accepting && (timeout_ms < 0 || timeout_ms > (int)(ACCEPT_BACKOFF_NS / 1000000)))
        timeout_ms = (int)(ACCEPT_BACKOFF_NS / 1000000);
    s->pfds[0] = (struct pollfd){ .fd = s->listen_fd, .events = accepting ? POLLIN : 0 };
    for (int i = 0; i < n; i++) {
        struct ctl_conn *c = s->conns[i];
        short ev = 0;
        if (wants_input(c))
            ev |= POLLIN;
        if (out_pending(c) > 0)
            ev |= POLLOUT;
        s->pfds[i + 1] = (struct pollfd){ .fd = c->fd, .events = ev };
    }
    int rc = poll(s->pfds, (nfds_t)n + 1, timeout_ms);
    if (rc < 0) {
        if (errno == EINTR)
            return 0;
        return vs_fail(errno, "cannot wait on control socket %s: %s", s->path, strerror(errno));
    }

    for (int i = 0; i < n; i++) {
        struct ctl_conn *c = s->conns[i];
        short re = s->pfds[i + 1].revents;
        if (re & POLLNVAL) {
            c->dead = true;
            continue;
        }
        if (re & POLLERR)
            c->dead = true;
        if (re & POLLOUT)
            flush_out(c);
        if (re & (POLLIN | POLLHUP))
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
            vs_warn("control: dropping a client on %s that has not read its replies for "
                    "%llu s",
                    s->path, (unsigned long long)(WRITE_STALL_NS / 1000000000ull));
            c->dead = true;
        }
    }

    /* Drop dead connections, keeping the order of the rest. */
    int k = 0;
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i]->dead) {
            conn_free(s->conns[i]);
            vs_debug("control: client disconnected from %s", s->path);
        } else {
            s->conns[k++] = s->conns[i];
        }
    }
    s->nconns = k;

    if (s->pfds[0].revents & POLLIN)
        accept_clients(s);
    return 0;
}

/* ---- open/close ------------------------------------------------------------------ */

int ctl_server_open(struct ctl_server **out, const char *socket_path,
                    const struct ctl_command *table, void *ctx)
{
    *out = NULL;
    if (!table)
        return vs_fail(EINVAL, "control socket %s: no command table given",
                       socket_path ? socket_path : "(none)");
    struct ctl_server *s = calloc(1, sizeof(*s));
    if (!s)
        return vs_fail(ENOMEM, "out of memory creating control socket %s",
                       socket_path ? socket_path : "(none)");
    s->listen_fd = -1;
    s->table = table;
    s->ctx = ctx;
    int rc = ctl_socket_listen(socket_path, &s->listen_fd, &s->dev, &s->ino);
    if (rc < 0) {
        ctl_server_close(s);
        return rc;
    }
    s->path = strdup(socket_path);
    s->abs_path = ctl_socket_absolute_path(socket_path);
    if (!s->path || !s->abs_path) {
        unlink(socket_path);
        s->ino = 0;
        ctl_server_close(s);
        return vs_fail(ENOMEM, "out of memory creating control socket %s", socket_path);
    }
    *out = s;
    return 0;
}

void ctl_server_event(struct ctl_server *s, const char *name, struct json_object *data)
{
    struct json_object *ev = ctl_qmp_event(name, data);
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
    if (s->listen_fd >= 0) {
        /* The name goes first: a client never finds the path without a listener. */
        ctl_socket_remove_if_ours(s->abs_path, s->dev, s->ino);
        close(s->listen_fd);
    }
    free(s->path);
    free(s->abs_path);
    free(s);
}
