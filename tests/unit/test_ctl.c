/* Unit tests of the control plane's server and client: the protocol, client errors. */
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

/* ---- tests: protocol ------------------------------------------------------------ */

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "a", json_object_new_int(1));
    json_object_object_add(args, "s", json_object_new_string("x/y"));
    struct json_object *reply = NULL;
    assert_int_equal(ctl_command(f->path, "echo", args, &reply, 2000), 0);
    assert_non_null(reply);
    assert_true(reply_ok(reply));
    assert_int_equal(reply_int(reply, "a"), 1);
    assert_string_equal(reply_str(reply, "s"), "x/y");
    assert_false(json_object_object_get_ex(reply, "cmd", NULL));
    json_object_put(reply);
    json_object_put(args);

    /* ctl_request with a hand-built request, and the socket mode. */
    struct json_object *req = json_tokener_parse("{\"cmd\":\"echo\",\"list\":[1,2]}");
    assert_int_equal(ctl_request(f->path, req, &reply, 2000), 0);
    assert_true(reply_ok(reply));
    struct json_object *list;
    assert_true(json_object_object_get_ex(reply, "list", &list));
    assert_int_equal(json_object_array_length(list), 2);
    json_object_put(reply);
    json_object_put(req);

    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_pipelined_requests(void **state)
{
    struct fixture *f = *state;
    /* Two requests in one write; then a blank line, a CRLF line and a slash. */
    const char *two = "{\"cmd\":\"echo\",\"n\":1}\n{\"cmd\":\"echo\",\"n\":2}\n";
    int fd = raw_connect(f->path);
    raw_send(fd, two, strlen(two));
    bool eof;
    char *text = raw_read_lines(fd, 2, &eof);
    assert_false(eof);
    struct json_object *r0 = line_json(text, 0), *r1 = line_json(text, 1);
    assert_true(reply_ok(r0));
    assert_true(reply_ok(r1));
    assert_int_equal(reply_int(r0, "n"), 1);
    assert_int_equal(reply_int(r1, "n"), 2);
    json_object_put(r0);
    json_object_put(r1);
    free(text);

    const char *more = "\n   \n{\"cmd\":\"echo\",\"n\":3}\r\n{\"cmd\":\"echo\",\"p\":\"/a/b\"}\n";
    raw_send(fd, more, strlen(more));
    text = raw_read_lines(fd, 2, &eof);
    assert_false(eof);
    /* "/" is not escaped on the wire. */
    assert_non_null(strstr(text, "\"p\":\"/a/b\""));
    r0 = line_json(text, 0);
    r1 = line_json(text, 1);
    assert_int_equal(reply_int(r0, "n"), 3);
    assert_string_equal(reply_str(r1, "p"), "/a/b");
    /* Exactly two replies: blank lines got none. */
    assert_null(strchr(strchr(strchr(text, '\n') + 1, '\n') + 1, '\n'));
    json_object_put(r0);
    json_object_put(r1);
    free(text);
    close(fd);
    assert_int_equal(atomic_load(&f->handled), 4);
}

static void test_invalid_json(void **state)
{
    struct fixture *f = *state;
    const char *data = "{not json\n{\"cmd\":\"echo\",\"a\":1} trailing\n{\"a\":\"\xff\"}\n"
                       "{\"cmd\":\"echo\",\"n\":5}\n";
    struct json_object *r[4];
    raw_exchange(f->path, data, strlen(data), 4, r, false);
    for (int i = 0; i < 3; i++) {
        assert_false(reply_ok(r[i]));
        assert_non_null(strstr(reply_str(r[i], "error"), "invalid JSON request"));
    }
    /* The connection stayed usable. */
    assert_true(reply_ok(r[3]));
    assert_int_equal(reply_int(r[3], "n"), 5);
    for (int i = 0; i < 4; i++)
        json_object_put(r[i]);

    /* An unfinished object and an embedded NUL byte. */
    const char nul[] = "{\"cmd\":\n{\"cmd\":\"echo\"\0}\n";
    struct json_object *r2[2];
    raw_exchange(f->path, nul, sizeof(nul) - 1, 2, r2, false);
    assert_non_null(strstr(reply_str(r2[0], "error"), "ends inside a value"));
    assert_non_null(strstr(reply_str(r2[1], "error"), "NUL byte"));
    json_object_put(r2[0]);
    json_object_put(r2[1]);
    assert_int_equal(atomic_load(&f->handled), 1);
}

