#include "ctl/ctl_server.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "ctl/ctl_json.h"
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

#define IN_CAP (CTL_MAX_LINE + 1)           /* a full line plus its '\n' */
#define OUT_SOFT_LIMIT (256 * 1024)         /* stop serving a client's requests above this */
#define OUT_KEEP_CAP (64 * 1024)            /* free larger output buffers once drained */
#define WRITE_STALL_NS (10ull * 1000000000ull) /* drop clients that stop reading replies */
#define MAX_ACCEPTS_PER_POLL 16
#define ACCEPT_BACKOFF_NS (100ull * 1000000ull) /* pause accepting when out of fds */
#define MAX_READ_ROUNDS 16

struct ctl_conn {
    int fd;
    char *in;            /* IN_CAP bytes; pending input is in[in_start .. in_start+in_len) */
    size_t in_start, in_len;
    char *out;           /* queued reply bytes out[out_off .. out_len) */
    size_t out_off, out_len, out_cap;
    uint64_t stall_since; /* when queued output last made no progress (0: nothing queued) */
    bool eof;            /* peer sent EOF: no more input */
    bool closing;        /* serve no more requests; close once output is flushed */
    bool dead;           /* close now */
};

struct ctl_server {
    int listen_fd;
    char *path;          /* as given (bound with this) */
    char *abs_path;      /* absolute, for unlink at close */
    dev_t dev;
    ino_t ino;
    ctl_handler_fn fn;
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

static void queue_line(struct ctl_conn *c, struct json_object *reply)
{
    const char *line = ctl_json_line(reply);
    size_t len = line ? strlen(line) : 0;
    char buf[256];
    if (!line || len > CTL_MAX_REPLY) {
        snprintf(buf, sizeof(buf),
                 "{\"ok\":false,\"error\":\"the reply is too large to send (%zu bytes, the "
                 "limit is %d); ask for less data\"}",
                 len, CTL_MAX_REPLY);
        line = buf;
        len = strlen(buf);
    }
    if (append_out(c, line, len) || append_out(c, "\n", 1)) {
        vs_warn("control: out of memory queueing a reply; dropping the client");
        c->dead = true;
    }
}

static void queue_error(struct ctl_conn *c, const char *msg)
{
    struct json_object *r = json_object_new_object();
    if (!r) {
        c->dead = true;
        return;
    }
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object_object_add(r, "error", json_object_new_string(msg));
    queue_line(c, r);
    json_object_put(r);
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

static const char *type_name(struct json_object *v)
{
    return v ? json_type_to_name(json_object_get_type(v)) : "null";
}

/* Copy a possibly truncated message without leaving half a UTF-8 sequence at its end,
 * so that the reply stays valid JSON text. */
static void utf8_copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src);
    size_t n = strlen(dst);
    size_t i = n;
    while (i > 0 && ((unsigned char)dst[i - 1] & 0xC0) == 0x80)
        i--; /* continuation bytes */
    if (i > 0 && ((unsigned char)dst[i - 1] & 0x80)) {
        unsigned char lead = (unsigned char)dst[i - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - (i - 1) < need)
            dst[i - 1] = '\0';
    }
}

static void run_handler(struct ctl_server *s, struct ctl_conn *c, const char *cmd,
                        struct json_object *req)
{
    struct json_object *fields = json_object_new_object();
    if (!fields) {
        queue_error(c, "out of memory handling the request");
        return;
    }
    vs_clear_error();
    int rc = s->fn(s->ctx, cmd, req, fields);
    if (rc < 0) {
        char msg[600];
        if (vs_last_error()[0])
            utf8_copy(msg, sizeof(msg), vs_last_error());
        else
            snprintf(msg, sizeof(msg), "command \"%s\" failed: %s", cmd, strerror(-rc));
        queue_error(c, msg);
        json_object_put(fields);
        return;
    }
    struct json_object *r = json_object_new_object();
    if (!r) {
        json_object_put(fields);
        queue_error(c, "out of memory handling the request");
        return;
    }
    json_object_object_add(r, "ok", json_object_new_boolean(1));
    if (json_object_is_type(fields, json_type_object)) {
        json_object_object_foreach(fields, key, val) {
            if (strcmp(key, "ok") != 0)
                json_object_object_add(r, key, json_object_get(val));
        }
    }
    queue_line(c, r);
    json_object_put(r);
    json_object_put(fields);
}

