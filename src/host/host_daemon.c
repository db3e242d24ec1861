#include "host/host_daemon.h"
#include "host/host_adopt.h"
#include "host/host_spawn.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/size.h"
#include "common/stop_signal.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_server.h"
#include "transport/tls.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
#define PORT_WAIT_NS (10 * NS_PER_S)     /* a receiver must listen within this */
#define ANSWER_TIMEOUT_MS 1000           /* a status probe of a VM's socket */

static uint64_t after_s(double s)
{
    return vs_clock_ns() + (uint64_t)(s * 1e9);
}

static void set_state(struct host_vm *vm, enum host_vm_state s)
{
    vm->state = s;
    vm->since_ns = vs_clock_ns();
}

/* The last non-empty line of a monitor's stderr: why it failed, in its own words. */
static void last_line(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        size_t n = strcspn(line, "\n");
        line[n] = '\0';
        if (n)
            snprintf(buf, len, "%.*s", (int)(len - 1), line);
    }
    fclose(f);
}

static void vm_file(const struct host_vm *vm, const char *file, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", vm->dir, file);
}

static const char *const vm_files[] = { "ctl.sock", "serial.log", "stderr.log", "port",
                                        "incoming.json" };

static void remove_vm_files(const struct host_vm *vm)
{
    char p[HOST_PATH_BUF];
    for (size_t i = 0; i < sizeof(vm_files) / sizeof(vm_files[0]); i++) {
        vm_file(vm, vm_files[i], p, sizeof(p));
        unlink(p);
    }
}

static int vm_paths(const struct host_daemon *d, struct host_vm *vm)
{
    int n = snprintf(vm->dir, sizeof(vm->dir), "%s/%s", d->opt.state_dir, vm->name);
    int m = snprintf(vm->ctl, sizeof(vm->ctl), "%s/ctl.sock", vm->dir);
    if (n < 0 || m < 0 || (size_t)n >= sizeof(vm->dir) || (size_t)m >= sizeof(vm->ctl))
        return vs_fail(ENAMETOOLONG, "the control socket of VM '%s' in %s would be too long "
                                     "for a unix socket; use a shorter --state-dir",
                       vm->name, d->opt.state_dir);
    return 0;
}

/* A fresh STATE_DIR/NAME for a new entry (left-overs of an earlier VM of that name go). */
static int make_vm_dir(struct host_daemon *d, struct host_vm *vm)
{
    int rc = vm_paths(d, vm);
    if (rc)
        return rc;
    if (mkdir(vm->dir, 0700) < 0 && errno != EEXIST)
        return vs_fail(errno, "cannot create the directory %s of VM '%s': %s", vm->dir, vm->name,
                       strerror(errno));
    remove_vm_files(vm);
    return 0;
}

static bool answers(const char *ctl)
{
    struct json_object *r = NULL;
    if (access(ctl, F_OK) != 0 || ctl_command(ctl, "status", NULL, &r, ANSWER_TIMEOUT_MS) != 0)
        return false;
    json_object_put(r);
    return true;
}

bool host_vm_refresh(struct host_daemon *d, struct host_vm *vm)
{
    (void)d;
    if (vm->state == HOST_VM_RUNNING)
        return true;
    if ((vm->state != HOST_VM_STARTING && vm->state != HOST_VM_INCOMING) || !answers(vm->ctl))
        return false;
    if (vm->state == HOST_VM_INCOMING)
        vs_info("VM '%s' arrived by migration and runs here (pid %d)", vm->name, (int)vm->pid);
    else
        vs_info("VM '%s' runs (pid %d)", vm->name, (int)vm->pid);
    set_state(vm, HOST_VM_RUNNING);
    return true;
}

/* A VM of this name that is still stopping (the VM of an earlier visit, asked to quit:
 * VMs move back and forth during maintenance) must not refuse a new one of that name.
 * Wait until its monitor has exited (it is killed at its stop deadline), so the name,
 * its directory and its memory are free again. Other commands wait meanwhile: a stop
 * takes well under a second unless the monitor hangs. */
static void await_namesake_stopped(struct host_daemon *d, const char *name)
{
    struct host_vm *old = host_table_find(&d->table, name);
    if (!old || old->state != HOST_VM_STOPPING)
        return;
    vs_info("VM '%s': waiting for the earlier VM of this name (pid %d) to finish stopping",
            name, (int)old->pid);
    uint64_t give_up = after_s(d->opt.stop_timeout_s + 5);
    while (old->state == HOST_VM_STOPPING && vs_clock_ns() < give_up) {
        host_daemon_tick(d);    /* reaps it; kills it at its stop deadline */
        if (old->state == HOST_VM_STOPPING)
            vs_sleep_ns(10000000);
    }
}

