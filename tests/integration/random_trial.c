#include "random_internal.h"
#include "ctl/ctl_client.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024ull * 1024ull)

const char *rt_outcome_name(enum rt_outcome o)
{
    static const char *const names[RT_COUNT] = { "survived", "owner-killed", "LOST",
                                                 "DUPLICATED", "BAD", "ERROR" };
    return o < RT_COUNT ? names[o] : "?";
}

void rt_note(struct rt_ctx *c, const char *fmt, ...)
{
    size_t used = strlen(c->note);
    if (used + 3 >= sizeof(c->note))
        return;
    if (used)
        used += (size_t)snprintf(c->note + used, sizeof(c->note) - used, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->note + used, sizeof(c->note) - used, fmt, ap);
    va_end(ap);
}

/* A process that is not our child: alive unless /proc says it is gone or a zombie. */
static bool foreign_alive(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

bool rt_peer_alive(struct rt_peer *x)
{
    if (x->gone || x->vm.pid <= 0)
        return false;
    bool alive;
    if (x->child) {
        int st;
        alive = waitpid(x->vm.pid, &st, WNOHANG) != x->vm.pid;
        if (!alive)
            x->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else {
        alive = foreign_alive(x->vm.pid);
    }
    if (!alive) {
        x->gone = true;
        x->gone_at = now_s();
        x->vm.pid = 0;
    }
    return alive;
}

struct json_object *rt_ask(struct rt_peer *x, const char *cmd, struct json_object *args)
{
    struct json_object *reply = NULL;
    if (!rt_peer_alive(x) || access(x->vm.sock, F_OK) ||
        ctl_command(x->vm.sock, cmd, args, &reply, 5000))
        return NULL;
    return reply;
}

bool rt_logged(const struct rt_peer *x, const char *text)
{
    FILE *f = fopen(x->vm.stderr_path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static void record_pid(const char *pid_file, pid_t pid)
{
    FILE *f = fopen(pid_file, "a");
    if (f) {
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
    }
}

/* A directory of the trial: the caller kills every process that names it and removes it,
 * should the trial end before its tear-down. */
static void record_dir(const char *pid_file, const char *dir)
{
    FILE *f = fopen(pid_file, "a");
    if (f) {
        fprintf(f, "dir %s\n", dir);
        fclose(f);
    }
}

static void point_env(const struct rplan *p, unsigned side)
{
    char env[128];
    if (p->fault == RF_POINT && p->point_side == side) {
        snprintf(env, sizeof(env), "VMSHIFT_FAULT=%s", p->point);
        harness_child_env(env);
    }
}

/* The run options, as `vmshift run` arguments (flags) or vm-start fields (kv). */
struct run_opts {
    char mem[16], vcpus[8], range[32], seed[24], rate[16];
    const char *v[28];
};

/* The device's options (direct path only: `vmshift run` flags). */
static int device_args(const struct rt_ctx *c, const char **v, int n)
{
    if (c && c->p->device == RD_DISK) {
        const char *list[] = { "--disk", c->disk_spec, "--append", "disk_blocks=16" };
        for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
            v[n++] = list[i];
    } else if (c && c->p->device == RD_NIC) {
        const char *list[] = { "--nic", c->nic_src_spec, "--append", rt_nic_append() };
        for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
            v[n++] = list[i];
    }
    return n;
}

static const char *const *run_args(const struct rt_ctx *c, const struct rplan *p,
                                   struct run_opts *o, bool kv)
{
    snprintf(o->mem, sizeof(o->mem), "%s%uM", kv ? "mem=" : "", p->mem_mib);
    snprintf(o->vcpus, sizeof(o->vcpus), "%s%u", kv ? "vcpus=" : "", p->vcpus);
    snprintf(o->range, sizeof(o->range), "%s4M:%uM", kv ? "range=" : "", p->range_mib);
    snprintf(o->seed, sizeof(o->seed), "%s%u", kv ? "seed=" : "", (unsigned)(p->seed % 100000));
    snprintf(o->rate, sizeof(o->rate), "%s%u", kv ? "rate=" : "", p->rate);
    static char workload[32];
    snprintf(workload, sizeof(workload), "%s%s", kv ? "workload=" : "",
             rplan_workload_name(p->workload));
    int n = 0;
    if (kv) {
        const char *list[] = { o->mem, o->vcpus, workload, o->range, "fill=random", o->seed,
                               o->rate };
        for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
            o->v[n++] = list[i];
    } else {
        const char *list[] = { "--mem", o->mem, "--vcpus", o->vcpus, "--workload", workload,
                               "--range", o->range, "--fill", "random", "--seed", o->seed,
                               "--rate", o->rate };
        for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
            o->v[n++] = list[i];
        n = device_args(c, o->v, n);
    }
    o->v[n] = NULL;
    return o->v;
}

static void start_direct(struct rt_ctx *c, const char *pid_file, const char *work_dir)
{
    struct run_opts o;
    point_env(c->p, 0);
    if (c->p->device == RD_DISK)
        rt_disk_create(c, work_dir);
    if (c->p->device == RD_NIC)
        rt_nic_setup(c, pid_file);
    vm_proc_start(&c->src.vm, run_args(c, c->p, &o, false));
    c->src.child = true;
    record_pid(pid_file, c->src.vm.pid);
    record_dir(pid_file, c->src.vm.dir);
    snprintf(c->report_path, sizeof(c->report_path), "%s/receiver-report.json", work_dir);
    point_env(c->p, 1);
    /* One attempt: a receiver refused at its first connection exits (by default it would
     * wait for another source); a source silent for 3 s is a failure. */
    if (c->p->device == RD_NIC)
        vm_receiver_start(&c->dst.vm, "127.0.0.1", NULL,
                          ARGS("--timeout", "3", "--max-refused", "0", "--report",
                               c->report_path, "--nic", c->nic_dst_spec));
    else
        vm_receiver_start(&c->dst.vm, "127.0.0.1", NULL,
                          ARGS("--timeout", "3", "--max-refused", "0", "--report",
                               c->report_path));
    c->dst.child = true;
    record_pid(pid_file, c->dst.vm.pid);
    record_dir(pid_file, c->dst.vm.dir);
    c->target_port = c->dst.vm.port;
}

static void peer_from_entry(struct rt_peer *x, struct json_object *e, const char *pid_file)
{
    memset(x, 0, sizeof(*x));
    x->exit_status = -1;
    x->vm.pid = (pid_t)json_num(e, "pid");
    snprintf(x->vm.sock, sizeof(x->vm.sock), "%s", json_str(e, "ctl"));
    snprintf(x->vm.stderr_path, sizeof(x->vm.stderr_path), "%s/stderr.log", json_str(e, "dir"));
    if (x->vm.pid <= 0)
        fail_msg("the daemon's entry has no pid: %s", json_object_to_json_string(e));
    record_pid(pid_file, x->vm.pid);
}

static void start_daemons(struct rt_ctx *c, const char *pid_file)
{
    static const char *const names[] = { "A", "B" };
    for (unsigned h = 0; h < 2; h++) {
        point_env(c->p, h);
        host_proc_start_outliving(&c->hosts[h], names[h], NULL, "127.0.0.1",
                                  ARGS("--receive-opt", "--timeout", "--receive-opt", "3",
                                       "--receive-opt", "--max-refused", "--receive-opt", "0"));
        c->host_up[h] = true;
        record_pid(pid_file, c->hosts[h].pid);
        record_dir(pid_file, c->hosts[h].dir);
    }
    struct run_opts o;
    host_vm_start_wait(&c->hosts[0], "v", run_args(NULL, c->p, &o, true));
    struct json_object *e = host_vm_entry(&c->hosts[0], "v");
    assert_non_null(e);
    peer_from_entry(&c->src, e, pid_file);
    json_object_put(e);
    struct json_object *r = host_vm_cmd(&c->hosts[1], "vm-receive", "v",
                                        ARGS(o.mem, o.vcpus));
    peer_from_entry(&c->dst, json_member(r, "vm"), pid_file);
    const char *colon = strrchr(json_str(r, "to"), ':');
    assert_non_null(colon);
    c->target_port = atoi(colon + 1);
    json_object_put(r);
}

static bool all_vcpus_idle(struct json_object *st, unsigned vcpus)
{
    struct json_object *g, *per;
    if (!json_object_object_get_ex(st, "guest", &g) ||
        !json_object_object_get_ex(g, "per_vcpu", &per) ||
        json_object_array_length(per) < vcpus)
        return false;
    for (unsigned i = 0; i < vcpus; i++)
        if (strcmp(json_str(json_object_array_get_idx(per, i), "state"), "idle"))
            return false;
    return true;
}

/* The guest has made its first pass (or, idle, reported and halted on every vCPU). */
static void wait_guest_ready(struct rt_ctx *c)
{
    if (c->p->device == RD_NIC) {
        rt_nic_wait_ready(c);
        return;
    }
    double deadline = now_s() + 90;
    for (;;) {
        struct json_object *st = rt_ask(&c->src, "status", NULL);
        bool ready = st && (c->p->workload == RP_IDLE ? all_vcpus_idle(st, c->p->vcpus)
                                                     : guest_u64(st, "passes") >= 1);
        json_object_put(st);
        if (ready)
            return;
        if (now_s() > deadline)
            fail_msg("the source's guest did not start its workload within 90 s");
        usleep(50000);
    }
}

static void digest_into(struct rt_peer *x, uint64_t start, uint64_t len, char *out, size_t n)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "start", json_object_new_uint64(start));
    json_object_object_add(a, "length", json_object_new_uint64(len));
    struct json_object *r = rt_ask(x, "digest", a);
    json_object_put(a);
    snprintf(out, n, "%s", r ? json_str(r, "xxh3") : "");
    json_object_put(r);
}

/* The RAM above the workload range never changes (the host filled it, the guest does
 * not touch it); an idle guest leaves all of RAM as it was. */
void rt_digests(struct rt_peer *x, const struct rplan *p, char *fixed, char *full, size_t n)
{
    uint64_t start = (4 + p->range_mib) * MiB;
    digest_into(x, start, p->mem_mib * MiB - start, fixed, n);
    digest_into(x, 0, p->mem_mib * MiB, full, n);
}

/* The digests before the migration. An idle guest's RAM is compared whole afterwards, so
 * it must have come to rest first (every vCPU reported, halted, and nothing changes). */
static void digests_before(struct rt_ctx *c)
{
    char fixed[24], full[24];
    double deadline = now_s() + 30;
    rt_digests(&c->src, c->p, c->static_digest, c->full_digest, sizeof(c->static_digest));
    while (c->p->workload == RP_IDLE) {
        usleep(300000);
        rt_digests(&c->src, c->p, fixed, full, sizeof(fixed));
        if (!strcmp(full, c->full_digest) && !strcmp(fixed, c->static_digest))
            break;
        snprintf(c->full_digest, sizeof(c->full_digest), "%s", full);
        snprintf(c->static_digest, sizeof(c->static_digest), "%s", fixed);
        if (now_s() > deadline)
            fail_msg("the idle guest's RAM did not come to rest within 30 s");
    }
    if (!c->static_digest[0] || !c->full_digest[0])
        fail_msg("the source did not answer the digest command before the migration");
}

static struct json_object *migrate_request(const struct rt_ctx *c)
{
    static const char *const converge[] = { "none", "throttle", "postcopy" };
    const struct rplan *p = c->p;
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "to", json_object_new_string(c->to));
    json_object_object_add(a, "streams", json_object_new_int((int)p->streams));
    json_object_object_add(a, "compress", json_object_new_string(rplan_codec_name(p->codec)));
    json_object_object_add(a, "downtime_limit", json_object_new_int((int)p->downtime_limit));
    json_object_object_add(a, "converge", json_object_new_string(converge[p->strategy]));
    json_object_object_add(a, "timeout_ms", json_object_new_int(3000));
    if (p->max_bw_mib)
        json_object_object_add(a, "max_bandwidth",
                               json_object_new_int64((int64_t)(p->max_bw_mib * MiB)));
    harness_add_migrate_security(a);
    return a;
}

static void start_migration(struct rt_ctx *c)
{
    int port;
    c->proxy = proxy_start(c->target_port, NULL, &port);
    snprintf(c->to, sizeof(c->to), "127.0.0.1:%d", port);
    rt_disk_watch(c);
    struct json_object *a = migrate_request(c), *r;
    if (c->p->path == RP_DAEMON) {
        json_object_object_add(a, "name", json_object_new_string("v"));
        json_object_object_add(a, "vm-cmd", json_object_new_string("migrate"));
        r = host_cmd(&c->hosts[0], "vm-ctl", a);
    } else {
        r = vm_cmd(&c->src.vm, "migrate", a);
    }
    json_object_put(r);
    json_object_put(a);
    c->t_migrate = now_s();
}

static void stop_peer(struct rt_peer *x)
{
    if (!rt_peer_alive(x))
        return;
    struct json_object *r = NULL;
    if (ctl_command(x->vm.sock, "quit", NULL, &r, 5000) == 0)
        json_object_put(r);
    double deadline = now_s() + 20;
    while (rt_peer_alive(x) && now_s() < deadline)
        usleep(20000);
    if (rt_peer_alive(x)) {
        kill(x->vm.pid, SIGKILL);
        while (rt_peer_alive(x))
            usleep(20000);
    }
}

static void stop_daemon(struct host_proc *h)
{
    struct json_object *r = NULL;
    if (ctl_command(h->sock, "host-shutdown", NULL, &r, 5000) == 0)
        json_object_put(r);
    double deadline = now_s() + 20;
    int st;
    while (waitpid(h->pid, &st, WNOHANG) == 0 && now_s() < deadline)
        usleep(20000);
    if (waitpid(h->pid, &st, WNOHANG) == 0) {
        kill(h->pid, SIGKILL);
        waitpid(h->pid, &st, 0);
    }
    h->pid = 0;
}

/* A daemon the fault killed comes back and must adopt the VM that runs on its host. */
static void restart_killed_daemon(struct rt_ctx *c)
{
    for (unsigned h = 0; h < 2; h++) {
        if (c->host_up[h])
            continue;
        host_proc_restart(&c->hosts[h], ARGS("--receive-opt", "--timeout", "--receive-opt", "3"));
        c->host_up[h] = true;
        struct rt_peer *x = h ? &c->dst : &c->src;
        bool runs = h ? !strcmp(c->look.dst_state, "running") : !strcmp(c->look.src_state, "running");
        const char *state = host_vm_state(&c->hosts[h], "v");
        if (runs && strcmp(state, "running") && c->r->outcome == RT_SURVIVED) {
            c->r->outcome = RT_BAD;
            snprintf(c->r->detail, sizeof(c->r->detail), "the restarted vmshiftd %s does not "
                     "list its running VM as running (state '%s', pid %d)",
                     c->hosts[h].name, state, (int)x->vm.pid);
        }
    }
}

/* The daemons reaped the VMs: their entries tell how each monitor ended (unless it was
 * adopted after a daemon crash). */
static void exit_statuses_from_daemons(struct rt_ctx *c)
{
    usleep(300000);     /* the daemons look every 100 ms */
    for (unsigned h = 0; h < 2; h++) {
        struct rt_peer *x = h ? &c->dst : &c->src;
        struct json_object *e = host_vm_entry(&c->hosts[h], "v"), *v;
        if (e && json_object_object_get_ex(e, "exit_status", &v) && x->exit_status < 0)
            x->exit_status = json_object_get_int(v);
        json_object_put(e);
    }
}

static void copy_log(const char *from, const char *log_dir, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", log_dir, name);
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' 2>/dev/null", from, out);
    if (system(cmd) != 0)
        out[0] = '\0';
}

/* Stop everything, keep the logs, and look for sanitizer reports in them. */
static void tear_down(struct rt_ctx *c, const char *log_dir, const char *work_dir)
{
    proxy_stop(c->proxy);
    c->proxy = NULL;
    if (c->p->path == RP_DAEMON)
        restart_killed_daemon(c);
    stop_peer(&c->dst);
    stop_peer(&c->src);
    if (c->p->path == RP_DAEMON)
        exit_statuses_from_daemons(c);
    char logs[4][256];
    const char *paths[4];
    unsigned n = 0;
    copy_log(c->src.vm.stderr_path, log_dir, "source.log", logs[n], sizeof(logs[n]));
    paths[n] = logs[n], n++;
    copy_log(c->dst.vm.stderr_path, log_dir, "destination.log", logs[n], sizeof(logs[n]));
    paths[n] = logs[n], n++;
    for (unsigned h = 0; c->p->path == RP_DAEMON && h < 2; h++) {
        stop_daemon(&c->hosts[h]);
        copy_log(c->hosts[h].stderr_path, log_dir, h ? "vmshiftd-B.log" : "vmshiftd-A.log",
                 logs[n], sizeof(logs[n]));
        paths[n] = logs[n], n++;
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->hosts[h].dir);
        if (system(cmd) != 0)
            print_message("could not remove %s\n", c->hosts[h].dir);
    }
    rt_scan_logs(c, paths, n);
    if (c->src.child)
        vm_proc_stop(&c->src.vm);
    if (c->dst.child)
        vm_proc_stop(&c->dst.vm);
    char cmd[640];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s/' 2>/dev/null; rm -rf '%s'", c->report_path, log_dir,
             work_dir);
    if (system(cmd) != 0)
        print_message("no receiver report in %s\n", work_dir);
    rt_nic_teardown(c);
}

