/* Integration: input for the guest's COM1 reaches the UART's receiver from the control
 * socket (console-input) and from a pipe on stdin, with flow control: the workload guest
 * never reads, so its 1-byte receive buffer (FIFOs off) takes one byte and the rest wait
 * without an overrun; the monitor still quits at once. */
#include "harness.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static struct json_object *console_input(struct vm_proc *p, const char *data, int wait_ms)
{
    struct json_object *args = json_object_new_object();
    if (data)
        json_object_object_add(args, "data", json_object_new_string(data));
    if (wait_ms >= 0)
        json_object_object_add(args, "wait_ms", json_object_new_int(wait_ms));
    struct json_object *r = vm_cmd_any(p, "console-input", args);
    json_object_put(args);
    return r;
}

static uint64_t serial_bytes_in(struct vm_proc *p)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    uint64_t n = (uint64_t)json_num(st, "serial_bytes_in");
    json_object_put(st);
    return n;
}

static void control_socket_input(void **state)
{
    (void)state;
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "16M", "--workload", "idle"));
    assert_int_equal(serial_bytes_in(&p), 0);
    struct json_object *r = console_input(&p, "hello", -1);
    assert_true(json_object_get_boolean(json_member(r, "ok")));
    assert_int_equal(json_num(r, "accepted"), 1);    /* RBR holds one byte */
    assert_int_equal(json_num(r, "length"), 5);
    json_object_put(r);
    assert_int_equal(serial_bytes_in(&p), 1);

    double t0 = now_s();
    r = console_input(&p, "ello", 300);               /* the guest does not read */
    assert_int_equal(json_num(r, "accepted"), 0);
    assert_true(now_s() - t0 >= 0.29);
    json_object_put(r);

    r = console_input(&p, NULL, -1);
    assert_false(json_object_get_boolean(json_member(r, "ok")));
    assert_non_null(strstr(json_str(r, "error"), "Parameter 'data' is missing"));
    json_object_put(r);
    r = console_input(&p, "x", 20000);
    assert_non_null(strstr(json_str(r, "error"), "wait_ms=20000"));
    json_object_put(r);
    assert_int_equal(serial_bytes_in(&p), 1);
    vm_proc_stop(&p);
    assert_int_equal(p.exit_status, 0);
}

/* `vmshift run --serial stdout` with a pipe on stdin and stdout to a file. */
static void start_with_stdin_pipe(struct vm_proc *p, int *pipe_w)
{
    memset(p, 0, sizeof(*p));
    harness_temp_dir(p->dir, sizeof(p->dir));
    snprintf(p->sock, sizeof(p->sock), "%s/ctl.sock", p->dir);
    snprintf(p->serial, sizeof(p->serial), "%s/serial.log", p->dir);
    snprintf(p->stderr_path, sizeof(p->stderr_path), "%s/stderr.log", p->dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int out = open(p->serial, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(p->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || err < 0)
            _exit(126);
        dup2(fds[0], 0);
        dup2(out, 1);
        dup2(err, 2);
        close(fds[1]);
        execl(VMSHIFT_BIN, VMSHIFT_BIN, "run", "--mem", "16M", "--workload", "idle",
              "--serial", "stdout", "--ctl", p->sock, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    *pipe_w = fds[1];
    vm_proc_wait_ctl(p, 60);
}

static void stdin_pipe_input(void **state)
{
    (void)state;
    struct vm_proc p;
    int w;
    start_with_stdin_pipe(&p, &w);
    assert_int_equal(write(w, "typed\n", 6), 6);
    double deadline = now_s() + 20;
    while (serial_bytes_in(&p) < 1 && now_s() < deadline)
        usleep(50000);
    assert_int_equal(serial_bytes_in(&p), 1);
    usleep(300000);
    assert_int_equal(serial_bytes_in(&p), 1);    /* the rest waits: no overrun */
    /* the control socket competes for the same room */
    struct json_object *r = console_input(&p, "z", 0);
    assert_int_equal(json_num(r, "accepted"), 0);
    json_object_put(r);
    double t0 = now_s();
    vm_proc_stop(&p);                             /* the stdin thread is waiting for room */
    assert_true(now_s() - t0 < 5);
    assert_int_equal(p.exit_status, 0);
    close(w);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(control_socket_input),
        cmocka_unit_test(stdin_pipe_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