int host_vm_start(struct host_daemon *d, const char *name, struct json_object *req,
                  struct host_vm **out)
{
    struct host_vm n = { .state = HOST_VM_STARTING, .origin = HOST_ORIGIN_STARTED };
    int rc = host_check_name(name);
    if (rc)
        return rc;
    snprintf(n.name, sizeof(n.name), "%s", name);
    if ((rc = vm_paths(d, &n)))
        return rc;
    await_namesake_stopped(d, name);
    char serial[HOST_PATH_BUF], err[HOST_PATH_BUF];
    vm_file(&n, "serial.log", serial, sizeof(serial));
    vm_file(&n, "stderr.log", err, sizeof(err));
    struct host_argv argv;
    if ((rc = host_run_argv(d->opt.vmshift, req, n.ctl, serial, &argv, &n.mem, &n.vcpus)))
        return rc;
    if ((rc = host_table_admit(&d->table, name, n.mem)) || (rc = make_vm_dir(d, &n)) ||
        (rc = host_spawn(&argv, err, d->opt.die_with_daemon, &n.pid))) {
        host_argv_free(&argv);
        return rc;
    }
    host_argv_free(&argv);
    n.since_ns = vs_clock_ns();
    n.deadline_ns = after_s(d->opt.start_timeout_s);
    if ((rc = host_table_add(&d->table, &n, out))) {
        kill(n.pid, SIGKILL);
        waitpid(n.pid, NULL, 0);
        return rc;
    }
    char size[32];
    vs_info("VM '%s' starting: %s RAM, pid %d", name, vs_format_size(n.mem, size, sizeof(size)),
            (int)n.pid);
    return 0;
}

static void reaped(struct host_vm *vm, int status)
{
    vm->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    enum host_vm_state end = host_vm_end_state(vm, vm->exit_status);
    if (!vm->error[0] && (end == HOST_VM_CRASHED || end == HOST_VM_FAILED)) {
        char err[HOST_PATH_BUF], line[200];
        vm_file(vm, "stderr.log", err, sizeof(err));
        last_line(err, line, sizeof(line));
        if (WIFSIGNALED(status))
            snprintf(vm->error, sizeof(vm->error), "its monitor (pid %d) was killed by signal "
                     "%d%s%.150s", (int)vm->pid, WTERMSIG(status), line[0] ? "; last words: " : "",
                     line);
        else
            snprintf(vm->error, sizeof(vm->error), "its monitor (pid %d) exited with status "
                     "%d%s%.150s", (int)vm->pid, vm->exit_status, line[0] ? ": " : "", line);
    }
    vs_info("VM '%s' %s (pid %d, exit status %d)%s%s", vm->name, host_vm_state_name(end),
            (int)vm->pid, vm->exit_status, vm->error[0] ? ": " : "", vm->error);
    set_state(vm, end);
    vm->pid = 0;
    unlink(vm->ctl); /* a killed monitor leaves its socket file behind */
}

int host_vm_receive(struct host_daemon *d, const char *name, uint64_t mem, unsigned vcpus,
                    struct host_vm **out)
{
    struct host_vm n = { .state = HOST_VM_INCOMING, .origin = HOST_ORIGIN_MIGRATED_IN,
                         .mem = mem, .vcpus = vcpus };
    if (host_check_name(name) == 0)
        await_namesake_stopped(d, name);
    int rc = host_table_admit(&d->table, name, mem);
    if (rc)
        return rc;
    snprintf(n.name, sizeof(n.name), "%s", name);
    struct host_argv argv;
    char err[HOST_PATH_BUF], port_file[HOST_PATH_BUF];
    if ((rc = make_vm_dir(d, &n)) ||
        (rc = host_receive_argv(d->opt.vmshift, &d->opt.receive, n.dir, n.ctl, mem, &argv)))
        return rc;
    vm_file(&n, "stderr.log", err, sizeof(err));
    vm_file(&n, "port", port_file, sizeof(port_file));
    rc = host_spawn(&argv, err, d->opt.die_with_daemon, &n.pid);
    host_argv_free(&argv);
    if (rc)
        return rc;
    uint64_t deadline = vs_clock_ns() + PORT_WAIT_NS;
    while (n.port <= 0) {
        FILE *f = fopen(port_file, "re");
        if (f) {
            if (fscanf(f, "%d", &n.port) != 1)
                n.port = 0;
            fclose(f);
            if (n.port > 0)
                break;
        }
        int st;
        if (waitpid(n.pid, &st, WNOHANG) == n.pid) {
            char line[200];
            last_line(err, line, sizeof(line));
            return vs_fail(EIO, "the receiver for VM '%s' exited before it listened: %s", name,
                           line[0] ? line : "(no message)");
        }
        if (vs_clock_ns() > deadline) {
            kill(n.pid, SIGKILL);
            waitpid(n.pid, NULL, 0);
            return vs_fail(ETIMEDOUT, "the receiver for VM '%s' did not listen on %s within "
                                      "%llu s; see %s", name, d->opt.receive.listen_addr,
                           (unsigned long long)(PORT_WAIT_NS / NS_PER_S), err);
        }
        vs_sleep_ns(5000000);
    }
    n.since_ns = vs_clock_ns();
    if ((rc = host_table_add(&d->table, &n, out))) {
        kill(n.pid, SIGKILL);
        waitpid(n.pid, NULL, 0);
        return rc;
    }
    char size[32];
    vs_info("VM '%s' (%s) may come: receiver pid %d listens on %s:%d", name,
            vs_format_size(mem, size, sizeof(size)), (int)n.pid, d->opt.receive.listen_addr,
            n.port);
    return 0;
}

