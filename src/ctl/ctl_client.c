#include "ctl/ctl_client.h"

#include "common/clock.h"
#include "common/error.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_legacy.h"
#include "ctl/ctl_server.h"
#include "ctl/ctl_tcp.h"
#include "transport/tls_stream.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Milliseconds left until deadline_ns (0: none -> -1 for poll), at least 0. */
static int remaining_ms(uint64_t deadline_ns)
{
    if (!deadline_ns)
        return -1;
    uint64_t now = vs_clock_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static int timed_out(const char *path, int timeout_ms, const char *what)
{
    return vs_fail(ETIMEDOUT,
                   "no reply from control socket %s within %d ms (%s); the VM may be busy or "
                   "stuck — retry with a longer timeout (vmshift ctl --timeout MS)",
                   path, timeout_ms, what);
}

/* Wait for `events` on fd; 0 when ready, -ETIMEDOUT after the deadline. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = events };
        int rc = poll(&p, 1, remaining_ms(deadline_ns));
        if (rc > 0)
            return 0;
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int connect_socket(const char *path, uint64_t deadline_ns, int timeout_ms, int *out_fd)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    size_t plen = strlen(path);
    if (plen == 0)
        return vs_fail(EINVAL, "control socket path is empty; give the path passed to "
                               "vmshift run --ctl");
    if (plen >= sizeof(addr.sun_path))
        return vs_fail(ENAMETOOLONG,
                       "control socket path %s is too long (%zu bytes, the limit is %zu); use "
                       "a shorter --ctl path",
                       path, plen, sizeof(addr.sun_path) - 1);
    memcpy(addr.sun_path, path, plen + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return vs_fail(errno, "cannot create a socket to reach control socket %s: %s", path,
                       strerror(errno));
    for (;;) {
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
            break;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN) {
            /* The server's accept backlog is full: it is alive but busy. */
            if (remaining_ms(deadline_ns) == 0) {
                close(fd);
                return timed_out(path, timeout_ms, "its connection backlog stayed full");
            }
            vs_sleep_ns(10 * 1000000ull);
            continue;
        }
        close(fd);
        if (err == EACCES || err == EPERM)
            return vs_fail(err, "cannot connect to control socket %s: %s; run as the user "
                                "that started the VM",
                           path, strerror(err));
        return vs_fail(err, "cannot connect to control socket %s: %s; is the VM running "
                            "(vmshift run --ctl %s)?",
                       path, strerror(err), path);
    }
    *out_fd = fd;
    return 0;
}

struct ctl_qmp {
    int fd;
    struct vs_tls_stream *tls;   /* a host agent over TCP with TLS; NULL: plain */
    bool plain_tcp;              /* a host agent over TCP without TLS (--insecure) */
    char *path;
    int timeout_ms;
    uint64_t deadline;           /* of the current call (0: none) */
    char *buf;                   /* received, not yet returned: buf[0 .. len) */
    size_t len, cap;
    struct json_object *events;  /* events that arrived while waiting for a reply */
    int64_t next_id;
};

static ssize_t io_recv(struct ctl_qmp *q, void *buf, size_t len, short *events)
{
    *events = q->tls ? vs_tls_stream_read_events(q->tls) : POLLIN;
    ssize_t n = q->tls ? vs_tls_stream_read(q->tls, buf, len)
                       : recv(q->fd, buf, len, MSG_DONTWAIT);
    if (n < 0 && q->tls)
        *events = vs_tls_stream_read_events(q->tls);
    return n;
}

static ssize_t io_send(struct ctl_qmp *q, const void *buf, size_t len, short *events)
{
    *events = POLLOUT;
    ssize_t n = q->tls ? vs_tls_stream_write(q->tls, buf, len)
                       : send(q->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && q->tls)
        *events = vs_tls_stream_write_events(q->tls);
    return n;
}

/* What went wrong on the connection, in words (TLS knows more than errno). */
static const char *io_error(const struct ctl_qmp *q, int err)
{
    return q->tls && err == EPROTO ? vs_tls_stream_failure(q->tls) : strerror(err);
}

