#include "host_harness.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void print_file(const char *label, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    print_message("---- %s (%s) ----\n", label, path);
    char line[1024];
    for (int n = 0; n < 400 && fgets(line, sizeof(line), f); n++)
        print_message("%s", line);
    fclose(f);
}

static void spawn_daemon(struct host_proc *h, const char *const *args)
{
    char state[96];
    snprintf(state, sizeof(state), "%s/vms", h->dir);
    const char *pre[40] = { "--ctl", h->sock, "--name", h->name, "--state-dir", state,
                            "--vmshift", VMSHIFT_BIN };
    int n = 8;
    if (!h->vms_outlive)
        pre[n++] = "--vms-die-with-daemon";
    if (h->listen[0]) {
        pre[n++] = "--listen";
        pre[n++] = h->listen;
    } else {
        pre[n++] = "--migration-addr";
        pre[n++] = h->addr;
        const char *const *sec = harness_security_args(false);
        for (int i = 0; sec[i] && n < 38; i++) {
            pre[n++] = "--receive-opt";
            pre[n++] = sec[i];
        }
    }
    h->pid = harness_spawn(VMSHIFTD_BIN, h->netns, args, h->stderr_path, pre);
    double deadline = now_s() + 20;
    while (now_s() < deadline) {
        struct json_object *r = NULL;
        if (access(h->sock, F_OK) == 0 && ctl_command(h->sock, "host-status", NULL, &r, 2000) == 0) {
            json_object_put(r);
            return;
        }
        int st;
        if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
            print_file("vmshiftd", h->stderr_path);
            fail_msg("vmshiftd %s exited early", h->name);
        }
        usleep(20000);
    }
    print_file("vmshiftd", h->stderr_path);
    fail_msg("vmshiftd %s did not answer on %s within 20 s", h->name, h->sock);
}

static void start_daemon(struct host_proc *h, const char *name, const char *netns,
                         const char *migration_addr, const char *const *args, bool outlive,
                         const char *listen)
{
    require_kvm();
    memset(h, 0, sizeof(*h));
    h->vms_outlive = outlive;
    snprintf(h->listen, sizeof(h->listen), "%s", listen ? listen : "");
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->netns, sizeof(h->netns), "%s", netns ? netns : "");
    snprintf(h->addr, sizeof(h->addr), "%s", migration_addr);
    harness_temp_dir(h->dir, sizeof(h->dir));
    snprintf(h->sock, sizeof(h->sock), "%s/host.sock", h->dir);
    snprintf(h->stderr_path, sizeof(h->stderr_path), "%s/vmshiftd.log", h->dir);
    spawn_daemon(h, args);
}

void host_proc_start(struct host_proc *h, const char *name, const char *netns,
                     const char *migration_addr, const char *const *args)
{
    start_daemon(h, name, netns, migration_addr, args, false, NULL);
}

void host_proc_start_listening(struct host_proc *h, const char *name, const char *netns,
                               const char *listen, const char *const *args)
{
    start_daemon(h, name, netns, "", args, false, listen);
}

void host_proc_start_outliving(struct host_proc *h, const char *name, const char *netns,
                               const char *migration_addr, const char *const *args)
{
    start_daemon(h, name, netns, migration_addr, args, true, NULL);
}

void host_proc_restart(struct host_proc *h, const char *const *args)
{
    spawn_daemon(h, args);
}

void host_proc_stop(struct host_proc *h)
{
    int status = 0;
    if (h->pid > 0) {
        struct json_object *r = NULL;
        if (ctl_command(h->sock, "host-shutdown", NULL, &r, 5000) == 0)
            json_object_put(r);
        int st;
        double deadline = now_s() + 20;
        pid_t got;
        while ((got = waitpid(h->pid, &st, WNOHANG)) == 0 && now_s() < deadline)
            usleep(20000);
        if (got == 0) {
            print_file("vmshiftd (did not stop)", h->stderr_path);
            kill(h->pid, SIGKILL);
            waitpid(h->pid, &st, 0);
        }
        h->pid = 0;
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (status)
            print_file("vmshiftd", h->stderr_path);
    }
    if (h->dir[0]) {
        if (getenv("VS_TEST_SHOW_HOST_LOGS"))
            print_file(h->name, h->stderr_path);
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
        if (system(cmd) != 0)
            print_message("could not remove %s\n", h->dir);
        h->dir[0] = '\0';
    }
    if (status)
        fail_msg("vmshiftd %s ended with status %d", h->name, status);
}