/* Is the VM behind this monitor one that has migrated away (its state "migrated")? */
static bool migrated_away(const struct host_vm *vm)
{
    struct json_object *r = NULL, *st;
    if (ctl_command(vm->ctl, "status", NULL, &r, ANSWER_TIMEOUT_MS) != 0)
        return false;
    bool m = json_object_object_get_ex(r, "state", &st) &&
             strcmp(json_object_get_string(st), "migrated") == 0;
    json_object_put(r);
    return m;
}

int host_vm_stop(struct host_daemon *d, struct host_vm *vm, bool *forgotten)
{
    *forgotten = false;
    if (!host_vm_is_live(vm)) {
        remove_vm_files(vm);
        rmdir(vm->dir);
        host_table_remove(&d->table, vm);
        *forgotten = true;
        return 0;
    }
    if (vm->state == HOST_VM_STOPPING)
        return 0;
    host_vm_refresh(d, vm);
    if (vm->state == HOST_VM_RUNNING) {
        struct json_object *r = NULL;
        vm->was_migrated = migrated_away(vm);
        vm->quit_sent = ctl_command(vm->ctl, "quit", NULL, &r, ANSWER_TIMEOUT_MS) == 0;
        json_object_put(r);
        if (!vm->quit_sent)
            kill(vm->pid, SIGTERM);
    } else if (vm->state == HOST_VM_STARTING) {
        kill(vm->pid, SIGTERM);  /* the monitor quits once its VM exists */
    } else {
        /* A receiver whose VM has not arrived: nothing runs in it yet. If a migration is
         * streaming in, it fails and the source keeps running the VM. */
        kill(vm->pid, SIGKILL);
    }
    vs_info("VM '%s': stopping (pid %d)", vm->name, (int)vm->pid);
    set_state(vm, HOST_VM_STOPPING);
    vm->deadline_ns = after_s(d->opt.stop_timeout_s);
    return 0;
}

static void reap_children(struct host_daemon *d)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        struct host_vm *vm = host_table_find_pid(&d->table, pid);
        if (vm && !vm->adopted)
            reaped(vm, st);
    }
    for (unsigned i = 0; i < d->table.count; i++)
        host_adopted_gone(d->table.vms[i]);
}

void host_daemon_tick(struct host_daemon *d)
{
    reap_children(d);
    uint64_t now = vs_clock_ns();
    for (unsigned i = 0; i < d->table.count; i++) {
        struct host_vm *vm = d->table.vms[i];
        switch (vm->state) {
        case HOST_VM_STARTING:
            if (host_vm_refresh(d, vm))
                break;
            if (vm->deadline_ns && now > vm->deadline_ns) {
                snprintf(vm->error, sizeof(vm->error), "its control socket did not answer "
                         "within %.0f s (--start-timeout); it was killed",
                         d->opt.start_timeout_s);
                kill(vm->pid, SIGKILL);
                vm->deadline_ns = 0;
            }
            break;
        case HOST_VM_INCOMING:
            host_vm_refresh(d, vm);
            break;
        case HOST_VM_STOPPING:
            if (vm->deadline_ns && now > vm->deadline_ns) {
                vs_warn("VM '%s' did not quit within %.0f s; killing pid %d", vm->name,
                        d->opt.stop_timeout_s, (int)vm->pid);
                kill(vm->pid, SIGKILL);
                vm->deadline_ns = 0;
            }
            break;
        default:
            break;
        }
    }
}

static unsigned live_vms(const struct host_daemon *d)
{
    unsigned n = 0;
    for (unsigned i = 0; i < d->table.count; i++)
        n += host_vm_is_live(d->table.vms[i]);
    return n;
}

