#include "harness.h"
#include "ctl/ctl_client.h"
#include "transport/tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VMSHIFT_TEST_FILTER=PATTERN: run only the tests of this binary whose names match
 * (cmocka's pattern, with * and ?), when working on one of them. */
__attribute__((constructor)) static void filter_tests_from_env(void)
{
    const char *f = getenv("VMSHIFT_TEST_FILTER");
    if (f && *f)
        cmocka_set_test_filter(f);
}

void require_kvm(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fail_msg("/dev/kvm cannot be opened (%s): the integration tests need KVM and do "
                 "not skip without it; run them on a host with KVM", strerror(errno));
    close(fd);
}

static void dump_file(const char *label, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    print_message("---- %s (%s) ----\n%s\n", label, path, buf);
}

void harness_dump_stacks(pid_t pid, const char *who)
{
    if (pid <= 0 || kill(pid, 0) != 0)
        return;
    char cmd[512];
    /* Each thread's kernel state (a hang inside KVM shows here), then its user stack; each
     * killed in time (a process stuck on a missing post-copy page can hang its readers,
     * and the test then lost its whole output to ctest's timeout). */
    snprintf(cmd, sizeof(cmd),
             "timeout -k 2 15 sh -c 'for t in /proc/%d/task/*; do echo \"thread $(basename $t) "
             "$(cat $t/comm) state=$(cut -d\" \" -f3 $t/stat) wchan=$(cat $t/wchan)\"; "
             "head -4 $t/stack; done' 2>/dev/null; timeout -k 2 30 gdb -batch -p %d "
             "-ex 'thread apply all bt 12' 2>/dev/null | grep -E '^(Thread|#)' | head -150",
             (int)pid, (int)pid);
    print_message("---- stacks of the %s (pid %d) ----\n", who, (int)pid);
    FILE *f = popen(cmd, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f))
        print_message("%s", line);
    if (f)
        pclose(f);
}

static char next_env[256];

void harness_child_env(const char *kv)
{
    snprintf(next_env, sizeof(next_env), "%s", kv ? kv : "");
}

pid_t harness_spawn(const char *bin, const char *netns, const char *const *args,
                    const char *stderr_path, const char *const *pre)
{
    char env[sizeof(next_env)];
    snprintf(env, sizeof(env), "%s", next_env);
    next_env[0] = '\0';
    const char *argv[72];
    int n = 0;
    if (netns && netns[0]) {
        argv[n++] = "/usr/sbin/ip";
        argv[n++] = "netns";
        argv[n++] = "exec";
        argv[n++] = netns;
    }
    argv[n++] = bin;
    for (int i = 0; pre && pre[i]; i++)
        argv[n++] = pre[i];
    for (int i = 0; args && args[i] && n < 71; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A failed test leaves the test binary without stopping its VMs: they die with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        if (env[0])
            putenv(env);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static pid_t spawn_in(const char *netns, const char *const *args, const char *stderr_path,
                      const char *const *pre)
{
    return harness_spawn(VMSHIFT_BIN, netns, args, stderr_path, pre);
}

static bool exit_after_migrate;

void harness_exit_after_migrate(void)
{
    exit_after_migrate = true;
}

/* Whether the monitor about to start gets --keep-after-migrate (and forget the exception). */
static bool take_keep(void)
{
    bool keep = !exit_after_migrate;
    exit_after_migrate = false;
    return keep;
}

void harness_temp_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/vmshift-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void make_dir(struct vm_proc *p)
{
    harness_temp_dir(p->dir, sizeof(p->dir));
    snprintf(p->sock, sizeof(p->sock), "%s/ctl.sock", p->dir);
    snprintf(p->serial, sizeof(p->serial), "%s/serial.log", p->dir);
    snprintf(p->stderr_path, sizeof(p->stderr_path), "%s/stderr.log", p->dir);
}

void vm_receiver_start(struct vm_proc *p, const char *host, const char *netns,
                       const char *const *args)
{
    require_kvm();
    memset(p, 0, sizeof(*p));
    make_dir(p);
    if (netns)
        snprintf(p->netns, sizeof(p->netns), "%s", netns);
    char listen[96], port_file[160];
    snprintf(listen, sizeof(listen), "%s:0", host);
    snprintf(port_file, sizeof(port_file), "%s/port", p->dir);
    const char *pre[24] = { "receive", "--listen", listen, "--port-file", port_file, "--ctl",
                            p->sock, "--serial", p->serial, NULL };
    int n = 9;
    if (take_keep())
        pre[n++] = "--keep-after-migrate";
    if (!harness_names_security(args)) {
        const char *const *sec = harness_security_args(false);
        for (int i = 0; sec[i]; i++)
            pre[n++] = sec[i];
    }
    pre[n] = NULL;
    p->pid = spawn_in(netns, args, p->stderr_path, pre);
    double deadline = now_s() + 20;
    while (now_s() < deadline) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", &p->port) == 1;
            fclose(f);
            if (ok && p->port > 0)
                return;
        }
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            dump_file("vmshift receive stderr", p->stderr_path);
            fail_msg("vmshift receive exited early");
        }
        usleep(20000);
    }
    dump_file("vmshift receive stderr", p->stderr_path);
    fail_msg("vmshift receive did not start listening within 20 s");
}