struct json_object *host_cmd_any(struct host_proc *h, const char *cmd, struct json_object *args)
{
    struct json_object *r = NULL;
    if (ctl_command(h->sock, cmd, args, &r, 60000) != 0) {
        print_file("vmshiftd", h->stderr_path);
        fail_msg("host %s: %s did not get a reply", h->name, cmd);
    }
    return r;
}

struct json_object *host_cmd(struct host_proc *h, const char *cmd, struct json_object *args)
{
    struct json_object *r = host_cmd_any(h, cmd, args), *ok;
    if (!json_object_object_get_ex(r, "ok", &ok) || !json_object_get_boolean(ok))
        fail_msg("host %s: %s failed: %s", h->name, cmd, json_object_to_json_string(r));
    return r;
}

static struct json_object *name_and_tokens(const char *name, const char *const *kv)
{
    int n = 0;
    while (kv && kv[n])
        n++;
    struct json_object *a = NULL;
    if (ctl_json_parse_args(n, (char **)kv, &a))
        fail_msg("bad key=value tokens in a test");
    json_object_object_add(a, "name", json_object_new_string(name));
    return a;
}

struct json_object *host_vm_cmd(struct host_proc *h, const char *cmd, const char *name,
                                const char *const *kv)
{
    struct json_object *a = name_and_tokens(name, kv);
    struct json_object *r = host_cmd(h, cmd, a);
    json_object_put(a);
    return r;
}

struct json_object *host_vm_entry(struct host_proc *h, const char *name)
{
    struct json_object *r = host_cmd(h, "vm-list", NULL), *vms, *found = NULL;
    assert_true(json_object_object_get_ex(r, "vms", &vms));
    for (size_t i = 0; i < json_object_array_length(vms); i++) {
        struct json_object *v = json_object_array_get_idx(vms, i);
        if (!strcmp(json_str(v, "name"), name))
            found = json_object_get(v);
    }
    json_object_put(r);
    return found;
}

const char *host_vm_state(struct host_proc *h, const char *name)
{
    static char buf[32];
    struct json_object *v = host_vm_entry(h, name);
    snprintf(buf, sizeof(buf), "%s", v ? json_str(v, "state") : "");
    json_object_put(v);
    return buf;
}

void host_vm_start_wait(struct host_proc *h, const char *name, const char *const *kv)
{
    json_object_put(host_vm_cmd(h, "vm-start", name, kv));
    double deadline = now_s() + 60;
    while (now_s() < deadline) {
        const char *st = host_vm_state(h, name);
        if (!strcmp(st, "running"))
            return;
        if (strcmp(st, "starting")) {
            struct json_object *v = host_vm_entry(h, name);
            fail_msg("VM %s on %s: %s", name, h->name, json_object_to_json_string(v));
        }
        usleep(20000);
    }
    fail_msg("VM %s on %s did not start within 60 s", name, h->name);
}

struct json_object *host_vm_status(struct host_proc *h, const char *name)
{
    return host_vm_cmd(h, "vm-ctl", name, ARGS("vm-cmd=status"));
}

struct json_object *host_vm_wait_guest(struct host_proc *h, const char *name, const char *key,
                                       uint64_t value, double timeout_s)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        struct json_object *st = host_vm_status(h, name);
        if (guest_u64(st, key) >= value)
            return st;
        if (now_s() > deadline) {
            print_message("last status of %s on %s: %s\n", name, h->name,
                          json_object_to_json_string(st));
            json_object_put(st);
            fail_msg("guest %s of VM %s did not reach %llu within %.0f s", key, name,
                     (unsigned long long)value, timeout_s);
        }
        json_object_put(st);
        usleep(50000);
    }
}

