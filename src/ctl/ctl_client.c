#include "ctl/ctl_client.h"

#include "common/clock.h"
#include "common/error.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
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

static int send_all(int fd, const char *path, const char *buf, size_t len, uint64_t deadline_ns,
                    int timeout_ms)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline_ns);
            if (rc == -ETIMEDOUT)
                return timed_out(path, timeout_ms, "it did not accept the request");
            if (rc)
                return vs_fail(rc, "cannot send to control socket %s: %s", path, strerror(-rc));
            continue;
        }
        return vs_fail(errno, "cannot send the request to control socket %s: %s; is the VM "
                              "still running?",
                       path, strerror(errno));
    }
    return 0;
}

/* Read up to and excluding the first '\n' into a malloc'ed, NUL-terminated buffer. */
static int recv_line(int fd, const char *path, uint64_t deadline_ns, int timeout_ms,
                     char **out, size_t *out_len)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return vs_fail(ENOMEM, "out of memory reading the reply from %s", path);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > (size_t)CTL_MAX_REPLY + 1) {
                free(buf);
                return vs_fail(EMSGSIZE, "the reply from control socket %s is longer than %d "
                                         "bytes; giving up",
                               path, CTL_MAX_REPLY);
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return vs_fail(ENOMEM, "out of memory reading the reply from %s", path);
            }
            buf = p;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
        if (n > 0) {
            char *nl = memchr(buf + len, '\n', (size_t)n);
            len += (size_t)n;
            if (nl) {
                *nl = '\0';
                *out = buf;
                *out_len = (size_t)(nl - buf);
                return 0;
            }
            continue;
        }
        if (n == 0) {
            free(buf);
            return vs_fail(ECONNRESET, "control socket %s closed the connection %s; check the "
                                       "VM's log",
                           path, len ? "in the middle of a reply" : "without replying");
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(fd, POLLIN, deadline_ns);
            if (rc == -ETIMEDOUT) {
                free(buf);
                return timed_out(path, timeout_ms, "waiting for the reply");
            }
            if (rc) {
                free(buf);
                return vs_fail(rc, "cannot read from control socket %s: %s", path,
                               strerror(-rc));
            }
            continue;
        }
        int err = errno;
        free(buf);
        return vs_fail(err, "cannot read the reply from control socket %s: %s", path,
                       strerror(err));
    }
}

static int parse_reply(const char *path, const char *line, size_t len, struct json_object **out)
{
    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        return vs_fail(ENOMEM, "out of memory parsing the reply from %s", path);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *r = json_tokener_parse_ex(tok, line, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!r)
        return vs_fail(EPROTO, "control socket %s sent a reply that is not valid JSON (%s); "
                               "is it a vmshift control socket?",
                       path, json_tokener_error_desc(jerr));
    struct json_object *ok;
    if (!json_object_is_type(r, json_type_object) || !json_object_object_get_ex(r, "ok", &ok) ||
        !json_object_is_type(ok, json_type_boolean)) {
        json_object_put(r);
        return vs_fail(EPROTO, "control socket %s sent a reply without a boolean \"ok\" field; "
                               "is it a vmshift control socket?",
                       path);
    }
    *out = r;
    return 0;
}

int ctl_request(const char *socket_path, struct json_object *request,
                struct json_object **reply, int timeout_ms)
{
    *reply = NULL;
    if (!socket_path)
        return vs_fail(EINVAL, "no control socket path given");
    if (!request || !json_object_is_type(request, json_type_object))
        return vs_fail(EINVAL, "control request for %s must be a JSON object", socket_path);
    const char *line = ctl_json_line(request);
    if (!line)
        return vs_fail(ENOMEM, "out of memory encoding the request for %s", socket_path);
    size_t len = strlen(line);
    if (len > CTL_MAX_LINE)
        return vs_fail(EMSGSIZE, "the request for %s is too large (%zu bytes, the limit is %d)",
                       socket_path, len, CTL_MAX_LINE);

    uint64_t deadline = 0;
    if (timeout_ms > 0)
        deadline = vs_clock_ns() + (uint64_t)timeout_ms * 1000000ull;

    int fd = -1;
    int rc = connect_socket(socket_path, deadline, timeout_ms, &fd);
    if (rc)
        return rc;
    char *buf = malloc(len + 1);
    if (!buf) {
        close(fd);
        return vs_fail(ENOMEM, "out of memory encoding the request for %s", socket_path);
    }
    memcpy(buf, line, len);
    buf[len] = '\n';
    rc = send_all(fd, socket_path, buf, len + 1, deadline, timeout_ms);
    free(buf);
    if (rc) {
        close(fd);
        return rc;
    }
    char *resp = NULL;
    size_t resp_len = 0;
    rc = recv_line(fd, socket_path, deadline, timeout_ms, &resp, &resp_len);
    close(fd);
    if (rc)
        return rc;
    rc = parse_reply(socket_path, resp, resp_len, reply);
    free(resp);
    return rc;
}

int ctl_command(const char *socket_path, const char *cmd, struct json_object *args,
                struct json_object **reply, int timeout_ms)
{
    *reply = NULL;
    if (!cmd || !*cmd)
        return vs_fail(EINVAL, "no control command given");
    if (args && !json_object_is_type(args, json_type_object))
        return vs_fail(EINVAL, "arguments for command \"%s\" must be a JSON object", cmd);
    if (args && json_object_object_get_ex(args, "cmd", NULL))
        return vs_fail(EINVAL, "command \"%s\": \"cmd\" cannot be used as an argument name",
                       cmd);
    struct json_object *req = json_object_new_object();
    if (!req || json_object_object_add(req, "cmd", json_object_new_string(cmd)) != 0) {
        json_object_put(req);
        return vs_fail(ENOMEM, "out of memory building the request");
    }
    if (args) {
        json_object_object_foreach(args, key, val) {
            if (json_object_object_add(req, key, json_object_get(val)) != 0) {
                json_object_put(val);
                json_object_put(req);
                return vs_fail(ENOMEM, "out of memory building the request");
            }
        }
    }
    int rc = ctl_request(socket_path, req, reply, timeout_ms);
    json_object_put(req);
    return rc;
}
