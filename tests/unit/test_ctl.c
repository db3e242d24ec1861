/* Unit tests of the control plane's server and client: QMP, client errors. */
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

/* ---- QMP helpers ------------------------------------------------------------------ */

/* Connect, read the greeting and negotiate: the connection is ready for commands. */
static int qmp_open(const char *path)
{
    int fd = raw_connect(path);
    const char *caps = "{\"execute\":\"qmp_capabilities\"}\n";
    raw_send(fd, caps, strlen(caps));
    bool eof;
    char *text = raw_read_lines(fd, 2, &eof);
    assert_false(eof);
    struct json_object *g = line_json(text, 0), *r = line_json(text, 1);
    assert_true(json_object_object_get_ex(g, "QMP", NULL));
    assert_true(json_object_object_get_ex(r, "return", NULL));
    json_object_put(g);
    json_object_put(r);
    free(text);
    return fd;
}

/* Send `data` on a negotiated connection and parse `n` reply lines into out[]. */
static void qmp_exchange(const char *path, const char *data, int n, struct json_object **out)
{
    int fd = qmp_open(path);
    raw_send(fd, data, strlen(data));
    bool eof;
    char *text = raw_read_lines(fd, n, &eof);
    for (int i = 0; i < n; i++)
        out[i] = line_json(text, i);
    free(text);
    close(fd);
}

static struct json_object *ret_of(struct json_object *r)
{
    struct json_object *v;
    if (!json_object_object_get_ex(r, "return", &v))
        fail_msg("expected a return, got %s", json_object_to_json_string(r));
    return v;
}

static const char *err_field(struct json_object *r, const char *key)
{
    struct json_object *e, *v;
    if (!json_object_object_get_ex(r, "error", &e) || !json_object_object_get_ex(e, key, &v))
        fail_msg("expected an error, got %s", json_object_to_json_string(r));
    return json_object_get_string(v);
}

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

    /* A return that is not an object comes back under "return". */
    assert_int_equal(ctl_command(f->path, "list", NULL, &reply, 2000), 0);
    assert_true(reply_ok(reply));
    assert_true(json_object_object_get_ex(reply, "return", &list));
    assert_int_equal(json_object_get_int(json_object_array_get_idx(list, 0)), 7);
    json_object_put(reply);

    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_greeting_and_negotiation(void **state)
{
    struct fixture *f = *state;
    int fd = raw_connect(f->path);
    bool eof;
    char *text = raw_read_lines(fd, 1, &eof);
    assert_non_null(strstr(text, "\r\n")); /* lines end as QEMU's do */
    struct json_object *g = line_json(text, 0), *qmp, *ver, *qemu, *caps;
    free(text);
    assert_true(json_object_object_get_ex(g, "QMP", &qmp));
    assert_true(json_object_object_get_ex(qmp, "version", &ver));
    assert_true(json_object_object_get_ex(ver, "qemu", &qemu));
    assert_true(json_object_object_get_ex(qemu, "major", NULL));
    assert_non_null(strstr(reply_str(ver, "package"), "vmshift"));
    assert_true(json_object_object_get_ex(qmp, "capabilities", &caps));
    assert_true(json_object_is_type(caps, json_type_array));
    json_object_put(g);

    /* Commands before qmp_capabilities are refused, as QEMU does; ids come back as sent. */
    const char *early = "{\"execute\":\"echo\",\"id\":\"a\"}\n"
                        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}"
                        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[]},"
                        "\"id\":{\"n\":1}}\n"
                        "{\"execute\":\"qmp_capabilities\",\"id\":3}\n"
                        "{\"execute\":\"echo\",\"arguments\":{\"k\":\"v\"},\"id\":4}\n";
    raw_send(fd, early, strlen(early));
    text = raw_read_lines(fd, 5, &eof);
    struct json_object *r[5];
    for (int i = 0; i < 5; i++)
        r[i] = line_json(text, i);
    free(text);
    assert_string_equal(err_field(r[0], "class"), "CommandNotFound");
    assert_string_equal(err_field(r[0], "desc"),
                        "Expecting capabilities negotiation with 'qmp_capabilities'");
    assert_string_equal(reply_str(r[0], "id"), "a");
    /* No capability can be enabled ("oob" is not offered); an empty list is fine. */
    assert_non_null(strstr(err_field(r[1], "desc"), "offers no capabilities"));
    json_object_put(r[1]);
    memmove(&r[1], &r[2], 3 * sizeof(r[0]));
    assert_int_equal(json_object_object_length(ret_of(r[1])), 0);
    struct json_object *id;
    assert_true(json_object_object_get_ex(r[1], "id", &id));
    assert_int_equal(reply_int(id, "n"), 1);
    assert_string_equal(err_field(r[2], "class"), "CommandNotFound");
    assert_int_equal(reply_int(r[2], "id"), 3);
    assert_string_equal(reply_str(ret_of(r[3]), "k"), "v");
    assert_int_equal(reply_int(r[3], "id"), 4);
    for (int i = 0; i < 4; i++)
        json_object_put(r[i]);
    close(fd);
    assert_int_equal(atomic_load(&f->handled), 1);
}