void random_trial_run(const struct rplan *p, const char *pid_file, const char *log_dir,
                      struct rt_result *r)
{
    static const enum test_security sec[] = { TEST_SEC_INSECURE, TEST_SEC_PSK, TEST_SEC_CERT };
    struct rt_ctx *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->p = p;
    c->r = r;
    c->src.exit_status = c->dst.exit_status = -1;
    char work_dir[64];
    harness_temp_dir(work_dir, sizeof(work_dir));
    record_dir(pid_file, work_dir);
    test_security_use(sec[p->security]);
    if (p->path == RP_DAEMON)
        start_daemons(c, pid_file);
    else
        start_direct(c, pid_file, work_dir);
    double t0 = now_s();
    print_message("[%.1f s] started\n", now_s() - t0);
    wait_guest_ready(c);
    digests_before(c);
    print_message("[%.1f s] the guest is ready; digests %s (above the range), %s (all)\n",
                  now_s() - t0, c->static_digest, c->full_digest);
    start_migration(c);
    rt_watch(c);
    print_message("[%.1f s] %s: source %s/%s, destination %s/%s%s%s\n", now_s() - t0,
                  c->settled ? "settled" : "NOT settled", c->look.src_state, c->look.src_mig,
                  c->look.dst_state, c->look.dst_in, r->fired[0] ? "; struck at " : "", r->fired);
    rt_judge(c);
    print_message("[%.1f s] judged: %s (%s)\n", now_s() - t0, rt_outcome_name(r->outcome),
                  r->detail);
    tear_down(c, log_dir, work_dir);
    print_message("[%.1f s] torn down: %s (%s)\n", now_s() - t0, rt_outcome_name(r->outcome),
                  r->detail);
    free(c);
}
