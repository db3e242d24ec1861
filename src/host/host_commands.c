/* The control commands of vmshiftd (docs/control-protocol.md, "Host agent"). */
#include "host/host_daemon.h"
#include "common/clock.h"
#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"
#include "ctl/migration_params.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROXY_TIMEOUT_MS 30000   /* a VM's own command (a digest of a large VM takes time) */

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
    json_object_object_add(o, key, json_object_new_string(v));
}

static struct json_object *vm_json(const struct host_daemon *d, const struct host_vm *vm)
{
    struct json_object *o = json_object_new_object();
    add_str(o, "name", vm->name);
    add_str(o, "state", host_vm_state_name(vm->state));
    add_str(o, "origin", vm->origin == HOST_ORIGIN_STARTED ? "started" : "migrated-in");
    add_u64(o, "mem", vm->mem);
    add_u64(o, "vcpus", vm->vcpus);
    add_str(o, "dir", vm->dir);
    add_str(o, "ctl", vm->ctl);
    if (vm->pid > 0)
        json_object_object_add(o, "pid", json_object_new_int((int)vm->pid));
    if (vm->adopted)
        json_object_object_add(o, "adopted", json_object_new_boolean(1));
    if (vm->state == HOST_VM_INCOMING) {
        char to[128];
        host_addr_port(d->opt.receive.listen_addr, vm->port, to, sizeof(to));
        json_object_object_add(o, "port", json_object_new_int(vm->port));
        add_str(o, "to", to);
    }
    if (!host_vm_is_live(vm))
        json_object_object_add(o, "exit_status", json_object_new_int(vm->exit_status));
    if (vm->error[0])
        add_str(o, "error", vm->error);
    add_u64(o, "state_ms", (vs_clock_ns() - vm->since_ns) / 1000000);
    return o;
}

static void host_fields(const struct host_daemon *d, struct json_object *reply)
{
    uint64_t held = host_table_reserved(&d->table);
    add_str(reply, "host", d->opt.name);
    add_str(reply, "migration_addr", d->opt.receive.listen_addr);
    add_u64(reply, "max_mem", d->opt.max_mem);
    add_u64(reply, "mem_reserved", held);
    if (d->opt.max_mem)
        add_u64(reply, "mem_free", held < d->opt.max_mem ? d->opt.max_mem - held : 0);
    unsigned live = 0;
    for (unsigned i = 0; i < d->table.count; i++)
        live += host_vm_is_live(d->table.vms[i]);
    json_object_object_add(reply, "vms_live", json_object_new_int((int)live));
    json_object_object_add(reply, "pid", json_object_new_int((int)getpid()));
}

static int find_vm(struct host_daemon *d, struct json_object *req, struct host_vm **out)
{
    const char *name;
    int rc = ctl_json_get_string(req, "name", &name);
    if (rc == -ENOENT)
        return vs_fail(EINVAL, "give the VM with name=NAME (see vm-list)");
    if (rc)
        return rc;
    *out = host_table_find(&d->table, name);
    if (!*out)
        return vs_fail(ENOENT, "no VM named '%s' on host '%s'; see vm-list", name, d->opt.name);
    return 0;
}

/* Send the VM its own command; its reply fields become ours. */
static int proxy(struct host_vm *vm, const char *cmd, struct json_object *args,
                 struct json_object *reply)
{
    struct json_object *r = NULL, *ok, *err;
    if (ctl_command(vm->ctl, cmd, args, &r, PROXY_TIMEOUT_MS))
        return vs_fail_context(-EIO, "VM '%s'", vm->name);
    if (!json_object_object_get_ex(r, "ok", &ok) || !json_object_get_boolean(ok)) {
        const char *msg = json_object_object_get_ex(r, "error", &err) ?
                          json_object_get_string(err) : "(no error message)";
        int rc = vs_fail(EINVAL, "VM '%s': %s", vm->name, msg);
        json_object_put(r);
        return rc;
    }
    json_object_object_foreach(r, key, val) {
        if (strcmp(key, "ok"))
            json_object_object_add(reply, key, json_object_get(val));
    }
    json_object_put(r);
    return 0;
}

static int need_running(struct host_daemon *d, struct host_vm *vm, const char *cmd)
{
    if (host_vm_refresh(d, vm))
        return 0;
    return vs_fail(EAGAIN, "%s: VM '%s' is %s%s%s; its monitor does not serve commands", cmd,
                   vm->name, host_vm_state_name(vm->state), vm->error[0] ? ": " : "", vm->error);
}