int vm_proc_wait_exit(struct vm_proc *p, double timeout_s)
{
    int st = 0;
    double deadline = now_s() + timeout_s;
    pid_t r;
    while ((r = waitpid(p->pid, &st, WNOHANG)) == 0 && now_s() < deadline)
        usleep(20000);
    if (r == 0) {
        dump_file("stderr", p->stderr_path);
        fail_msg("process %d did not exit within %.0f s", (int)p->pid, timeout_s);
    }
    p->pid = 0;
    p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return p->exit_status;
}

void vm_proc_wait_ctl(struct vm_proc *p, double timeout_s)
{
    double deadline = now_s() + timeout_s;
    while (now_s() < deadline) {
        struct json_object *reply = NULL;
        if (access(p->sock, F_OK) == 0 && ctl_command(p->sock, "status", NULL, &reply, 2000) == 0) {
            json_object_put(reply);
            return;
        }
        usleep(20000);
    }
    dump_file("stderr", p->stderr_path);
    fail_msg("control socket %s did not answer within %.0f s", p->sock, timeout_s);
}

const char *json_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

double json_num(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

void fake_source_hello(struct fake_source *f, int port, const void *hello, uint32_t len)
{
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", port);
    assert_int_equal(vs_tcp_connect(to, 5000, &f->ch), 0);
    assert_int_equal(vs_wire_writer_init(&f->w, f->ch), 0);
    vs_wire_reader_init(&f->r, f->ch);
    assert_int_equal(vs_wire_send(&f->w, VS_REC_HELLO, hello, len), 0);
    struct vs_wire_header hdr;
    assert_int_equal(vs_wire_read_header(&f->r, &hdr), 0);
    assert_int_equal(vs_wire_read_fixed(&f->r, &hdr, VS_REC_HELLO_REPLY, &f->reply,
                                        sizeof(f->reply)), 0);
}

struct vs_wire_hello fake_hello(uint64_t ram)
{
    return (struct vs_wire_hello){ .version_major = VS_WIRE_VERSION_MAJOR,
                                   .version_minor = VS_WIRE_VERSION_MINOR,
                                   .page_size = VS_WIRE_PAGE_SIZE, .ram_size = ram,
                                   .nr_vcpus = 1, .nr_streams = 1 };
}

void fake_source_close(struct fake_source *f)
{
    vs_wire_writer_destroy(&f->w);
    vs_wire_reader_destroy(&f->r);
    vs_channel_close(f->ch);
}

void vm_migrate_start(struct vm_proc *src, const char *to, struct json_object *args)
{
    struct json_object *req = json_object_new_object();
    if (args) {
        json_object_object_foreach(args, key, val)
            json_object_object_add(req, key, json_object_get(val));
    }
    json_object_object_add(req, "to", json_object_new_string(to));
    harness_add_migrate_security(req);
    json_object_put(vm_cmd(src, "migrate", req));
    json_object_put(req);
}

struct json_object *json_member(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v))
        fail_msg("no \"%s\" in %s", key, o ? json_object_to_json_string(o) : "(null)");
    return v;
}

