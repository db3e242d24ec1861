/* Integration: every vmshift process stops cleanly on SIGTERM and on SIGINT, in every
 * state, within a few seconds, with exit status 128 + the signal, a message that says
 * what was stopped, and its sockets and port file gone: `vmshift receive` waiting, in
 * the middle of a migration (the source rolls back and runs on: exactly one VM), and
 * with its VM running; `vmshift run`, also while it migrates (cancelled first);
 * `vmshift migrate` during a migration (cancelled:
 * the source runs on); vmshiftd. */
#include "harness.h"
#include "host_harness.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define STOP_LIMIT_S 5.0   /* "within a few seconds" */

static const char *file_text(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static void assert_logged(const char *path, const char *text)
{
    const char *log = file_text(path);
    if (!strstr(log, text))
        fail_msg("expected \"%s\" in %s:\n%s", text, path, log);
}

/* Signal p and check that it exits within STOP_LIMIT_S with 128 + sig. */
static void stop_with(struct vm_proc *p, int sig)
{
    double t0 = now_s();
    assert_int_equal(kill(p->pid, sig), 0);
    int status = vm_proc_wait_exit(p, STOP_LIMIT_S);
    print_message("%s: exit status %d after %.2f s\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                  status, now_s() - t0);
    if (status != 128 + sig) {
        print_message("%s\n", file_text(p->stderr_path));
        fail_msg("exit status %d, expected %d", status, 128 + sig);
    }
}

static void assert_gone(const char *path, const char *what)
{
    if (access(path, F_OK) == 0)
        fail_msg("%s %s is still there", what, path);
}

/* Nothing listens on 127.0.0.1:port any more. */
static void assert_port_closed(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (rc == 0)
        fail_msg("port %d still accepts connections", port);
}

static void assert_receiver_cleaned_up(struct vm_proc *p)
{
    char port_file[160];
    snprintf(port_file, sizeof(port_file), "%s/port", p->dir);
    assert_gone(port_file, "the port file");
    assert_gone(p->sock, "the control socket");
    assert_port_closed(p->port);
}

/* The source runs on: running state, the verify counters advance, no bad page. */
static void assert_source_runs(struct vm_proc *src)
{
    struct json_object *st = vm_cmd(src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    st = wait_guest_at_least(src, "passes", passes + 2, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
}

static void sig_name_test(int sig, const char **name)
{
    *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
}

/* --- vmshift receive, waiting for a source ------------------------------------------ */

static void receive_waiting(int sig)
{
    struct vm_proc dst;
    const char *name;
    sig_name_test(sig, &name);
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    usleep(200000);
    stop_with(&dst, sig);
    char want[96];
    snprintf(want, sizeof(want), "stopped by %s while waiting for an incoming VM", name);
    assert_logged(dst.stderr_path, want);
    assert_receiver_cleaned_up(&dst);
    vm_proc_stop(&dst);
}

static void receive_waiting_sigterm(void **state) { (void)state; receive_waiting(SIGTERM); }

/* A peer connected and silent: the receiver waits for its TLS handshake (up to
 * --handshake-timeout, 10 s by default); the signal ends that wait too. */
static void receive_waiting_in_a_handshake(void **state)
{
    (void)state;
    struct vm_proc dst;
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)dst.port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    usleep(300000);
    stop_with(&dst, SIGTERM);
    close(fd);
    assert_logged(dst.stderr_path, "stopped by SIGTERM while waiting for an incoming VM");
    assert_receiver_cleaned_up(&dst);
    vm_proc_stop(&dst);
}
static void receive_waiting_sigint(void **state) { (void)state; receive_waiting(SIGINT); }

/* --- vmshift receive, in the middle of a migration ---------------------------------- */

static void receive_mid_migration(int sig)
{
    struct vm_proc src, dst;
    const char *name;
    sig_name_test(sig, &name);
    vm_migrate_start_slow(&src, &dst);
    stop_with(&dst, sig);
    char want[96];
    snprintf(want, sizeof(want), "stopped by %s during the incoming migration", name);
    assert_logged(dst.stderr_path, want);
    assert_receiver_cleaned_up(&dst);
    /* The source rolled back, says why, and runs the only VM. */
    struct json_object *m = vm_migration_wait(&src, 30);
    assert_string_equal(json_str(m, "status"), "failed");
    print_message("the source's error: %s\n", json_str(m, "error"));
    snprintf(want, sizeof(want), "stopped by %s", name);
    if (!strstr(json_str(m, "error"), want))
        fail_msg("the source's error does not say the destination was stopped: %s",
                 json_str(m, "error"));
    json_object_put(m);
    assert_source_runs(&src);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void receive_mid_migration_sigterm(void **state)
{
    (void)state;
    receive_mid_migration(SIGTERM);
}

static void receive_mid_migration_sigint(void **state)
{
    (void)state;
    receive_mid_migration(SIGINT);
}

/* Stopped in the commit window, after its copy was verified and before it claimed the VM
 * (held there by a 2 s stall at the fault point dst.verified): it never claims it, tells
 * the source, and the source resumes the VM. */
static void receive_verified_sigterm(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "16M", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    harness_child_env("VMSHIFT_FAULT=dst.verified:0:stall=2000");
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    vm_migrate_start(&src, to, NULL);
    for (int i = 0; i < 600 && !strstr(file_text(dst.stderr_path), "fault injected"); i++)
        usleep(20000);
    assert_non_null(strstr(file_text(dst.stderr_path), "fault injected"));
    stop_with(&dst, SIGTERM);
    assert_logged(dst.stderr_path, "stopped by SIGTERM during the incoming migration");
    if (strstr(file_text(dst.stderr_path), "starting its vCPUs"))
        fail_msg("the stopped receiver started the VM");
    assert_receiver_cleaned_up(&dst);
    struct json_object *m = vm_migration_wait(&src, 30);
    print_message("the source: %s: %s\n", json_str(m, "status"), json_str(m, "error"));
    assert_string_equal(json_str(m, "status"), "failed");
    json_object_put(m);
    assert_source_runs(&src);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

/* --- vmshift receive, its VM running ------------------------------------------------ */

static void receive_running(int sig)
{
    struct vm_proc src, dst;
    const char *name;
    sig_name_test(sig, &name);
    vm_proc_start(&src, ARGS("--mem", "16M", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *m = vm_migrate(&src, to, NULL, 60);
    assert_string_equal(json_str(m, "status"), "completed");
    json_object_put(m);
    vm_proc_wait_ctl(&dst, 10);
    json_object_put(wait_guest_at_least(&dst, "passes", 1, 60));
    stop_with(&dst, sig);
    char want[96];
    snprintf(want, sizeof(want), "vmshift receive: stopped by %s: the VM was stopped", name);
    assert_logged(dst.stderr_path, want);
    assert_receiver_cleaned_up(&dst);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void receive_running_sigterm(void **state) { (void)state; receive_running(SIGTERM); }
static void receive_running_sigint(void **state) { (void)state; receive_running(SIGINT); }

/* --- vmshift run -------------------------------------------------------------------- */

static void run_running(int sig)
{
    struct vm_proc src;
    const char *name;
    sig_name_test(sig, &name);
    vm_proc_start(&src, ARGS("--mem", "16M", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    stop_with(&src, sig);
    char want[96];
    snprintf(want, sizeof(want), "vmshift run: stopped by %s: the VM was stopped", name);
    assert_logged(src.stderr_path, want);
    assert_gone(src.sock, "the control socket");
    vm_proc_stop(&src);
}

/* The source stopped while it migrates: the migration is cancelled first (the destination
 * discards its copy and exits), then the VM stops: the operator asked for no VM. */
static void run_mid_migration(int sig)
{
    struct vm_proc src, dst;
    const char *name;
    sig_name_test(sig, &name);
    vm_migrate_start_slow(&src, &dst);
    stop_with(&src, sig);
    char want[160];
    snprintf(want, sizeof(want), "vmshift run: stopped by %s: the VM was stopped; the "
             "migration to 127.0.0.1:%d was cancelled first", name, dst.port);
    assert_logged(src.stderr_path, want);
    assert_gone(src.sock, "the control socket");
    assert_int_equal(vm_proc_wait_exit(&dst, 10), 1);   /* discarded: no VM runs */
    assert_receiver_cleaned_up(&dst);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void run_mid_migration_sigterm(void **state)
{
    (void)state;
    run_mid_migration(SIGTERM);
}

static void run_sigterm(void **state) { (void)state; run_running(SIGTERM); }
static void run_sigint(void **state) { (void)state; run_running(SIGINT); }

/* --- vmshift migrate, during a migration -------------------------------------------- */

static void migrate_client(int sig)
{
    struct vm_proc src, dst;
    const char *name;
    sig_name_test(sig, &name);
    vm_proc_start(&src, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64], log[128];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    snprintf(log, sizeof(log), "%s/migrate.err", src.dir);
    const char *pre[16] = { "migrate", src.sock, "--to", to, "--downtime-limit", "0",
                            "--max-passes", "1000", "--max-bandwidth", "16M", "--quiet" };
    const char *const *sec = harness_security_args(true);
    int n = 11;
    for (int i = 0; sec[i]; i++)
        pre[n++] = sec[i];
    pre[n] = NULL;
    struct vm_proc client = { .pid = harness_spawn(VMSHIFT_BIN, NULL, NULL, log, pre) };
    snprintf(client.stderr_path, sizeof(client.stderr_path), "%s", log);
    /* migrate-status answers once the client has started the migration */
    for (int i = 0; i < 200; i++) {
        struct json_object *r = vm_cmd_any(&src, "migrate-status", NULL), *ok;
        bool started = json_object_object_get_ex(r, "ok", &ok) && json_object_get_boolean(ok);
        json_object_put(r);
        if (started)
            break;
        usleep(50000);
    }
    vm_migration_wait_under_way(&src);
    stop_with(&client, sig);
    char want[96];
    snprintf(want, sizeof(want), "vmshift migrate: stopped by %s: cancelled the migration",
             name);
    assert_logged(log, want);
    struct json_object *m = vm_migration_wait(&src, 30);
    assert_string_equal(json_str(m, "status"), "cancelled");
    json_object_put(m);
    assert_source_runs(&src);
    /* the destination discarded its copy: exactly one VM */
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void migrate_sigterm(void **state) { (void)state; migrate_client(SIGTERM); }
static void migrate_sigint(void **state) { (void)state; migrate_client(SIGINT); }

/* --- vmshiftd ----------------------------------------------------------------------- */

static void vmshiftd_stop(int sig)
{
    struct host_proc h;
    const char *name;
    sig_name_test(sig, &name);
    host_proc_start(&h, "a", NULL, "127.0.0.1", NULL);
    host_vm_start_wait(&h, "vm1", (const char *const[]){ "mem=16M", NULL });
    struct json_object *v = host_vm_entry(&h, "vm1");
    assert_non_null(v);
    pid_t vm_pid = (pid_t)json_num(v, "pid");
    json_object_put(v);
    assert_true(vm_pid > 0);
    struct vm_proc d = { .pid = h.pid };
    snprintf(d.stderr_path, sizeof(d.stderr_path), "%s", h.stderr_path);
    stop_with(&d, sig);
    h.pid = 0;
    char want[96];
    snprintf(want, sizeof(want), "vmshiftd: stopped by %s: stopped 1 VM(s)", name);
    assert_logged(h.stderr_path, want);
    assert_gone(h.sock, "vmshiftd's control socket");
    assert_int_equal(kill(vm_pid, 0), -1);   /* its VM was stopped with it */
    host_proc_stop(&h);
}

static void vmshiftd_sigterm(void **state) { (void)state; vmshiftd_stop(SIGTERM); }
static void vmshiftd_sigint(void **state) { (void)state; vmshiftd_stop(SIGINT); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(receive_waiting_sigterm),
        cmocka_unit_test(receive_waiting_sigint),
        cmocka_unit_test(receive_waiting_in_a_handshake),
        cmocka_unit_test(receive_mid_migration_sigterm),
        cmocka_unit_test(receive_mid_migration_sigint),
        cmocka_unit_test(receive_verified_sigterm),
        cmocka_unit_test(receive_running_sigterm),
        cmocka_unit_test(receive_running_sigint),
        cmocka_unit_test(run_sigterm),
        cmocka_unit_test(run_sigint),
        cmocka_unit_test(run_mid_migration_sigterm),
        cmocka_unit_test(migrate_sigterm),
        cmocka_unit_test(migrate_sigint),
        cmocka_unit_test(vmshiftd_sigterm),
        cmocka_unit_test(vmshiftd_sigint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