static void test_non_object_and_missing_cmd(void **state)
{
    struct fixture *f = *state;
    const char *data = "[1,2]\n42\n\"status\"\nnull\n{\"x\":1}\n{\"cmd\":5}\n{\"cmd\":null}\n";
    struct json_object *r[7];
    raw_exchange(f->path, data, strlen(data), 7, r, false);
    for (int i = 0; i < 7; i++)
        assert_false(reply_ok(r[i]));
    assert_string_equal(reply_str(r[0], "error"),
                        "invalid request: expected a JSON object like {\"cmd\": \"status\"}, "
                        "got an array");
    assert_non_null(strstr(reply_str(r[1], "error"), "got a int"));
    assert_non_null(strstr(reply_str(r[2], "error"), "got a string"));
    assert_non_null(strstr(reply_str(r[3], "error"), "expected a JSON object"));
    assert_non_null(strstr(reply_str(r[3], "error"), "got null"));
    assert_non_null(strstr(reply_str(r[4], "error"), "missing \"cmd\" field"));
    assert_non_null(strstr(reply_str(r[5], "error"), "\"cmd\" must be a string"));
    assert_non_null(strstr(reply_str(r[6], "error"), "\"cmd\" must be a string"));
    for (int i = 0; i < 7; i++)
        json_object_put(r[i]);
    assert_int_equal(atomic_load(&f->handled), 0);
}

#define ECHO_HEAD "{\"cmd\":\"echo\",\"pad\":\""
#define ECHO_TAIL "\"}"

static char *echo_line_of_size(size_t total) /* a request line of exactly `total` bytes */
{
    const char *head = ECHO_HEAD, *tail = ECHO_TAIL;
    size_t fixed = strlen(head) + strlen(tail);
    assert_true(total > fixed);
    char *line = malloc(total + 2);
    assert_non_null(line);
    strcpy(line, head);
    memset(line + strlen(head), 'p', total - fixed);
    strcpy(line + total - strlen(tail), tail);
    line[total] = '\n';
    line[total + 1] = '\0';
    return line;
}