struct json_object *vm_migrate(struct vm_proc *src, const char *to, struct json_object *args,
                               double timeout_s)
{
    vm_migrate_start(src, to, args);
    return vm_migration_wait(src, timeout_s);
}

struct json_object *vm_migration_wait(struct vm_proc *src, double timeout_s)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        struct json_object *st = vm_cmd(src, "migrate-status", NULL), *m;
        assert_true(json_object_object_get_ex(st, "migration", &m));
        const char *status = json_str(m, "status");
        if (!strcmp(status, "completed") || !strcmp(status, "failed") ||
            !strcmp(status, "cancelled") || !strcmp(status, "unconfirmed") ||
            !strcmp(status, "postcopy-paused")) {
            m = json_object_get(m);
            json_object_put(st);
            return m;
        }
        if (now_s() > deadline) {
            print_message("the source's migration after %.0f s: %s\n", timeout_s,
                          json_object_to_json_string(m));
            json_object_put(st);
            dump_file("the source's stderr", src->stderr_path);
            harness_dump_stacks(src->pid, "source whose migration did not finish");
            fail_msg("the migration did not finish within %.0f s", timeout_s);
        }
        json_object_put(st);
        usleep(50000);
    }
}

char *vm_digest(struct vm_proc *p, uint64_t start, uint64_t len)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "start", json_object_new_uint64(start));
    json_object_object_add(a, "length", json_object_new_uint64(len));
    struct json_object *r = vm_cmd(p, "digest", a);
    json_object_put(a);
    char *d = strdup(json_str(r, "xxh3"));
    json_object_put(r);
    assert_int_equal(strlen(d), 16);
    return d;
}

void print_migration(const char *label, struct json_object *r)
{
    struct json_object *ram = NULL;
    json_object_object_get_ex(r, "ram", &ram);
    print_message("%s: %s, total %.1f ms, downtime %.1f ms (verify %.1f ms), %.1f MiB "
                  "transferred, %.0f passes, %.0f Mbit/s\n", label, json_str(r, "status"),
                  json_num(r, "total-time"), json_num(r, "downtime"), json_num(r, "verify-time"),
                  json_num(ram, "transferred") / 1048576.0, json_num(r, "iterations"),
                  json_num(ram, "mbps"));
}

void vm_proc_start(struct vm_proc *p, const char *const *args)
{
    vm_proc_start_in(p, NULL, args);
}

double harness_start_timeout_s = 60;   /* a host loaded by other tests and stress */

void vm_proc_start_in(struct vm_proc *p, const char *netns, const char *const *args)
{
    require_kvm();
    memset(p, 0, sizeof(*p));
    make_dir(p);
    if (netns)
        snprintf(p->netns, sizeof(p->netns), "%s", netns);
    const char *pre[] = { "run", "--ctl", p->sock, "--serial", p->serial,
                          take_keep() ? "--keep-after-migrate" : NULL, NULL };
    p->pid = spawn_in(netns, args, p->stderr_path, pre);
    double deadline = now_s() + harness_start_timeout_s;
    while (now_s() < deadline) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            dump_file("vmshift stderr", p->stderr_path);
            fail_msg("vmshift run exited early with status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        struct json_object *reply = NULL;
        if (access(p->sock, F_OK) == 0 && ctl_command(p->sock, "status", NULL, &reply, 2000) == 0) {
            json_object_put(reply);
            return;
        }
        usleep(20000);
    }
    dump_file("vmshift stderr", p->stderr_path);
    harness_dump_stacks(p->pid, "VM that did not open its socket");
    fail_msg("vmshift run did not open its control socket %s within %.0f s", p->sock,
             harness_start_timeout_s);
}

void vm_proc_stop(struct vm_proc *p)
{
    if (p->pid <= 0) {
        if (p->dir[0]) {
            char cmd[160];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
            if (system(cmd) != 0)
                print_message("could not remove %s\n", p->dir);
            p->dir[0] = '\0';
        }
        return;
    }
    struct json_object *reply = NULL;
    if (ctl_command(p->sock, "quit", NULL, &reply, 5000) == 0)
        json_object_put(reply);
    int st = 0;
    double deadline = now_s() + 10;
    pid_t r;
    while ((r = waitpid(p->pid, &st, WNOHANG)) == 0 && now_s() < deadline)
        usleep(20000);
    if (r == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
    }
    p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    p->pid = 0;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", p->dir);
}

