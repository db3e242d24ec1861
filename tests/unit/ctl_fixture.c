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


static int h_echo(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    atomic_fetch_add(&f->handled, 1);
    json_object_object_foreach(args, key, val) {
        json_object_object_add(*ret, key, json_object_get(val));
    }
    return 0;
}

static int h_fail(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    (void)args, (void)ret;
    atomic_fetch_add(&f->handled, 1);
    return vs_fail(EINVAL, "boom 42");
}

static int h_silentfail(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    (void)args, (void)ret;
    atomic_fetch_add(&f->handled, 1);
    return -EIO;
}

static int h_list(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    (void)args;
    atomic_fetch_add(&f->handled, 1);
    json_object_put(*ret);
    *ret = json_object_new_array();
    json_object_array_add(*ret, json_object_new_int(7));
    return 0;
}

static int h_size(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    atomic_fetch_add(&f->handled, 1);
    uint64_t v;
    int rc = ctl_json_get_u64(args, "value", &v);
    if (rc)
        return rc;
    json_object_object_add(*ret, "bytes", json_object_new_uint64(v));
    return 0;
}

static int h_big(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    atomic_fetch_add(&f->handled, 1);
    uint64_t n;
    int rc = ctl_json_get_u64(args, "size", &n);
    if (rc)
        return rc;
    char *data = malloc(n + 1);
    if (!data)
        return vs_fail(ENOMEM, "no memory");
    memset(data, 'x', n);
    data[n] = '\0';
    json_object_object_add(*ret, "data", json_object_new_string(data));
    free(data);
    struct json_object *i;
    if (json_object_object_get_ex(args, "i", &i))
        json_object_object_add(*ret, "i", json_object_get(i));
    return 0;
}

static int h_sleep(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    (void)ret;
    atomic_fetch_add(&f->handled, 1);
    uint64_t ms;
    int rc = ctl_json_get_u64(args, "ms", &ms);
    if (rc)
        return rc;
    usleep((useconds_t)(ms * 1000));
    return 0;
}

/* An event to every negotiated client, before this command's reply. */
static int h_emit(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct fixture *f = ctx;
    (void)ret;
    const char *name;
    int rc = ctl_json_get_string(args, "name", &name);
    if (rc)
        return rc;
    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "n", json_object_new_int(1));
    ctl_server_event(f->srv, name, d);
    return 0;
}

#define NO_ARGS { { NULL, 0, false } }

const struct ctl_command fixture_commands[] = {
    { "echo", h_echo, NO_ARGS, true, "return the arguments" },
    { "fail", h_fail, NO_ARGS, false, "fail with a message" },
    { "silentfail", h_silentfail, NO_ARGS, false, "fail without a message" },
    { "emit", h_emit, { { "name", CTL_ARG_STR, true } }, false, "send an event" },
    { "list", h_list, NO_ARGS, false, "return an array" },
    { "size", h_size, { { "value", CTL_ARG_SIZE, true } }, false, "a size" },
    { "big", h_big, { { "size", CTL_ARG_SIZE, true }, { "i", CTL_ARG_ANY, false } }, false,
      "a large reply" },
    { "sleep", h_sleep, { { "ms", CTL_ARG_INT, true } }, false, "sleep" },
    { NULL, NULL, NO_ARGS, false, NULL },
};

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
    if (ctl_server_open(&f->srv, f->path, fixture_commands, f) != 0) {
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