static void test_long_lines(void **state)
{
    struct fixture *f = *state;
    /* Exactly CTL_MAX_LINE bytes is fine. */
    char *ok_line = echo_line_of_size(CTL_MAX_LINE);
    struct json_object *r;
    raw_exchange(f->path, ok_line, CTL_MAX_LINE + 1, 1, &r, false);
    assert_true(reply_ok(r));
    assert_int_equal(strlen(reply_str(r, "pad")),
                     CTL_MAX_LINE - strlen(ECHO_HEAD) - strlen(ECHO_TAIL));
    json_object_put(r);
    free(ok_line);

    /* One byte more: error reply, then the server closes the connection. */
    char *long_line = echo_line_of_size(CTL_MAX_LINE + 1);
    raw_exchange(f->path, long_line, CTL_MAX_LINE + 2, 1, &r, true);
    assert_false(reply_ok(r));
    assert_string_equal(reply_str(r, "error"),
                        "request line too long (more than 65536 bytes); closing the "
                        "connection");
    json_object_put(r);
    free(long_line);

    /* 200 KiB of junk with no newline at all. */
    size_t big = 200 * 1024;
    char *junk = malloc(big);
    assert_non_null(junk);
    memset(junk, 'a', big);
    int fd = raw_connect(f->path);
    /* The server may close before taking everything; a short or failed send is fine. */
    size_t off = 0;
    while (off < big) {
        ssize_t n = send(fd, junk + off, big - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    bool eof;
    char *text = raw_read_lines(fd, 1, &eof);
    r = line_json(text, 0);
    assert_non_null(strstr(reply_str(r, "error"), "too long"));
    json_object_put(r);
    free(text);
    assert_true(raw_wait_eof(fd));
    close(fd);
    free(junk);

    /* The server still serves others. */
    struct json_object *reply;
    assert_int_equal(ctl_command(f->path, "echo", NULL, &reply, 2000), 0);
    assert_true(reply_ok(reply));
    json_object_put(reply);
}

static void test_ok_false_propagation(void **state)
{
    struct fixture *f = *state;
    struct json_object *reply = NULL;
    assert_int_equal(ctl_command(f->path, "fail", NULL, &reply, 2000), 0);
    assert_false(reply_ok(reply));
    assert_string_equal(reply_str(reply, "error"), "boom 42");
    assert_int_equal(json_object_object_length(reply), 2);
    json_object_put(reply);

    assert_int_equal(ctl_command(f->path, "frobnicate", NULL, &reply, 2000), 0);
    assert_false(reply_ok(reply));
    assert_string_equal(reply_str(reply, "error"),
                        "unknown command \"frobnicate\"; try echo or fail");
    json_object_put(reply);

    /* A failure without a message still gets a useful one. */
    assert_int_equal(ctl_command(f->path, "silentfail", NULL, &reply, 2000), 0);
    assert_false(reply_ok(reply));
    assert_string_equal(reply_str(reply, "error"),
                        "command \"silentfail\" failed: Input/output error");
    json_object_put(reply);

    /* A handler cannot override "ok". */
    assert_int_equal(ctl_command(f->path, "setok", NULL, &reply, 2000), 0);
    assert_true(reply_ok(reply));
    assert_int_equal(reply_int(reply, "x"), 1);
    json_object_put(reply);

    /* Handler-side ctl_json_get_u64 errors travel back. */
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "value", json_object_new_string("4X"));
    assert_int_equal(ctl_command(f->path, "size", args, &reply, 2000), 0);
    assert_false(reply_ok(reply));
    assert_non_null(strstr(reply_str(reply, "error"), "field \"value\""));
    assert_non_null(strstr(reply_str(reply, "error"), "'4X'"));
    json_object_put(reply);
    json_object_object_add(args, "value", json_object_new_string("512M"));
    assert_int_equal(ctl_command(f->path, "size", args, &reply, 2000), 0);
    assert_true(reply_ok(reply));
    assert_int_equal(reply_int(reply, "bytes"), 512 << 20);
    json_object_put(reply);
    json_object_put(args);
}

static void test_half_close_last_line(void **state)
{
    struct fixture *f = *state;
    int fd = raw_connect(f->path);
    const char *req = "{\"cmd\":\"echo\",\"n\":7}\n{\"cmd\":\"echo\",\"n\":8}";
    raw_send(fd, req, strlen(req));
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    bool eof;
    char *text = raw_read_lines(fd, 2, &eof);
    struct json_object *r0 = line_json(text, 0), *r1 = line_json(text, 1);
    assert_int_equal(reply_int(r0, "n"), 7);
    assert_int_equal(reply_int(r1, "n"), 8);
    json_object_put(r0);
    json_object_put(r1);
    free(text);
    assert_true(raw_wait_eof(fd));
    close(fd);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_slow_reader_does_not_block_others(void **state)
{
    struct fixture *f = *state;
    /* Client A queues 2 MB of replies and does not read them. */
    enum { N = 20, SIZE = 100000 };
    char *reqs = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&reqs, &len);
    for (int i = 0; i < N; i++)
        fprintf(m, "{\"cmd\":\"big\",\"size\":%d,\"i\":%d}\n", SIZE, i);
    fclose(m);
    int a = raw_connect(f->path);
    raw_send(a, reqs, len);
    free(reqs);
    usleep(100 * 1000);

    /* Client B is served promptly meanwhile. */
    double t0 = now_s();
    struct json_object *reply;
    assert_int_equal(ctl_command(f->path, "echo", NULL, &reply, 1000), 0);
    assert_true(reply_ok(reply));
    json_object_put(reply);
    assert_true(now_s() - t0 < 1.0);

    /* A then gets every reply, complete and in order. */
    bool eof;
    char *text = raw_read_lines(a, N, &eof);
    assert_false(eof);
    for (int i = 0; i < N; i++) {
        struct json_object *r = line_json(text, i);
        assert_true(reply_ok(r));
        assert_int_equal(reply_int(r, "i"), i);
        assert_int_equal(strlen(reply_str(r, "data")), SIZE);
        json_object_put(r);
    }
    free(text);
    close(a);
}

static void test_too_many_clients(void **state)
{
    struct fixture *f = *state;
    int fds[CTL_MAX_CLIENTS];
    for (int i = 0; i < CTL_MAX_CLIENTS; i++)
        fds[i] = raw_connect(f->path);
    /* Make sure all 64 are accepted and usable. */
    for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
        const char *req = "{\"cmd\":\"echo\"}\n";
        raw_send(fds[i], req, strlen(req));
        bool eof;
        char *text = raw_read_lines(fds[i], 1, &eof);
        struct json_object *r = line_json(text, 0);
        assert_true(reply_ok(r));
        json_object_put(r);
        free(text);
    }
    /* The 65th is refused with an error line and closed. */
    int extra = raw_connect(f->path);
    bool eof;
    char *text = raw_read_lines(extra, 1, &eof);
    struct json_object *r = line_json(text, 0);
    assert_false(reply_ok(r));
    assert_non_null(strstr(reply_str(r, "error"), "too many control connections"));
    json_object_put(r);
    free(text);
    assert_true(raw_wait_eof(extra));
    close(extra);

    /* After one leaves, a new client gets in. */
    close(fds[0]);
    usleep(100 * 1000);
    struct json_object *reply;
    assert_int_equal(ctl_command(f->path, "echo", NULL, &reply, 2000), 0);
    assert_true(reply_ok(reply));
    json_object_put(reply);
    for (int i = 1; i < CTL_MAX_CLIENTS; i++)
        close(fds[i]);
}