static int cmd_vm_status(struct host_daemon *d, struct json_object *req, struct json_object *reply)
{
    struct host_vm *vm;
    int rc = find_vm(d, req, &vm);
    if (rc)
        return rc;
    host_vm_refresh(d, vm);
    json_object_object_add(reply, "vm", vm_json(d, vm));
    if (vm->state == HOST_VM_RUNNING) {
        struct json_object *st = json_object_new_object();
        if (proxy(vm, "status", NULL, st) == 0)
            json_object_object_add(reply, "status", st);
        else {
            json_object_put(st);
            add_str(reply, "status_error", vs_last_error());
        }
    }
    return 0;
}

static bool names_security(struct json_object *args)
{
    json_object_object_foreach(args, key, val) {
        (void)val;
        const struct mp_def *def = mp_find(key) ? mp_find(key) : mp_find_cli(key);
        if (mp_is_security(def))
            return true;
    }
    return false;
}

/* A VM sent away with `migrate to=...` gets this host's security options (vmshiftd
 * --tls-*, --insecure) unless the request chose its own: the destination's receiver has
 * its host's, so hosts with certificates from one CA migrate to each other as they are. */
static void add_host_security(const struct host_daemon *d, struct json_object *args)
{
    const struct vs_security_opts *s = &d->opt.security;
    if (s->mode == VS_SEC_UNSET || names_security(args))
        return;
    if (s->mode == VS_SEC_INSECURE) {
        json_object_object_add(args, "x-insecure", json_object_new_boolean(1));
    } else if (s->mode == VS_SEC_PSK) {
        add_str(args, "x-tls-psk", s->psk);
    } else {
        add_str(args, "x-tls-cert", s->cert);
        add_str(args, "x-tls-key", s->key);
        add_str(args, "x-tls-ca", s->ca);   /* --tls-name is the listener's own */
    }
}

/* vm-ctl name=NAME vm-cmd=CMD [fields...]: CMD with the other fields, to the VM. */
static int cmd_vm_ctl(struct host_daemon *d, struct json_object *req, struct json_object *reply)
{
    struct host_vm *vm;
    const char *vm_cmd;
    int rc = find_vm(d, req, &vm);
    if (rc)
        return rc;
    if ((rc = ctl_json_get_string(req, "vm-cmd", &vm_cmd)) == -ENOENT)
        return vs_fail(EINVAL, "vm-ctl needs vm-cmd=COMMAND, the VM's own command (e.g. "
                               "vm-cmd=status)");
    if (rc || (rc = need_running(d, vm, "vm-ctl")))
        return rc;
    struct json_object *args = json_object_new_object();
    json_object_object_foreach(req, key, val) {
        if (strcmp(key, "cmd") && strcmp(key, "name") && strcmp(key, "vm-cmd"))
            json_object_object_add(args, key, json_object_get(val));
    }
    if (!strcmp(vm_cmd, "migrate") && json_object_object_get_ex(args, "to", NULL))
        add_host_security(d, args);
    rc = proxy(vm, vm_cmd, args, reply);
    json_object_put(args);
    return rc;
}

static int cmd_vm_start(struct host_daemon *d, struct json_object *req, struct json_object *reply)
{
    const char *name;
    struct host_vm *vm;
    int rc = ctl_json_get_string(req, "name", &name);
    if (rc == -ENOENT)
        return vs_fail(EINVAL, "vm-start needs name=NAME");
    if (rc || (rc = host_vm_start(d, name, req, &vm)))
        return rc;
    json_object_object_add(reply, "vm", vm_json(d, vm));
    return 0;
}

