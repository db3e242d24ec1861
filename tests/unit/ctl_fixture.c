/* The control-plane unit tests' fixture (see ctl_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_fixture.h"

/* ---- fixture: a server on a temp path, served by a thread ------------------------- */


static int test_handler(void *ctx, const char *cmd, struct json_object *req,
                        struct json_object *reply)
{
    struct fixture *f = ctx;
    atomic_fetch_add(&f->handled, 1);
    if (strcmp(cmd, "echo") == 0) {
        json_object_object_foreach(req, key, val) {
            if (strcmp(key, "cmd") != 0)
                json_object_object_add(reply, key, json_object_get(val));
        }
        return 0;
    }
    if (strcmp(cmd, "fail") == 0)
        return vs_fail(EINVAL, "boom 42");
    if (strcmp(cmd, "silentfail") == 0)
        return -EIO;
    if (strcmp(cmd, "setok") == 0) {
        json_object_object_add(reply, "ok", json_object_new_boolean(0));
        json_object_object_add(reply, "x", json_object_new_int(1));
        return 0;
    }
    if (strcmp(cmd, "size") == 0) {
        uint64_t v;
        int rc = ctl_json_get_u64(req, "value", &v);
        if (rc)
            return rc;
        json_object_object_add(reply, "bytes", json_object_new_uint64(v));
        return 0;
    }
    if (strcmp(cmd, "big") == 0) {
        uint64_t n;
        int rc = ctl_json_get_u64(req, "size", &n);
        if (rc)
            return rc;
        char *data = malloc(n + 1);
        if (!data)
            return vs_fail(ENOMEM, "no memory");
        memset(data, 'x', n);
        data[n] = '\0';
        json_object_object_add(reply, "data", json_object_new_string(data));
        free(data);
        struct json_object *i;
        if (json_object_object_get_ex(req, "i", &i))
            json_object_object_add(reply, "i", json_object_get(i));
        return 0;
    }
    if (strcmp(cmd, "sleep") == 0) {
        uint64_t ms;
        int rc = ctl_json_get_u64(req, "ms", &ms);
        if (rc)
            return rc;
        usleep((useconds_t)(ms * 1000));
        return 0;
    }
    return vs_fail(EINVAL, "unknown command \"%s\"; try echo or fail", cmd);
}

static void *serve_thread(void *arg)
{
    struct fixture *f = arg;
    while (!atomic_load(&f->stop))
        ctl_server_poll(f->srv, 20);
    return NULL;
}

int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/vs-ctl-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/ctl.sock", f->dir);
    if (ctl_server_open(&f->srv, f->path, test_handler, f) != 0) {
        fprintf(stderr, "ctl_server_open: %s\n", vs_last_error());
        return -1;
    }
    if (pthread_create(&f->thread, NULL, serve_thread, f) != 0)
        return -1;
    *state = f;
    return 0;
}

static void remove_dir(const char *dir)
{
    static const char *const names[] = { "ctl.sock", "other.sock", "stale.sock", "file",
                                         "x.sock" };
    char p[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int teardown(void **state)
{
    struct fixture *f = *state;
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    ctl_server_close(f->srv);
    remove_dir(f->dir);
    free(f);
    return 0;
}

/* ---- raw socket helpers --------------------------------------------------------- */

int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    assert_true(strlen(path) < sizeof(a.sun_path));
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

void raw_send(int fd, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        assert_true(n > 0);
        off += (size_t)n;
    }
}

/* Read until `nlines` '\n' have arrived, EOF, or 5 s pass. Returns a malloc'ed,
 * NUL-terminated buffer; *eof tells whether the server closed the connection. */
char *raw_read_lines(int fd, int nlines, bool *eof)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    int seen = 0;
    *eof = false;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (seen < nlines) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long elapsed = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        assert_true(elapsed < 5000);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n == 0) {
            *eof = true;
            break;
        }
        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if (buf[len + (size_t)i] == '\n')
                seen++;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* Wait up to 5 s for EOF, ignoring data. */
bool raw_wait_eof(int fd)
{
    char tmp[4096];
    for (int i = 0; i < 50; i++) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0)
            return true;
    }
    return false;
}

/* Parse line number `idx` (0-based) of `text`. */
struct json_object *line_json(const char *text, int idx)
{
    const char *p = text;
    for (int i = 0; i < idx; i++) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    const char *end = strchr(p, '\n');
    assert_non_null(end);
    char *one = strndup(p, (size_t)(end - p));
    struct json_object *o = json_tokener_parse(one);
    free(one);
    assert_non_null(o);
    assert_true(json_object_is_type(o, json_type_object));
    return o;
}

bool reply_ok(struct json_object *r)
{
    struct json_object *ok;
    assert_true(json_object_object_get_ex(r, "ok", &ok));
    assert_true(json_object_is_type(ok, json_type_boolean));
    return json_object_get_boolean(ok);
}

const char *reply_str(struct json_object *r, const char *key)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(r, key, &v));
    assert_true(json_object_is_type(v, json_type_string));
    return json_object_get_string(v);
}

int64_t reply_int(struct json_object *r, const char *key)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(r, key, &v));
    assert_true(json_object_is_type(v, json_type_int));
    return json_object_get_int64(v);
}

/* Send one raw line set, expect `n` replies, return them parsed in *out. */
void raw_exchange(const char *path, const char *data, size_t len, int n,
                         struct json_object **out, bool expect_eof)
{
    int fd = raw_connect(path);
    raw_send(fd, data, len);
    bool eof;
    char *text = raw_read_lines(fd, n, &eof);
    for (int i = 0; i < n; i++)
        out[i] = line_json(text, i);
    free(text);
    if (expect_eof)
        assert_true(raw_wait_eof(fd));
    close(fd);
}