/* One request line, without its '\n'. */
static void handle_line(struct ctl_server *s, struct ctl_conn *c, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len)
        return; /* blank line: not a request */
    if (memchr(line, '\0', len)) {
        queue_error(c, "invalid request: the line contains a NUL byte; send one JSON object "
                       "per line, e.g. {\"cmd\": \"status\"}");
        return;
    }

    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        queue_error(c, "out of memory parsing the request");
        return;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *req = json_tokener_parse_ex(tok, line, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (!req && jerr == json_tokener_continue) {
        /* A bare number at the end of input is only complete once a delimiter follows. */
        req = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
    }
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);

    char msg[300];
    if (!req && jerr == json_tokener_success) { /* the line was JSON null */
        queue_error(c, "invalid request: expected a JSON object like {\"cmd\": \"status\"}, "
                       "got null");
        return;
    }
    if (!req) {
        if (jerr == json_tokener_continue)
            snprintf(msg, sizeof(msg), "invalid JSON request: the line ends inside a value; "
                                       "send one complete JSON object per line");
        else
            snprintf(msg, sizeof(msg),
                     "invalid JSON request: %s near byte %zu; send one JSON object per line, "
                     "e.g. {\"cmd\": \"status\"}",
                     json_tokener_error_desc(jerr), end < len ? end + 1 : len);
        queue_error(c, msg);
        return;
    }
    if (!json_object_is_type(req, json_type_object)) {
        snprintf(msg, sizeof(msg),
                 "invalid request: expected a JSON object like {\"cmd\": \"status\"}, got %s %s",
                 json_object_is_type(req, json_type_array) ? "an" : "a", type_name(req));
        queue_error(c, msg);
        json_object_put(req);
        return;
    }
    struct json_object *cmd;
    if (!json_object_object_get_ex(req, "cmd", &cmd)) {
        queue_error(c, "invalid request: missing \"cmd\" field; send e.g. {\"cmd\": \"status\"}");
        json_object_put(req);
        return;
    }
    if (!json_object_is_type(cmd, json_type_string)) {
        snprintf(msg, sizeof(msg),
                 "invalid request: \"cmd\" must be a string naming the command, got %s",
                 type_name(cmd));
        queue_error(c, msg);
        json_object_put(req);
        return;
    }
    run_handler(s, c, json_object_get_string(cmd), req);
    json_object_put(req);
}

/* Serve complete lines from the input buffer while the client keeps up with replies. */
static void process_input(struct ctl_server *s, struct ctl_conn *c)
{
    while (!c->dead && !c->closing && out_pending(c) < OUT_SOFT_LIMIT) {
        char *start = c->in + c->in_start;
        char *nl = memchr(start, '\n', c->in_len);
        if (nl) {
            size_t n = (size_t)(nl - start);
            c->in_start += n + 1;
            c->in_len -= n + 1;
            handle_line(s, c, start, n);
            continue;
        }
        if (c->in_len == IN_CAP) { /* no '\n' in a full buffer */
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "request line too long (more than %d bytes); closing the connection",
                     CTL_MAX_LINE);
            queue_error(c, msg);
            c->in_start = c->in_len = 0;
            c->closing = true;
            break;
        }
        if (c->eof) {
            if (c->in_len > 0) /* a last line without '\n' */
                handle_line(s, c, start, c->in_len);
            c->in_start = c->in_len = 0;
            c->closing = true;
        }
        break;
    }
    if (c->in_len == 0) {
        c->in_start = 0;
    } else if (c->in_start > 0 && c->in_start + c->in_len == IN_CAP) {
        /* Make room for the rest of a partial line. */
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
    int n = snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\"}\n", msg);
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

int ctl_server_open(struct ctl_server **out, const char *socket_path, ctl_handler_fn fn,
                    void *ctx)
{
    *out = NULL;
    if (!fn)
        return vs_fail(EINVAL, "control socket %s: no request handler given",
                       socket_path ? socket_path : "(none)");
    struct ctl_server *s = calloc(1, sizeof(*s));
    if (!s)
        return vs_fail(ENOMEM, "out of memory creating control socket %s",
                       socket_path ? socket_path : "(none)");
    s->listen_fd = -1;
    s->fn = fn;
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