static int send_all(struct ctl_qmp *q, const char *buf, size_t len)
{
    const char *path = q->path;
    uint64_t deadline_ns = q->deadline;
    int timeout_ms = q->timeout_ms;
    size_t off = 0;
    while (off < len) {
        short events;
        ssize_t n = io_send(q, buf + off, len - off, &events);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(q->fd, events, deadline_ns);
            if (rc == -ETIMEDOUT)
                return timed_out(path, timeout_ms, "it did not accept the request");
            if (rc)
                return vs_fail(rc, "cannot send to control socket %s: %s", path, strerror(-rc));
            continue;
        }
        return vs_fail(errno, "cannot send the request to control socket %s: %s; is the VM "
                              "still running?",
                       path, io_error(q, errno));
    }
    return 0;
}

/* A host agent reached over plain TCP that says nothing may be waiting for TLS. */
static const char *plain_hint(const struct ctl_qmp *q)
{
    return q->plain_tcp && q->len == 0 ? "; a host agent with TLS (vmshiftd --listen with "
                                         "--tls-*) waits for a TLS client: give its security "
                                         "options instead of --insecure" : "";
}

static int reply_timed_out(const struct ctl_qmp *q)
{
    timed_out(q->path, q->timeout_ms, "waiting for the reply");
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", vs_last_error());
    return vs_fail(ETIMEDOUT, "%s%s", msg, plain_hint(q));
}

static void start_call(struct ctl_qmp *q)
{
    q->deadline = q->timeout_ms > 0 ? vs_clock_ns() + (uint64_t)q->timeout_ms * 1000000ull : 0;
}

/* One line (without "\r\n") into *out (malloc'd). */
static int recv_line(struct ctl_qmp *q, char **out)
{
    for (;;) {
        char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - q->buf);
            char *line = malloc(n + 1);
            if (!line)
                return vs_fail(ENOMEM, "out of memory reading from %s", q->path);
            memcpy(line, q->buf, n);
            line[n] = '\0';
            if (n > 0 && line[n - 1] == '\r')
                line[n - 1] = '\0';
            memmove(q->buf, nl + 1, q->len - n - 1);
            q->len -= n + 1;
            *out = line;
            return 0;
        }
        if (q->len + 4096 > q->cap) {
            if (q->cap > (size_t)CTL_MAX_REPLY + 8192)
                return vs_fail(EMSGSIZE, "the reply from control socket %s is longer than %d "
                               "bytes; giving up", q->path, CTL_MAX_REPLY);
            size_t cap = q->cap ? q->cap * 2 : 8192;
            char *p = realloc(q->buf, cap);
            if (!p)
                return vs_fail(ENOMEM, "out of memory reading from %s", q->path);
            q->buf = p;
            q->cap = cap;
        }
        short events;
        ssize_t n = io_recv(q, q->buf + q->len, q->cap - q->len, &events);
        if (n > 0) {
            q->len += (size_t)n;
            continue;
        }
        if (n == 0)
            return vs_fail(ECONNRESET, "control socket %s closed the connection %s; check the "
                           "VM's log%s", q->path, q->len ? "in the middle of a reply"
                                                         : "without replying", plain_hint(q));
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return vs_fail(errno, "cannot read the reply from control socket %s: %s", q->path,
                           io_error(q, errno));
        int rc = wait_fd(q->fd, events, q->deadline);
        if (rc == -ETIMEDOUT)
            return reply_timed_out(q);
        if (rc)
            return vs_fail(rc, "cannot read from control socket %s: %s", q->path, strerror(-rc));
    }
}

static int recv_message(struct ctl_qmp *q, struct json_object **out)
{
    char *line = NULL;
    int rc = recv_line(q, &line);
    if (rc)
        return rc;
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        free(line);
        return vs_fail(ENOMEM, "out of memory parsing the reply from %s", q->path);
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *r = json_tokener_parse_ex(tok, line, (int)strlen(line));
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    free(line);
    if (!r || !json_object_is_type(r, json_type_object)) {
        json_object_put(r);
        return vs_fail(EPROTO, "control socket %s sent a message that is not a JSON object "
                       "(%s); is it a vmshift (QMP) control socket?", q->path,
                       json_tokener_error_desc(jerr));
    }
    *out = r;
    return 0;
}

static int send_message(struct ctl_qmp *q, struct json_object *msg)
{
    const char *line = ctl_json_line(msg);
    if (!line)
        return vs_fail(ENOMEM, "out of memory encoding the request for %s", q->path);
    size_t len = strlen(line);
    if (len > CTL_MAX_LINE)
        return vs_fail(EMSGSIZE, "the request for %s is too large (%zu bytes, the limit is %d)",
                       q->path, len, CTL_MAX_LINE);
    char *buf = malloc(len + 1);
    if (!buf)
        return vs_fail(ENOMEM, "out of memory encoding the request for %s", q->path);
    memcpy(buf, line, len);
    buf[len] = '\n';
    int rc = send_all(q, buf, len + 1);
    free(buf);
    return rc;
}

