/* The QMP migration commands of a VM's monitor (see migration_commands.h). */
#include "ctl/migration_commands.h"
#include "common/error.h"
#include "ctl/converge_commands.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"
#include "ctl/migration_params.h"
#include "ctl/vm_commands.h"
#include "migrate/postcopy/postcopy_dest.h"
#include "migrate/postcopy/postcopy_source.h"
#include "migrate/precopy/source.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

bool migration_running(struct vm_commands *c)
{
    if (!c->migration)
        return false;
    struct vs_migration_stats s;
    bool finished;
    vs_migration_stats(c->migration, &s, &finished);
    return !finished;
}

struct json_object *migration_params(struct vm_commands *c)
{
    if (!c->params)
        c->params = mp_defaults();
    return c->params;
}

static int refuse_while_running(struct vm_commands *c, const char *what)
{
    if (migration_running(c))
        return vs_fail(EBUSY, "There's a migration process in progress: %s apply to the next "
                       "migration and cannot change while one runs; migrate_cancel it first, "
                       "or wait until query-migrate says it ended", what);
    return 0;
}

/* "tcp:HOST:PORT" -> "HOST:PORT". */
static int parse_uri(const char *uri, char *out, size_t len)
{
    if (strncmp(uri, "tcp:", 4) != 0 || !strchr(uri + 4, ':'))
        return vs_fail(EINVAL, "migration uri '%s' is not supported; give tcp:HOST:PORT (where "
                       "`vmshift receive --listen` waits)", uri);
    if (strlen(uri + 4) >= len)
        return vs_fail(EINVAL, "migration uri '%.40s...' is too long", uri);
    snprintf(out, len, "%s", uri + 4);
    return 0;
}

int qmp_migrate(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)ret;
    const char *uri;
    bool flag = false;
    int rc = ctl_json_get_string(args, "uri", &uri);
    if (rc)
        return rc;
    bool blk = false;
    if (ctl_json_get_bool(args, "inc", &flag) == 0 && flag)
        return vs_fail(EINVAL, "migrate: incremental block migration (inc) is not supported: "
                       "use blk=true (or x-with-disks) to copy the whole disks");
    if (ctl_json_get_bool(args, "blk", &flag) == 0 && flag)
        blk = true;   /* full block migration: the disks go with the RAM */
    struct vs_migration_opts o;
    vs_migration_default_opts(&o);
    if ((rc = parse_uri(uri, o.to, sizeof(o.to))))
        return rc;
    if (ctl_json_get_bool(args, "resume", &flag) == 0 && flag) {
        if (!c->migration)
            return vs_fail(ENOENT, "migrate resume=true: no migration to resume here");
        return vs_migration_resume(c->migration, o.to);
    }
    struct json_object *params = migration_params(c);
    if (!params)
        return vs_fail(ENOMEM, "out of memory");
    if ((rc = mp_to_opts(params, &o)))
        return rc;
    o.with_disks = o.with_disks || blk;
    if (c->ctl_path)    /* the recovery commands name it (docs/state-machine.md) */
        snprintf(o.ctl_path, sizeof(o.ctl_path), "%s", c->ctl_path);
    int failed;
    if (dirty_calc_busy(&c->dirty, &failed))
        return vs_fail(EBUSY, "a dirty-rate measurement (calc-dirty-rate) owns dirty logging "
                       "until it ends; migrate once query-dirty-rate says measured");
    if (c->migration) {
        struct vs_migration_stats s;
        bool finished;
        vs_migration_stats(c->migration, &s, &finished);
        if (!finished)
            return vs_fail(EBUSY, "a migration to %s is already running; cancel it first", s.peer);
        vs_migration_free(c->migration);
        c->migration = NULL;
    }
    pthread_mutex_lock(&c->vm->lock);
    enum vs_vm_state st = c->vm->state;
    pthread_mutex_unlock(&c->vm->lock);
    if (st == VS_VM_MIGRATED || st == VS_VM_FAILED)
        return vs_fail(EINVAL, "cannot migrate a VM that is %s", vs_vm_state_name(st));
    c->seen_status[0] = '\0';
    c->seen_pass = 0;
    return vs_migration_start(&c->migration, c->vm, &o);
}

int qmp_migrate_incoming(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ctx, (void)args, (void)ret;
    return vs_fail(EINVAL, "migrate-incoming: this monitor already runs a VM. An incoming "
                   "VM is received by `vmshift receive --listen HOST:PORT` (QEMU's "
                   "-incoming tcp:HOST:PORT); its monitor appears once the VM has arrived");
}