static void test_pipelined_requests(void **state)
{
    struct fixture *f = *state;
    /* Two objects back to back without a newline (as some QMP clients send them), then
     * blank lines, a CRLF line and a slash. */
    const char *data = "{\"execute\":\"echo\",\"arguments\":{\"n\":1}}{\"execute\":\"echo\","
                       "\"arguments\":{\"n\":2}}\n   \n\r\n{\"execute\":\"echo\",\"arguments\":"
                       "{\"p\":\"/a/b\"}}\r\n";
    int fd = qmp_open(f->path);
    raw_send(fd, data, strlen(data));
    bool eof;
    char *text = raw_read_lines(fd, 3, &eof);
    assert_false(eof);
    assert_non_null(strstr(text, "\"p\":\"/a/b\"")); /* "/" is not escaped on the wire */
    struct json_object *r[3];
    for (int i = 0; i < 3; i++)
        r[i] = line_json(text, i);
    assert_int_equal(reply_int(ret_of(r[0]), "n"), 1);
    assert_int_equal(reply_int(ret_of(r[1]), "n"), 2);
    assert_string_equal(reply_str(ret_of(r[2]), "p"), "/a/b");
    for (int i = 0; i < 3; i++)
        json_object_put(r[i]);
    free(text);
    close(fd);
    assert_int_equal(atomic_load(&f->handled), 3);
}

static void test_invalid_input(void **state)
{
    struct fixture *f = *state;
    const char *data = "{not json\n[1,2]\n{\"x\":1}\n{\"cmd\":\"status\"}\n{\"execute\":5}\n"
                       "{\"execute\":\"echo\",\"arguments\":[1]}\n{\"arguments\":{}}\n"
                       "{\"execute\":\"frobnicate\",\"id\":9}\n"
                       "{\"execute\":\"echo\",\"arguments\":{\"n\":5}}\n";
    struct json_object *r[9];
    qmp_exchange(f->path, data, 9, r);
    assert_non_null(strstr(err_field(r[0], "desc"), "JSON parse error"));
    assert_string_equal(err_field(r[1], "desc"), "QMP input must be a JSON object");
    assert_string_equal(err_field(r[2], "desc"), "QMP input member 'x' is unexpected");
    assert_non_null(strstr(err_field(r[3], "desc"), "'cmd' is unexpected (this is QMP"));
    assert_string_equal(err_field(r[4], "desc"), "QMP input member 'execute' must be a string");
    assert_string_equal(err_field(r[5], "desc"),
                        "QMP input member 'arguments' must be an object");
    assert_string_equal(err_field(r[6], "desc"), "QMP input lacks member 'execute'");
    for (int i = 0; i < 7; i++)
        assert_string_equal(err_field(r[i], "class"), "GenericError");
    assert_string_equal(err_field(r[7], "class"), "CommandNotFound");
    assert_string_equal(err_field(r[7], "desc"), "The command frobnicate has not been found");
    assert_int_equal(reply_int(r[7], "id"), 9);
    /* The connection stayed usable. */
    assert_int_equal(reply_int(ret_of(r[8]), "n"), 5);
    for (int i = 0; i < 9; i++)
        json_object_put(r[i]);
    assert_int_equal(atomic_load(&f->handled), 1);
}

