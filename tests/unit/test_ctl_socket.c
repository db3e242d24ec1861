/* Unit tests of the control socket's file: a live path refused, a stale one replaced, the
 * path never there without a listener, open errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"

#include <dirent.h>
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

/* ---- tests: server open/close --------------------------------------------------- */

static int h_hello(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ctx, (void)args;
    json_object_object_add(*ret, "from", json_object_new_string("hello"));
    return 0;
}

static const struct ctl_command dummy_handler[] = {
    { "hello", h_hello, { { NULL, 0, false } }, false, "say hello" },
    { NULL, NULL, { { NULL, 0, false } }, false, NULL },
};

static void test_second_server_on_live_path(void **state)
{
    struct fixture *f = *state;
    struct ctl_server *s2 = (struct ctl_server *)1;
    char expect[300];
    int rc = ctl_server_open(&s2, f->path, dummy_handler, NULL);
    assert_int_equal(rc, -EADDRINUSE);
    assert_null(s2);
    snprintf(expect, sizeof(expect),
             "control socket %s is in use by another process; choose another --ctl path",
             f->path);
    assert_string_equal(vs_last_error(), expect);
    /* The first server is unharmed. */
    struct json_object *reply;
    assert_int_equal(ctl_command(f->path, "echo", NULL, &reply, 2000), 0);
    assert_true(reply_ok(reply));
    json_object_put(reply);
}

static void test_stale_socket_replaced(void **state)
{
    struct fixture *f = *state;
    char path[200];
    snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
    /* A socket file with nobody listening, as left by a crashed VM. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    assert_true(strlen(path) < sizeof(a.sun_path));
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);

    struct ctl_server *s2;
    assert_int_equal(ctl_server_open(&s2, path, dummy_handler, NULL), 0);
    /* Serve one request single-threaded: the client's bytes wait in the socket buffers. */
    int c = raw_connect(path);
    const char *req = "{\"execute\":\"qmp_capabilities\"}{\"execute\":\"hello\"}\n";
    raw_send(c, req, strlen(req));
    for (int i = 0; i < 5; i++)
        assert_int_equal(ctl_server_poll(s2, 20), 0);
    bool eof;
    char *text = raw_read_lines(c, 3, &eof); /* greeting, capabilities, hello */
    struct json_object *r = line_json(text, 2), *ret;
    assert_true(json_object_object_get_ex(r, "return", &ret));
    assert_string_equal(reply_str(ret, "from"), "hello");
    json_object_put(r);
    free(text);
    close(c);
    assert_int_equal(ctl_server_poll(s2, 0), 0);
    ctl_server_close(s2);
    /* close unlinks the path. */
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
}

/* A client that waits for the socket path to appear and connects at once: it must never
 * be refused (bind() and listen() happen under a temporary name, renamed into place), and
 * no temporary name is left behind. One connection per server, made while it is open. */
struct appear_watch {
    const char *path;
    atomic_int round, acked; /* the main thread starts round N; the watcher acks N */
    atomic_bool stop;
    atomic_int refused;
};

static void *watch_and_connect(void *arg)
{
    struct appear_watch *w = arg;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, w->path, strlen(w->path) + 1);
    int done = 0;
    while (!atomic_load(&w->stop)) {
        int r = atomic_load(&w->round);
        struct stat st;
        if (r == done || lstat(w->path, &st) != 0)
            continue;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            atomic_fetch_add(&w->refused, 1);
        close(fd);
        done = r;
        atomic_store(&w->acked, r);
    }
    return NULL;
}

static void test_socket_appears_listening(void **state)
{
    struct fixture *f = *state;
    char path[200];
    snprintf(path, sizeof(path), "%s/x.sock", f->dir);
    struct appear_watch w = { .path = path };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, watch_and_connect, &w), 0);
    int rounds = 1000;
    for (int i = 1; i <= rounds; i++) {
        atomic_store(&w.round, i);
        struct ctl_server *s;
        assert_int_equal(ctl_server_open(&s, path, dummy_handler, NULL), 0);
        for (int k = 0; k < 5000 && atomic_load(&w.acked) != i; k++)
            usleep(100);
        assert_int_equal(atomic_load(&w.acked), i);
        ctl_server_close(s);
    }
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&w.refused), 0);
    /* Only the fixture's socket is left in the directory. */
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    closedir(d);
    assert_int_equal(entries, 1);
}

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct ctl_server *s2;
    char path[300], expect[600];

    /* A regular file is never deleted. */
    snprintf(path, sizeof(path), "%s/file", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("keep me", fp);
    fclose(fp);
    assert_int_equal(ctl_server_open(&s2, path, dummy_handler, NULL), -EEXIST);
    assert_non_null(strstr(vs_last_error(), "exists and is not a socket"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 7);

    /* A missing directory. */
    snprintf(path, sizeof(path), "%s/no/such/dir/x.sock", f->dir);
    assert_int_equal(ctl_server_open(&s2, path, dummy_handler, NULL), -ENOENT);
    snprintf(expect, sizeof(expect),
             "cannot create control socket %s: directory %s/no/such/dir does not exist; "
             "create it or choose another --ctl path",
             path, f->dir);
    assert_string_equal(vs_last_error(), expect);

    /* Too long for sun_path. */
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(ctl_server_open(&s2, longp, dummy_handler, NULL), -ENAMETOOLONG);
    assert_non_null(strstr(vs_last_error(), "is too long (199 bytes, the limit is 107)"));
    struct json_object *reply;
    assert_int_equal(ctl_command(longp, "x", NULL, &reply, 100), -ENAMETOOLONG);

    assert_int_equal(ctl_server_open(&s2, "", dummy_handler, NULL), -EINVAL);
    assert_non_null(strstr(vs_last_error(), "empty"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* belt and braces: the code under test uses MSG_NOSIGNAL */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_server_on_live_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_appears_listening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