int qmp_query_migrate(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    struct json_object *r = NULL;
    if (c->migration) {
        struct vs_migration_stats s;
        vs_migration_stats(c->migration, &s, NULL);
        r = vs_report_json(&s);
    } else if (c->has_incoming) {
        if (c->postcopy)
            vs_postcopy_dest_stats(c->postcopy, &c->incoming);
        r = vs_report_json(&c->incoming);
    }
    if (r) {
        json_object_put(*ret);
        *ret = r;
    }
    return 0;
}

int qmp_migrate_set_parameters(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)ret;
    int rc = refuse_while_running(c, "migration parameters");
    if (rc)
        return rc;
    struct json_object *params = migration_params(c), *copy = NULL;
    if (!params || json_object_deep_copy(params, &copy, NULL))
        return vs_fail(ENOMEM, "out of memory");
    json_object_object_foreach(args, key, val) {
        const struct mp_def *d = mp_find(key);
        if (!d || d->kind != MP_PARAMETER)
            rc = vs_fail(EINVAL, "Parameter '%s' is unexpected%s", key,
                         d ? "; it is a capability: use migrate-set-capabilities"
                           : "; query-migrate-parameters lists the parameters");
        else
            rc = mp_set(copy, d, val);
        if (rc) {
            json_object_put(copy);
            return rc;
        }
    }
    json_object_put(c->params);
    c->params = copy;
    return 0;
}

int qmp_query_migrate_parameters(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    struct json_object *params = migration_params(c);
    if (!params)
        return vs_fail(ENOMEM, "out of memory");
    for (size_t i = 0; i < mp_count; i++) {
        struct json_object *v;
        if (mp_defs[i].kind == MP_PARAMETER &&
            json_object_object_get_ex(params, mp_defs[i].name, &v))
            json_object_object_add(*ret, mp_defs[i].name, json_object_get(v));
    }
    return 0;
}

/* postcopy-ram and auto-converge are views of x-converge: throttle is auto-converge,
 * postcopy is postcopy-ram, auto is both. */
static const char *const converge_names[] = { "none", "throttle", "postcopy", "auto" };

static unsigned converge_bits(struct json_object *params)
{
    struct json_object *v;
    if (!json_object_object_get_ex(params, "x-converge", &v))
        return 0;
    for (unsigned i = 0; i < 4; i++)
        if (strcmp(json_object_get_string(v), converge_names[i]) == 0)
            return i;
    return 0;
}

static int set_capability(struct json_object *params, const char *name, bool state)
{
    unsigned bit = strcmp(name, "auto-converge") == 0 ? 1 : strcmp(name, "postcopy-ram") == 0 ? 2 : 0;
    if (bit) {
        unsigned bits = converge_bits(params);
        bits = state ? bits | bit : bits & ~bit;
        json_object_object_add(params, "x-converge", json_object_new_string(converge_names[bits]));
        return 0;
    }
    const struct mp_def *d = mp_find(name);
    if (!d || d->kind != MP_CAPABILITY)
        return vs_fail(EINVAL, "capability '%s' is not supported; query-migrate-capabilities "
                       "lists those vmshift has", name);
    struct json_object *b = json_object_new_boolean(state);
    int rc = mp_set(params, d, b);
    json_object_put(b);
    return rc;
}

int qmp_migrate_set_capabilities(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)ret;
    int rc = refuse_while_running(c, "migration capabilities");
    if (rc)
        return rc;
    struct json_object *list, *params = migration_params(c), *copy = NULL;
    if (!json_object_object_get_ex(args, "capabilities", &list) ||
        !json_object_is_type(list, json_type_array))
        return vs_fail(EINVAL, "Invalid parameter type for 'capabilities', expected: array");
    if (!params || json_object_deep_copy(params, &copy, NULL))
        return vs_fail(ENOMEM, "out of memory");
    for (size_t i = 0; i < json_object_array_length(list) && !rc; i++) {
        struct json_object *e = json_object_array_get_idx(list, i);
        const char *name;
        bool state;
        if (!json_object_is_type(e, json_type_object) ||
            ctl_json_get_string(e, "capability", &name) || ctl_json_get_bool(e, "state", &state))
            rc = vs_fail(EINVAL, "capabilities entry %zu must be {\"capability\": NAME, "
                         "\"state\": BOOL}", i + 1);
        else
            rc = set_capability(copy, name, state);
    }
    if (rc) {
        json_object_put(copy);
        return rc;
    }
    json_object_put(c->params);
    c->params = copy;
    return 0;
}

static void add_capability(struct json_object *list, const char *name, bool state)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "capability", json_object_new_string(name));
    json_object_object_add(o, "state", json_object_new_boolean(state));
    json_object_array_add(list, o);
}