struct json_object *vm_cmd_any(struct vm_proc *p, const char *cmd, struct json_object *args)
{
    struct json_object *reply = NULL;
    if (ctl_command(p->sock, cmd, args, &reply, 30000) != 0)
        fail_msg("control command '%s' failed to reach the VM", cmd);
    return reply;
}

struct json_object *vm_cmd(struct vm_proc *p, const char *cmd, struct json_object *args)
{
    struct json_object *reply = vm_cmd_any(p, cmd, args), *ok;
    if (!json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok))
        fail_msg("control command '%s' failed: %s", cmd, json_object_to_json_string(reply));
    return reply;
}

static struct json_object *guest_field(struct json_object *status, const char *key)
{
    struct json_object *g, *v;
    if (!json_object_object_get_ex(status, "guest", &g) || !json_object_object_get_ex(g, key, &v))
        return NULL;
    return v;
}

uint64_t guest_u64(struct json_object *status, const char *key)
{
    struct json_object *v = guest_field(status, key);
    return v ? (uint64_t)json_object_get_uint64(v) : 0;
}

const char *guest_str(struct json_object *status, const char *key)
{
    struct json_object *v = guest_field(status, key);
    return v ? json_object_get_string(v) : "";
}

struct json_object *wait_guest_at_least(struct vm_proc *p, const char *key, uint64_t value,
                                        double timeout_s)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        struct json_object *st = vm_cmd(p, "status", NULL);
        if (guest_u64(st, key) >= value)
            return st;
        if (now_s() > deadline) {
            print_message("last status: %s\n", json_object_to_json_string(st));
            print_message("serial: %s\n", vm_serial_log(p));
            json_object_put(st);
            fail_msg("guest %s did not reach %llu within %.0f s", key,
                     (unsigned long long)value, timeout_s);
        }
        json_object_put(st);
        usleep(50000);
    }
}

int run_vmshift(const char *const *args, char *err, size_t errlen, double timeout_s)
{
    return run_program(VMSHIFT_BIN, args, err, errlen, timeout_s);
}

int run_program(const char *bin, const char *const *args, char *err, size_t errlen,
                double timeout_s)
{
    char dir[] = "/tmp/vmshift-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/stderr.log", dir);
    pid_t pid = harness_spawn(bin, NULL, args, path, NULL);
    int st = 0;
    double deadline = now_s() + timeout_s;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && now_s() < deadline)
        usleep(10000);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("%s did not finish within %.0f s", bin, timeout_s);
    }
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(err, 1, errlen - 1, f) : 0;
    err[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
    rmdir(dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *vm_serial_log(struct vm_proc *p)
{
    static char buf[16384];
    FILE *f = fopen(p->serial, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

void vm_migration_wait_under_way(struct vm_proc *src)
{
    for (int i = 0; i < 600; i++) {
        struct json_object *st = vm_cmd(src, "migrate-status", NULL), *m, *ram;
        assert_true(json_object_object_get_ex(st, "migration", &m));
        bool active = !strcmp(json_str(m, "status"), "active");
        double sent = json_object_object_get_ex(m, "ram", &ram) ? json_num(ram, "transferred") : 0;
        json_object_put(st);
        if (active && sent >= 8 << 20)
            return;
        usleep(50000);
    }
    fail_msg("the migration never got under way");
}

void vm_migrate_start_slow(struct vm_proc *src, struct vm_proc *dst)
{
    vm_proc_start(src, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "verify"));
    json_object_put(wait_guest_at_least(src, "passes", 1, 60));
    vm_receiver_start(dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst->port);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "downtime_limit", json_object_new_int(0));
    json_object_object_add(a, "max_passes", json_object_new_int(1000));
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    vm_migrate_start(src, to, a);
    json_object_put(a);
    vm_migration_wait_under_way(src);
}