/* ---- tests: client errors ------------------------------------------------------- */

static void test_missing_socket_message(void **state)
{
    struct fixture *f = *state;
    char path[200], expect[600];
    snprintf(path, sizeof(path), "%s/nope.sock", f->dir);
    struct json_object *reply = (struct json_object *)1;
    int rc = ctl_command(path, "status", NULL, &reply, 1000);
    assert_int_equal(rc, -ENOENT);
    assert_null(reply);
    snprintf(expect, sizeof(expect),
             "cannot connect to control socket %s: No such file or directory; is the VM "
             "running (vmshift run --ctl %s)?",
             path, path);
    assert_string_equal(vs_last_error(), expect);
}

static void test_client_timeout(void **state)
{
    struct fixture *f = *state;
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "ms", json_object_new_int(400));
    struct json_object *reply;
    double t0 = now_s();
    int rc = ctl_command(f->path, "sleep", args, &reply, 100);
    double dt = now_s() - t0;
    assert_int_equal(rc, -ETIMEDOUT);
    assert_null(reply);
    assert_true(dt >= 0.09 && dt < 0.4);
    assert_non_null(strstr(vs_last_error(), "no reply from control socket"));
    assert_non_null(strstr(vs_last_error(), "within 100 ms"));
    /* With enough time it works. */
    assert_int_equal(ctl_command(f->path, "sleep", args, &reply, 3000), 0);
    assert_true(reply_ok(reply));
    json_object_put(reply);
    json_object_put(args);

    /* "cmd" in the args is refused client-side; non-object requests too. */
    args = json_object_new_object();
    json_object_object_add(args, "cmd", json_object_new_string("x"));
    assert_int_equal(ctl_command(f->path, "echo", args, &reply, 1000), -EINVAL);
    json_object_put(args);
    struct json_object *arr = json_object_new_array();
    assert_int_equal(ctl_request(f->path, arr, &reply, 1000), -EINVAL);
    json_object_put(arr);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* belt and braces: the code under test uses MSG_NOSIGNAL */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_object_and_missing_cmd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ok_false_propagation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_last_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_does_not_block_others, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_too_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_socket_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