int ctl_qmp_execute(struct ctl_qmp *q, const char *name, struct json_object *args,
                    struct json_object **reply)
{
    *reply = NULL;
    start_call(q);
    struct json_object *msg = json_object_new_object();
    if (!msg)
        return vs_fail(ENOMEM, "out of memory building the request");
    int64_t id = ++q->next_id;
    json_object_object_add(msg, "execute", json_object_new_string(name));
    if (args)
        json_object_object_add(msg, "arguments", json_object_get(args));
    json_object_object_add(msg, "id", json_object_new_int64(id));
    int rc = send_message(q, msg);
    json_object_put(msg);
    while (!rc) {
        struct json_object *r, *rid;
        if ((rc = recv_message(q, &r)))
            break;
        if (json_object_object_get_ex(r, "event", NULL)) {
            json_object_array_add(q->events, r);
            continue;
        }
        if (json_object_object_get_ex(r, "id", &rid) && json_object_is_type(rid, json_type_int) &&
            json_object_get_int64(rid) == id) {
            *reply = r;
            return 0;
        }
        if (!json_object_object_get_ex(r, "id", NULL) &&
            json_object_object_get_ex(r, "error", NULL)) {
            *reply = r; /* an error about the input itself carries no id */
            return 0;
        }
        json_object_put(r); /* a reply to someone else's id: not ours */
    }
    return rc;
}

int ctl_qmp_next_event(struct ctl_qmp *q, int timeout_ms, struct json_object **event)
{
    *event = NULL;
    if (json_object_array_length(q->events) > 0) {
        *event = json_object_get(json_object_array_get_idx(q->events, 0));
        json_object_array_del_idx(q->events, 0, 1);
        return 0;
    }
    int saved = q->timeout_ms;
    q->timeout_ms = timeout_ms;
    start_call(q);
    struct json_object *r = NULL;
    int rc;
    while ((rc = recv_message(q, &r)) == 0 && !json_object_object_get_ex(r, "event", NULL)) {
        json_object_put(r);
        r = NULL;
    }
    q->timeout_ms = saved;
    if (rc == -ETIMEDOUT)
        vs_clear_error();
    *event = r;
    return rc;
}

void ctl_qmp_close(struct ctl_qmp *q)
{
    if (!q)
        return;
    vs_tls_stream_free(q->tls);
    if (q->fd >= 0)
        close(q->fd);
    json_object_put(q->events);
    free(q->buf);
    free(q->path);
    free(q);
}

static int negotiate(struct ctl_qmp *q)
{
    struct json_object *g, *r;
    int rc = recv_message(q, &g);
    if (rc)
        return rc;
    bool qmp = json_object_object_get_ex(g, "QMP", NULL);
    json_object_put(g);
    if (!qmp)
        return vs_fail(EPROTO, "control socket %s did not greet with QMP; is it a vmshift "
                       "control socket?", q->path);
    if ((rc = ctl_qmp_execute(q, "qmp_capabilities", NULL, &r)))
        return rc;
    bool ok = json_object_object_get_ex(r, "return", NULL);
    json_object_put(r);
    return ok ? 0 : vs_fail(EPROTO, "control socket %s refused qmp_capabilities", q->path);
}

/* A HOST:PORT: TCP, secured as `remote` says. */
static int connect_tcp(const char *addr, const struct ctl_remote *remote, struct ctl_qmp *q)
{
    if (!remote || (!remote->tls && !remote->insecure))
        return vs_fail(EINVAL, "%s is a TCP address (a vmshiftd --listen): give the "
                       "certificates to reach it with --tls-cert FILE --tls-key FILE "
                       "--tls-ca FILE (or --tls-psk FILE), or --insecure for plain TCP",
                       addr);
    q->plain_tcp = !remote->tls;
    return ctl_tcp_connect(addr, remote->tls, q->deadline, &q->fd, &q->tls);
}

int ctl_qmp_connect(const char *socket_path, int timeout_ms, struct ctl_qmp **out)
{
    return ctl_qmp_connect_to(socket_path, NULL, timeout_ms, out);
}