/* vm-receive name=NAME mem=SIZE [vcpus=N]: get ready for a VM migrating here. */
static int cmd_vm_receive(struct host_daemon *d, struct json_object *req, struct json_object *reply)
{
    const char *name;
    uint64_t mem, vcpus = 0;
    int rc = ctl_json_get_string(req, "name", &name);
    if (rc == -ENOENT)
        return vs_fail(EINVAL, "vm-receive needs name=NAME, the VM's name on this host");
    if (rc)
        return rc;
    if ((rc = ctl_json_get_u64(req, "mem", &mem)) == -ENOENT)
        return vs_fail(EINVAL, "vm-receive needs mem=SIZE, the incoming VM's RAM");
    if (rc || ((rc = ctl_json_get_u64(req, "vcpus", &vcpus)) && rc != -ENOENT))
        return rc;
    struct host_vm *vm;
    if ((rc = host_vm_receive(d, name, mem, (unsigned)vcpus, &vm)))
        return vs_fail_context(rc, "host '%s' cannot take VM '%s'", d->opt.name, name);
    char to[128];
    host_addr_port(d->opt.receive.listen_addr, vm->port, to, sizeof(to));
    add_str(reply, "to", to);
    json_object_object_add(reply, "vm", vm_json(d, vm));
    return 0;
}

static int cmd_vm_stop(struct host_daemon *d, struct json_object *req, struct json_object *reply)
{
    struct host_vm *vm;
    bool forgotten;
    int rc = find_vm(d, req, &vm);
    if (rc)
        return rc;
    char name[sizeof(vm->name)];
    snprintf(name, sizeof(name), "%s", vm->name);
    if ((rc = host_vm_stop(d, vm, &forgotten)))
        return rc;
    add_str(reply, "name", name);
    if (forgotten)
        json_object_object_add(reply, "forgotten", json_object_new_boolean(1));
    else
        json_object_object_add(reply, "vm", vm_json(d, vm));
    return 0;
}

static int cmd_vm_list(struct host_daemon *d, struct json_object *reply)
{
    host_fields(d, reply);
    struct json_object *a = json_object_new_array();
    for (unsigned i = 0; i < d->table.count; i++)
        json_object_array_add(a, vm_json(d, d->table.vms[i]));
    json_object_object_add(reply, "vms", a);
    return 0;
}

static int h_host_status(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)args;
    host_fields(ctx, *ret);
    return 0;
}

static int h_vm_list(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)args;
    return cmd_vm_list(ctx, *ret);
}

static int h_vm_start(void *ctx, struct json_object *args, struct json_object **ret)
{
    return cmd_vm_start(ctx, args, *ret);
}

static int h_vm_receive(void *ctx, struct json_object *args, struct json_object **ret)
{
    return cmd_vm_receive(ctx, args, *ret);
}

static int h_vm_status(void *ctx, struct json_object *args, struct json_object **ret)
{
    return cmd_vm_status(ctx, args, *ret);
}

static int h_vm_stop(void *ctx, struct json_object *args, struct json_object **ret)
{
    return cmd_vm_stop(ctx, args, *ret);
}

static int h_vm_ctl(void *ctx, struct json_object *args, struct json_object **ret)
{
    return cmd_vm_ctl(ctx, args, *ret);
}

static int h_host_shutdown(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct host_daemon *d = ctx;
    (void)args;
    d->shutdown = true;
    host_fields(d, *ret);
    return 0;
}

#define NO_ARGS { { NULL, 0, false } }
#define NAME_ARG { "name", CTL_ARG_STR, true }

/* The host agent's commands (docs/control-protocol.md, "Host agent"). */
const struct ctl_command host_command_table[] = {
    { "host-status", h_host_status, NO_ARGS, false, "the host's name, budget and VM count" },
    { "vm-list", h_vm_list, NO_ARGS, false, "every VM, live or ended" },
    { "vm-start", h_vm_start, { NAME_ARG, { "mem", CTL_ARG_SIZE, true } }, true,
      "start a VM (the options of vmshift run)" },
    { "vm-receive", h_vm_receive,
      { NAME_ARG, { "mem", CTL_ARG_SIZE, true }, { "vcpus", CTL_ARG_SIZE, false } }, true,
      "get ready for a VM that migrates here (other vm-start fields are ignored)" },
    { "vm-status", h_vm_status, { NAME_ARG }, false, "a VM's entry and status" },
    { "vm-stop", h_vm_stop, { NAME_ARG }, false, "stop a VM, or forget an ended one" },
    { "vm-ctl", h_vm_ctl, { NAME_ARG, { "vm-cmd", CTL_ARG_STR, true } }, true,
      "send a VM its own command (vm-cmd) with the other fields" },
    { "host-shutdown", h_host_shutdown, NO_ARGS, false, "stop every VM and exit" },
    { NULL, NULL, NO_ARGS, false, NULL },
};