void host_vm_expect_progress(struct host_proc *h, const char *name, const char *key,
                             uint64_t step, double timeout_s)
{
    struct json_object *st = host_vm_status(h, name);
    uint64_t now = guest_u64(st, key);
    json_object_put(st);
    st = host_vm_wait_guest(h, name, key, now + step, timeout_s);
    uint64_t errors = guest_u64(st, "errors");
    json_object_put(st);
    if (errors)
        fail_msg("the guest of VM %s on %s found %llu bad page(s)", name, h->name,
                 (unsigned long long)errors);
}

char *host_vm_digest(struct host_proc *h, const char *name, uint64_t start, uint64_t len)
{
    char s[40], l[40];
    snprintf(s, sizeof(s), "start=%llu", (unsigned long long)start);
    snprintf(l, sizeof(l), "length=%llu", (unsigned long long)len);
    struct json_object *r = host_vm_cmd(h, "vm-ctl", name, ARGS("vm-cmd=digest", s, l));
    char *d = strdup(json_str(r, "xxh3"));
    json_object_put(r);
    assert_int_equal(strlen(d), 16);
    return d;
}

void host_evacuate_start(struct evac_run *run, struct host_proc *from,
                         struct host_proc *const *to, unsigned nto, const char *const *args)
{
    char to_list[1024] = "";
    memset(run, 0, sizeof(*run));
    harness_temp_dir(run->dir, sizeof(run->dir));
    snprintf(run->report, sizeof(run->report), "%s/report.json", run->dir);
    snprintf(run->out, sizeof(run->out), "%s/out.log", run->dir);
    for (unsigned i = 0; i < nto; i++)
        snprintf(to_list + strlen(to_list), sizeof(to_list) - strlen(to_list), "%s%s",
                 i ? "," : "", to[i]->sock);
    const char *pre[64] = { "evacuate", "--from", from->sock, "--to", to_list, "--report",
                            run->report };
    int n = 7;
    struct json_object *sec = json_object_new_object();
    harness_add_migrate_security(sec);
    char fields[16][256];
    int nf = 0;
    json_object_object_foreach(sec, k, v) {
        if (nf < 16 && n < 60) {
            snprintf(fields[nf], sizeof(fields[nf]), "%s=%s", k, json_object_get_string(v));
            pre[n++] = "--migrate-opt";
            pre[n++] = fields[nf++];
        }
    }
    run->pid = harness_spawn(VMSHIFT_BIN, NULL, args, run->out, pre);
    json_object_put(sec);
}

int host_evacuate_wait(struct evac_run *run, struct json_object **report, double timeout_s)
{
    int st = 0;
    double deadline = now_s() + timeout_s;
    pid_t got;
    while ((got = waitpid(run->pid, &st, WNOHANG)) == 0 && now_s() < deadline)
        usleep(50000);
    if (got == 0) {
        kill(run->pid, SIGINT);     /* it cancels what runs and reports */
        sleep(10);
        kill(run->pid, SIGKILL);
        waitpid(run->pid, &st, 0);
        print_file("vmshift evacuate", run->out);
        fail_msg("vmshift evacuate did not finish within %.0f s", timeout_s);
    }
    print_file("vmshift evacuate", run->out);
    *report = json_object_from_file(run->report);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run->dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", run->dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int host_evacuate(struct host_proc *from, struct host_proc *const *to, unsigned nto,
                  const char *const *args, struct json_object **report, double timeout_s)
{
    struct evac_run run;
    host_evacuate_start(&run, from, to, nto, args);
    return host_evacuate_wait(&run, report, timeout_s);
}

struct json_object *evac_report_vm(struct json_object *report, const char *name)
{
    struct json_object *vms;
    if (!report || !json_object_object_get_ex(report, "vms", &vms))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(vms); i++) {
        struct json_object *v = json_object_array_get_idx(vms, i);
        if (!strcmp(json_str(v, "name"), name))
            return v;
    }
    return NULL;
}