int ctl_qmp_connect_to(const char *socket_path, const struct ctl_remote *remote,
                       int timeout_ms, struct ctl_qmp **out)
{
    *out = NULL;
    if (!socket_path)
        return vs_fail(EINVAL, "no control socket path given");
    struct ctl_qmp *q = calloc(1, sizeof(*q));
    if (!q || !(q->path = strdup(socket_path)) || !(q->events = json_object_new_array())) {
        ctl_qmp_close(q);
        return vs_fail(ENOMEM, "out of memory connecting to %s", socket_path);
    }
    q->fd = -1;
    q->timeout_ms = timeout_ms;
    start_call(q);
    int rc = ctl_is_tcp_address(socket_path) ? connect_tcp(socket_path, remote, q)
                                             : connect_socket(socket_path, q->deadline,
                                                              timeout_ms, &q->fd);
    if (!rc)
        rc = negotiate(q);
    if (rc) {
        ctl_qmp_close(q);
        return rc;
    }
    *out = q;
    return 0;
}

/* {"return": X} -> {"ok": true, ...X} ({"ok": true, "return": X} when X is no object);
 * {"error": {class, desc}} -> {"ok": false, "error": desc, "class": class}. */
struct json_object *ctl_qmp_to_legacy(struct json_object *r)
{
    struct json_object *out = json_object_new_object(), *v, *e;
    if (!out)
        return NULL;
    if (json_object_object_get_ex(r, "return", &v)) {
        json_object_object_add(out, "ok", json_object_new_boolean(1));
        if (json_object_is_type(v, json_type_object)) {
            json_object_object_foreach(v, key, val) {
                json_object_object_add(out, key, json_object_get(val));
            }
        } else {
            json_object_object_add(out, "return", json_object_get(v));
        }
        return out;
    }
    json_object_object_add(out, "ok", json_object_new_boolean(0));
    json_object_object_get_ex(r, "error", &e);
    json_object_object_add(out, "error", json_object_object_get_ex(e, "desc", &v)
                                             ? json_object_get(v)
                                             : json_object_new_string("(no error message)"));
    if (json_object_object_get_ex(e, "class", &v))
        json_object_object_add(out, "class", json_object_get(v));
    return out;
}

int ctl_command(const char *socket_path, const char *cmd, struct json_object *args,
                struct json_object **reply, int timeout_ms)
{
    return ctl_command_to(socket_path, NULL, cmd, args, reply, timeout_ms);
}

int ctl_command_to(const char *socket_path, const struct ctl_remote *remote, const char *cmd,
                   struct json_object *args, struct json_object **reply, int timeout_ms)
{
    *reply = NULL;
    if (!cmd || !*cmd)
        return vs_fail(EINVAL, "no control command given");
    if (args && !json_object_is_type(args, json_type_object))
        return vs_fail(EINVAL, "arguments for command \"%s\" must be a JSON object", cmd);
    if (args && json_object_object_get_ex(args, "cmd", NULL))
        return vs_fail(EINVAL, "command \"%s\": \"cmd\" cannot be used as an argument name",
                       cmd);
    struct ctl_qmp *q;
    int rc = ctl_qmp_connect_to(socket_path, remote, timeout_ms, &q);
    if (rc)
        return rc;
    rc = ctl_legacy_run(q, cmd, args, reply);
    ctl_qmp_close(q);
    return rc;
}

int ctl_request(const char *socket_path, struct json_object *request,
                struct json_object **reply, int timeout_ms)
{
    *reply = NULL;
    if (!socket_path)
        return vs_fail(EINVAL, "no control socket path given");
    struct json_object *cmd;
    if (!request || !json_object_is_type(request, json_type_object))
        return vs_fail(EINVAL, "control request for %s must be a JSON object", socket_path);
    if (!json_object_object_get_ex(request, "cmd", &cmd) ||
        !json_object_is_type(cmd, json_type_string))
        return vs_fail(EINVAL, "control request for %s needs a string \"cmd\"", socket_path);
    struct json_object *args = json_object_new_object();
    if (!args)
        return vs_fail(ENOMEM, "out of memory building the request");
    json_object_object_foreach(request, key, val) {
        if (strcmp(key, "cmd") != 0)
            json_object_object_add(args, key, json_object_get(val));
    }
    int rc = ctl_command(socket_path, json_object_get_string(cmd), args, reply, timeout_ms);
    json_object_put(args);
    return rc;
}