/* Stop every VM, wait for the monitors (killing the slow ones), reap them. */
static void stop_all(struct host_daemon *d)
{
    for (unsigned i = 0; i < d->table.count; i++) {
        bool forgotten;
        if (host_vm_is_live(d->table.vms[i]))
            host_vm_stop(d, d->table.vms[i], &forgotten);
    }
    uint64_t deadline = after_s(d->opt.stop_timeout_s + 2);
    while (live_vms(d) && vs_clock_ns() < deadline) {
        host_daemon_tick(d);
        vs_sleep_ns(20000000);
    }
    for (unsigned i = 0; i < d->table.count; i++) {
        struct host_vm *vm = d->table.vms[i];
        if (host_vm_is_live(vm) && vm->pid > 0) {
            int st;
            kill(vm->pid, SIGKILL);
            if (vm->adopted) {
                for (int k = 0; k < 100 && !host_adopted_gone(vm); k++)
                    vs_sleep_ns(10000000);
            } else if (waitpid(vm->pid, &st, 0) == vm->pid) {
                reaped(vm, st);
            }
        }
    }
}

/* The control endpoints: the unix socket, and --listen over TCP (TLS unless --insecure). */
static int open_control(struct host_daemon *d, struct ctl_server **out)
{
    const struct host_options *o = &d->opt;
    struct ctl_server *s;
    int rc = ctl_server_create(&s, host_command_table, d);
    if (rc)
        return rc;
    if (o->ctl)
        rc = ctl_server_listen_unix(s, o->ctl);
    if (!rc && o->listen && o->security.mode != VS_SEC_INSECURE)
        rc = vs_tls_new_for(&o->security, VS_TLS_DESTINATION, VS_TLS_FOR_CONTROL,
                            &d->listen_tls);
    if (!rc && o->listen)
        rc = ctl_server_listen_tcp(s, o->listen, d->listen_tls);
    if (rc) {
        ctl_server_close(s);
        vs_tls_free(d->listen_tls);
        d->listen_tls = NULL;
        return rc;
    }
    if (o->listen) {
        vs_info("vmshiftd '%s' serves other hosts on %s (port %d) with %s", o->name, o->listen,
                ctl_server_tcp_port(s), o->security.mode == VS_SEC_INSECURE ?
                "plain TCP (--insecure): anyone who reaches it controls this host" :
                vs_security_flags(o->security.mode));
        if (!strncmp(o->receive.listen_addr, "127.", 4) && strncmp(o->listen, "127.", 4))
            vs_warn("incoming migrations listen on %s, which other hosts cannot reach; give "
                    "--migration-addr IP", o->receive.listen_addr);
    }
    *out = s;
    return 0;
}

int host_daemon_main(struct host_daemon *d)
{
    vs_stop_signal_install();
    d->table.max_mem = d->opt.max_mem;
    if (mkdir(d->opt.state_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "vmshiftd: cannot create --state-dir %s: %s\n", d->opt.state_dir,
                strerror(errno));
        return 1;
    }
    if (access(d->opt.vmshift, X_OK) != 0) {
        fprintf(stderr, "vmshiftd: cannot run %s: %s; give the vmshift binary with --vmshift\n",
                d->opt.vmshift, strerror(errno));
        return 1;
    }
    struct ctl_server *ctl;
    if (open_control(d, &ctl)) {
        fprintf(stderr, "vmshiftd: %s\n", vs_last_error());
        return 1;
    }
    host_adopt_orphans(d);
    char budget[32];
    vs_info("vmshiftd '%s' serves %s; VMs in %s; budget %s; incoming migrations on %s",
            d->opt.name, d->opt.ctl ? d->opt.ctl : d->opt.listen, d->opt.state_dir,
            d->opt.max_mem ? vs_format_size(d->opt.max_mem, budget, sizeof(budget)) : "unlimited",
            d->opt.receive.listen_addr);
    while (!d->shutdown && !vs_stop_signal()) {
        if (ctl_server_poll(ctl, 100) < 0)
            vs_warn("control socket: %s", vs_last_error());
        host_daemon_tick(d);
    }
    unsigned live = live_vms(d);
    vs_info("vmshiftd '%s' shutting down: stopping %u VM(s)", d->opt.name, live);
    ctl_server_close(ctl);
    vs_tls_free(d->listen_tls);
    d->listen_tls = NULL;
    stop_all(d);
    host_table_clear(&d->table);
    int sig = d->shutdown ? 0 : vs_stop_signal();
    if (!sig)
        return 0;
    fprintf(stderr, "vmshiftd: stopped by %s: stopped %u VM(s) and removed the control "
            "socket %s\n", vs_stop_signal_name(sig), live, d->opt.ctl ? d->opt.ctl : "(none)");
    return vs_stop_exit_status(sig);
}
