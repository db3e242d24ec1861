#include "host/host_adopt.h"
#include "host/host_daemon.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/size.h"
#include "ctl/ctl_client.h"

#include <dirent.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ADOPT_TIMEOUT_MS 2000

/* The pid of the process listening on a unix socket (0 if it cannot be told). */
static pid_t listener_pid(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path))
        return 0;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct ucred cred = { 0 };
    socklen_t len = sizeof(cred);
    pid_t pid = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        pid = cred.pid;
    close(fd);
    return pid;
}

static uint64_t num(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

static bool adopt_one(struct host_daemon *d, const char *name)
{
    struct host_vm n = { .state = HOST_VM_RUNNING, .adopted = true };
    if (strlen(name) >= sizeof(n.name))   /* not a name vmshiftd gives */
        return false;
    snprintf(n.name, sizeof(n.name), "%.*s", (int)sizeof(n.name) - 1, name);
    int len = snprintf(n.dir, sizeof(n.dir), "%s/%s", d->opt.state_dir, name);
    int len2 = snprintf(n.ctl, sizeof(n.ctl), "%s/ctl.sock", n.dir);
    if (len < 0 || len2 < 0 || (size_t)len >= sizeof(n.dir) || (size_t)len2 >= sizeof(n.ctl) ||
        access(n.ctl, F_OK) != 0 || host_table_find(&d->table, name))
        return false;
    struct json_object *st = NULL, *v;
    if (ctl_command(n.ctl, "status", NULL, &st, ADOPT_TIMEOUT_MS) != 0)
        return false;
    n.pid = listener_pid(n.ctl);
    n.mem = num(st, "ram_bytes");
    n.vcpus = (unsigned)num(st, "vcpus");
    n.origin = json_object_object_get_ex(st, "incoming", &v) ? HOST_ORIGIN_MIGRATED_IN
                                                               : HOST_ORIGIN_STARTED;
    json_object_put(st);
    if (n.pid <= 0 || n.mem == 0)
        return false;
    n.since_ns = vs_clock_ns();
    if (host_table_add(&d->table, &n, NULL)) {
        vs_warn("cannot adopt VM '%s': %s", name, vs_last_error());
        return false;
    }
    char size[32];
    vs_info("adopted VM '%s' (%s, pid %d) left running by an earlier vmshiftd", name,
            vs_format_size(n.mem, size, sizeof(size)), (int)n.pid);
    return true;
}

unsigned host_adopt_orphans(struct host_daemon *d)
{
    DIR *dir = opendir(d->opt.state_dir);
    if (!dir)
        return 0;
    unsigned adopted = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        vs_clear_error();
        if (e->d_name[0] == '.' || host_check_name(e->d_name))
            continue;
        adopted += adopt_one(d, e->d_name);
    }
    closedir(dir);
    uint64_t held = host_table_reserved(&d->table);
    if (d->opt.max_mem && held > d->opt.max_mem) {
        char a[32], b[32];
        vs_warn("the adopted VMs hold %s, more than --max-mem %s; no VM fits until some stop",
                vs_format_size(held, a, sizeof(a)), vs_format_size(d->opt.max_mem, b, sizeof(b)));
    }
    return adopted;
}

bool host_adopted_gone(struct host_vm *vm)
{
    if (!vm->adopted || !host_vm_is_live(vm) || vm->pid <= 0 ||
        kill(vm->pid, 0) == 0 || errno != ESRCH)
        return false;
    /* A monitor that quits removes its socket; one that died leaves it behind. */
    bool clean = access(vm->ctl, F_OK) != 0;
    vm->exit_status = clean ? 0 : 128 + SIGKILL;
    enum host_vm_state end = host_vm_end_state(vm, vm->exit_status);
    if (end == HOST_VM_CRASHED)
        snprintf(vm->error, sizeof(vm->error), "its monitor (pid %d, adopted) is gone and left "
                 "its control socket behind", (int)vm->pid);
    vs_info("VM '%s' %s (adopted pid %d)", vm->name, host_vm_state_name(end), (int)vm->pid);
    vm->state = end;
    vm->since_ns = vs_clock_ns();
    vm->pid = 0;
    unlink(vm->ctl);
    return true;
}