int qmp_query_migrate_capabilities(void *ctx, struct json_object *args,
                                   struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    struct json_object *params = migration_params(c), *list = json_object_new_array(), *v;
    if (!params || !list) {
        json_object_put(list);
        return vs_fail(ENOMEM, "out of memory");
    }
    unsigned bits = converge_bits(params);
    add_capability(list, "auto-converge", bits & 1);
    add_capability(list, "postcopy-ram", bits & 2);
    for (size_t i = 0; i < mp_count; i++)
        if (mp_defs[i].kind == MP_CAPABILITY)
            add_capability(list, mp_defs[i].name,
                           json_object_object_get_ex(params, mp_defs[i].name, &v) &&
                           json_object_get_boolean(v));
    json_object_put(*ret);
    *ret = list;
    return 0;
}

int qmp_migrate_cancel(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args, (void)ret;
    if (!migration_running(c))
        return 0; /* as QEMU: nothing to cancel is not an error */
    return vs_migration_cancel(c->migration);
}

int qmp_migrate_start_postcopy(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args, (void)ret;
    if (!c->migration)
        return vs_fail(ENOENT, "no migration is running");
    return vs_postcopy_switch(c->migration);
}

int qmp_migrate_pause(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ctx, (void)args, (void)ret;
    return vs_fail(ENOTSUP, "migrate-pause is not supported: vmshift pauses a post-copy only "
                   "when its connection is lost (status postcopy-paused); recover it with "
                   "migrate {\"uri\": ..., \"resume\": true} on the source");
}

int qmp_migrate_recover(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    if (!c->postcopy)
        return vs_fail(ENOENT, "migrate-recover: no post-copy is arriving here");
    char where[128];
    int rc = vs_postcopy_dest_resume(c->postcopy, where, sizeof(where));
    if (!rc)
        json_object_object_add(*ret, "waiting-on", json_object_new_string(where));
    return rc;
}

int qmp_calc_dirty_rate(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)ret;
    uint64_t t;
    const char *unit = "second", *mode;
    int rc = ctl_json_get_u64(args, "calc-time", &t);
    if (rc)
        return rc;
    if ((rc = ctl_json_get_string(args, "calc-time-unit", &unit)) && rc != -ENOENT)
        return rc;
    if (strcmp(unit, "second") && strcmp(unit, "millisecond"))
        return vs_fail(EINVAL, "calc-time-unit '%s' is unknown; use second or millisecond", unit);
    if (ctl_json_get_string(args, "mode", &mode) == 0 && strcmp(mode, "page-sampling") &&
        strcmp(mode, "dirty-bitmap") && strcmp(mode, "dirty-ring"))
        return vs_fail(EINVAL, "mode '%s' is unknown; use page-sampling, dirty-bitmap or "
                       "dirty-ring (vmshift always counts every dirty page)", mode);
    uint64_t ms = strcmp(unit, "second") == 0 ? t * 1000 : t;
    return dirty_calc_start(&c->dirty, c->vm, migration_running(c), ms);
}

int qmp_query_dirty_rate(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    struct json_object *o = *ret;
    const char *unit = "second";
    if (ctl_json_get_string(args, "calc-time-unit", &unit) == 0 && strcmp(unit, "millisecond"))
        unit = "second";
    int failed;
    if (dirty_calc_busy(&c->dirty, &failed) || failed || !c->dirty.measured) {
        if (failed)
            return failed;
        json_object_object_add(o, "status", json_object_new_string(
                                   c->dirty.running ? "measuring" : "unstarted"));
        return 0;
    }
    const struct vs_dirty_rate *r = &c->dirty.last;
    converge_dirty_rate_json(c->vm, r, o);
    /* QEMU's vcpu-dirty-rate is [{id, dirty-rate (MB/s)}]; our pages/s list keeps its
     * numbers under vcpu-dirty-pages-rate. */
    struct json_object *pages;
    if (json_object_object_get_ex(o, "vcpu-dirty-rate", &pages))
        json_object_object_add(o, "vcpu-dirty-pages-rate", json_object_get(pages));
    struct json_object *per = json_object_new_array();
    for (unsigned i = 0; c->vm->ring && i < r->nr_vcpus; i++) {
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "id", json_object_new_int((int)i));
        json_object_object_add(e, "dirty-rate", json_object_new_int64(
                                   (int64_t)(r->vcpu_pages_per_second[i] * 4096 / 1048576)));
        json_object_array_add(per, e);
    }
    json_object_object_add(o, "vcpu-dirty-rate", per);
    json_object_object_add(o, "status", json_object_new_string("measured"));
    json_object_object_add(o, "dirty-rate",
                           json_object_new_int64((int64_t)(r->pages_per_second * 4096 / 1048576)));
    json_object_object_add(o, "start-time", json_object_new_int64(c->dirty.start_time));
    bool ms = strcmp(unit, "millisecond") == 0;
    json_object_object_add(o, "calc-time", json_object_new_int64(
                               (int64_t)(ms ? r->period_ms : r->period_ms / 1000)));
    json_object_object_add(o, "calc-time-unit", json_object_new_string(unit));
    json_object_object_add(o, "sample-pages", json_object_new_int(0));
    json_object_object_add(o, "mode", json_object_new_string(c->vm->ring ? "dirty-ring"
                                                                          : "dirty-bitmap"));
    return 0;
}