static void test_argument_schema(void **state)
{
    struct fixture *f = *state;
    const char *data = "{\"execute\":\"size\"}\n"
                       "{\"execute\":\"size\",\"arguments\":{\"value\":1,\"zzz\":2}}\n"
                       "{\"execute\":\"sleep\",\"arguments\":{\"ms\":\"x\"}}\n"
                       "{\"execute\":\"size\",\"arguments\":{\"value\":true}}\n"
                       "{\"execute\":\"size\",\"arguments\":{\"value\":\"4K\"}}\n";
    struct json_object *r[5];
    qmp_exchange(f->path, data, 5, r);
    assert_string_equal(err_field(r[0], "desc"), "Parameter 'value' is missing");
    assert_string_equal(err_field(r[1], "desc"), "Parameter 'zzz' is unexpected");
    assert_string_equal(err_field(r[2], "desc"),
                        "Invalid parameter type for 'ms', expected: integer");
    assert_non_null(strstr(err_field(r[3], "desc"), "Invalid parameter type for 'value'"));
    assert_int_equal(reply_int(ret_of(r[4]), "bytes"), 4096);
    for (int i = 0; i < 5; i++)
        json_object_put(r[i]);
    assert_int_equal(atomic_load(&f->handled), 1); /* only the valid one reached a handler */

    /* query-commands lists the table. */
    qmp_exchange(f->path, "{\"execute\":\"query-commands\"}", 1, r);
    const char *text = json_object_to_json_string_ext(ret_of(r[0]), JSON_C_TO_STRING_PLAIN);
    assert_non_null(strstr(text, "\"name\":\"echo\""));
    assert_non_null(strstr(text, "\"name\":\"qmp_capabilities\""));
    json_object_put(r[0]);
}

static void test_events(void **state)
{
    struct fixture *f = *state;
    /* A client that has not negotiated gets no events. */
    int early = raw_connect(f->path);
    bool eof;
    free(raw_read_lines(early, 1, &eof)); /* the greeting */

    struct ctl_qmp *q;
    assert_int_equal(ctl_qmp_connect(f->path, 2000, &q), 0);
    struct json_object *args = json_object_new_object(), *reply, *ev;
    json_object_object_add(args, "name", json_object_new_string("TEST_EVENT"));
    assert_int_equal(ctl_qmp_execute(q, "emit", args, &reply), 0);
    json_object_put(args);
    assert_non_null(ret_of(reply));
    json_object_put(reply);
    assert_int_equal(ctl_qmp_next_event(q, 2000, &ev), 0);
    assert_string_equal(reply_str(ev, "event"), "TEST_EVENT");
    struct json_object *ts, *data;
    assert_true(json_object_object_get_ex(ev, "timestamp", &ts));
    assert_true(reply_int(ts, "seconds") > 1600000000);
    int64_t us = reply_int(ts, "microseconds");
    assert_true(us >= 0 && us < 1000000);
    assert_true(json_object_object_get_ex(ev, "data", &data));
    assert_int_equal(reply_int(data, "n"), 1);
    json_object_put(ev);
    assert_int_equal(ctl_qmp_next_event(q, 100, &ev), -ETIMEDOUT);
    assert_null(ev);
    ctl_qmp_close(q);

    const char *caps = "{\"execute\":\"qmp_capabilities\"}\n";
    raw_send(early, caps, strlen(caps));
    char *text = raw_read_lines(early, 1, &eof);
    struct json_object *r = line_json(text, 0);
    assert_non_null(ret_of(r)); /* its first line after the greeting: no event */
    json_object_put(r);
    free(text);
    close(early);
}

#define ECHO_HEAD "{\"execute\":\"echo\",\"arguments\":{\"pad\":\""
#define ECHO_TAIL "\"}}"

static char *echo_line_of_size(size_t total) /* a request of exactly `total` bytes + '\n' */
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