#define PAGES_PER_MB (1048576 / 4096)

static int dirty_limits(struct vm_commands *c, struct json_object *args, uint64_t mb,
                        const char *cmd)
{
    struct vs_vm *vm = c->vm;
    if (!vm->ring)
        return vs_fail(ENOTSUP, "%s needs the KVM dirty ring: start the VM with `vmshift run "
                       "--dirty-ring N`", cmd);
    int rc = refuse_while_running(c, "vCPU dirty limits (the migration's throttle owns them)");
    if (rc)
        return rc;
    uint64_t cpu = 0;
    bool one = ctl_json_get_u64(args, "cpu-index", &cpu) == 0;
    if (one && cpu >= vm->nr_vcpus)
        return vs_fail(EINVAL, "cpu-index %llu is out of range; the VM has %u vCPUs",
                       (unsigned long long)cpu, vm->nr_vcpus);
    uint64_t limits[VS_MAX_VCPUS];
    bool any = false;
    for (unsigned i = 0; i < vm->nr_vcpus && i < VS_MAX_VCPUS; i++) {
        limits[i] = atomic_load(&vm->vcpus[i].throttle.dirty_limit);
        if (!one || i == cpu)
            limits[i] = mb * PAGES_PER_MB;
        any |= limits[i] != 0;
    }
    if (!any) {
        vs_vm_throttle_release(vm);
        return 0;
    }
    return vs_vm_throttle_set(vm, NULL, limits);
}

int qmp_set_vcpu_dirty_limit(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ret;
    uint64_t mb;
    int rc = ctl_json_get_u64(args, "dirty-rate", &mb);
    if (rc)
        return rc;
    if (mb == 0)
        return vs_fail(EINVAL, "dirty-rate 0 would stop the vCPUs; give MB/s above 0, or use "
                       "cancel-vcpu-dirty-limit");
    return dirty_limits(ctx, args, mb, "set-vcpu-dirty-limit");
}

int qmp_cancel_vcpu_dirty_limit(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ret;
    return dirty_limits(ctx, args, 0, "cancel-vcpu-dirty-limit");
}

int qmp_query_vcpu_dirty_limit(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    struct json_object *list = json_object_new_array();
    for (unsigned i = 0; i < c->vm->nr_vcpus; i++) {
        uint64_t pages = atomic_load(&c->vm->vcpus[i].throttle.dirty_limit);
        if (!pages)
            continue;
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "cpu-index", json_object_new_int((int)i));
        json_object_object_add(e, "limit-rate", json_object_new_uint64(pages / PAGES_PER_MB));
        json_object_object_add(e, "current-rate", json_object_new_uint64(0));
        json_object_array_add(list, e);
    }
    json_object_put(*ret);
    *ret = list;
    return 0;
}

void migration_watch(struct vm_commands *c)
{
    struct vs_migration_stats s;
    if (c->migration)
        vs_migration_stats(c->migration, &s, NULL);
    else if (c->postcopy)
        vs_postcopy_dest_stats(c->postcopy, &s);
    else
        return;
    /* Passes first: a client that sees the final status has every pass before it. */
    while (c->migration && c->seen_pass < s.nr_passes) {
        struct json_object *d = json_object_new_object();
        json_object_object_add(d, "pass", json_object_new_int64(++c->seen_pass));
        ctl_server_event(c->server, "MIGRATION_PASS", d);
    }
    if (s.status && strcmp(s.status, c->seen_status) != 0) {
        snprintf(c->seen_status, sizeof(c->seen_status), "%s", s.status);
        struct json_object *d = json_object_new_object();
        json_object_object_add(d, "status", json_object_new_string(s.status));
        ctl_server_event(c->server, "MIGRATION", d);
    }
}