static void test_long_requests(void **state)
{
    struct fixture *f = *state;
    /* Exactly CTL_MAX_LINE bytes is fine. */
    char *ok_line = echo_line_of_size(CTL_MAX_LINE);
    struct json_object *r;
    qmp_exchange(f->path, ok_line, 1, &r);
    assert_int_equal(strlen(reply_str(ret_of(r), "pad")),
                     CTL_MAX_LINE - strlen(ECHO_HEAD) - strlen(ECHO_TAIL));
    json_object_put(r);
    free(ok_line);

    /* One byte more: error reply, then the server closes the connection. */
    char *long_line = echo_line_of_size(CTL_MAX_LINE + 1);
    int fd = qmp_open(f->path);
    raw_send(fd, long_line, CTL_MAX_LINE + 2);
    bool eof;
    char *text = raw_read_lines(fd, 1, &eof);
    r = line_json(text, 0);
    assert_string_equal(err_field(r, "desc"),
                        "request too long (more than 65536 bytes); closing the connection");
    json_object_put(r);
    free(text);
    assert_true(raw_wait_eof(fd));
    close(fd);
    free(long_line);

    /* 200 KiB of an unfinished string. */
    size_t big = 200 * 1024;
    char *junk = malloc(big);
    assert_non_null(junk);
    memset(junk, 'a', big);
    junk[0] = '"';
    fd = qmp_open(f->path);
    /* The server may close before taking everything; a short or failed send is fine. */
    size_t off = 0;
    while (off < big) {
        ssize_t n = send(fd, junk + off, big - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    text = raw_read_lines(fd, 1, &eof);
    r = line_json(text, 0);
    assert_non_null(strstr(err_field(r, "desc"), "too long"));
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

static void test_error_propagation(void **state)
{
    struct fixture *f = *state;
    struct json_object *reply = NULL;
    assert_int_equal(ctl_command(f->path, "fail", NULL, &reply, 2000), 0);
    assert_false(reply_ok(reply));
    assert_string_equal(reply_str(reply, "error"), "boom 42");
    assert_string_equal(reply_str(reply, "class"), "GenericError");
    assert_int_equal(json_object_object_length(reply), 3);
    json_object_put(reply);

    assert_int_equal(ctl_command(f->path, "frobnicate", NULL, &reply, 2000), 0);
    assert_false(reply_ok(reply));
    assert_string_equal(reply_str(reply, "error"), "The command frobnicate has not been found");
    assert_string_equal(reply_str(reply, "class"), "CommandNotFound");
    json_object_put(reply);

    /* A failure without a message still gets a useful one. */
    assert_int_equal(ctl_command(f->path, "silentfail", NULL, &reply, 2000), 0);
    assert_false(reply_ok(reply));
    assert_string_equal(reply_str(reply, "error"),
                        "command \"silentfail\" failed: Input/output error");
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

static void test_half_close_last_request(void **state)
{
    struct fixture *f = *state;
    int fd = qmp_open(f->path);
    const char *req = "{\"execute\":\"echo\",\"arguments\":{\"n\":7}}\n"
                      "{\"execute\":\"echo\",\"arguments\":{\"n\":8}}";
    raw_send(fd, req, strlen(req));
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    bool eof;
    char *text = raw_read_lines(fd, 2, &eof);
    struct json_object *r0 = line_json(text, 0), *r1 = line_json(text, 1);
    assert_int_equal(reply_int(ret_of(r0), "n"), 7);
    assert_int_equal(reply_int(ret_of(r1), "n"), 8);
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
        fprintf(m, "{\"execute\":\"big\",\"arguments\":{\"size\":%d,\"i\":%d}}\n", SIZE, i);
    fclose(m);
    int a = qmp_open(f->path);
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
        assert_int_equal(reply_int(ret_of(r), "i"), i);
        assert_int_equal(strlen(reply_str(ret_of(r), "data")), SIZE);
        json_object_put(r);
    }
    free(text);
    close(a);
}

static void test_too_many_clients(void **state)
{
    struct fixture *f = *state;
    int fds[CTL_MAX_CLIENTS];
    /* All 64 are accepted and usable. */
    for (int i = 0; i < CTL_MAX_CLIENTS; i++)
        fds[i] = qmp_open(f->path);
    /* The 65th is refused with an error line and closed. */
    int extra = raw_connect(f->path);
    bool eof;
    char *text = raw_read_lines(extra, 1, &eof);
    struct json_object *r = line_json(text, 0);
    assert_non_null(strstr(err_field(r, "desc"), "too many control connections"));
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
        cmocka_unit_test_setup_teardown(test_greeting_and_negotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_argument_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_propagation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_last_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_does_not_block_others, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_too_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_socket_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
