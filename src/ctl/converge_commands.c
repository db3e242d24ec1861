#include "ctl/converge_commands.h"
#include "ctl/ctl_json.h"
#include "common/error.h"
#include "migrate/converge_model.h"
#include "migrate/dirty_rate.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static int parse_converge(const char *name, enum vs_converge *out)
{
    if (strcmp(name, "none") == 0)
        *out = VS_CONVERGE_NONE;
    else if (strcmp(name, "throttle") == 0)
        *out = VS_CONVERGE_THROTTLE;
    else if (strcmp(name, "postcopy") == 0)
        *out = VS_CONVERGE_POSTCOPY;
    else if (strcmp(name, "auto") == 0)
        *out = VS_CONVERGE_AUTO;
    else
        return vs_fail(EINVAL, "converge='%s' is unknown; use none, throttle, postcopy or auto",
                       name);
    return 0;
}

/* "500,1000,2000" or [500, 1000, 2000]; the order and bounds are checked with the rest of
 * the policy when the migration starts. */
static int parse_schedule(struct json_object *v, struct vs_migration_opts *o)
{
    double steps[VS_CONV_MAX_STEPS];
    unsigned n = 0;
    if (json_object_is_type(v, json_type_array)) {
        size_t len = json_object_array_length(v);
        if (len == 0 || len > VS_CONV_MAX_STEPS)
            return vs_fail(EINVAL, "downtime_schedule has %zu steps; give 1 to %d", len,
                           VS_CONV_MAX_STEPS);
        for (size_t i = 0; i < len; i++) {
            struct json_object *e = json_object_array_get_idx(v, i);
            if (!json_object_is_type(e, json_type_int) || json_object_get_int64(e) <= 0)
                return vs_fail(EINVAL, "downtime_schedule entry %zu is not a number of "
                               "milliseconds above 0", i + 1);
            steps[n++] = (double)json_object_get_int64(e);
        }
    } else if (json_object_is_type(v, json_type_string)) {
        int rc = vs_conv_parse_schedule(json_object_get_string(v), steps, &n);
        if (rc)
            return rc;
    } else {
        return vs_fail(EINVAL, "downtime_schedule must be milliseconds like \"500,1000,2000\"");
    }
    for (unsigned i = 0; i < n; i++)
        o->downtime_schedule_ms[i] = (uint64_t)steps[i];
    o->nr_downtime_steps = n;
    return 0;
}

int converge_migrate_opts(struct json_object *req, struct vs_migration_opts *o)
{
    const char *name;
    struct json_object *v;
    uint64_t ms;
    int rc;
    if ((rc = ctl_json_get_string(req, "converge", &name)) == 0) {
        if ((rc = parse_converge(name, &o->converge)))
            return rc;
    } else if (rc != -ENOENT) {
        return rc;
    }
    if (json_object_object_get_ex(req, "downtime_schedule", &v) && (rc = parse_schedule(v, o)))
        return rc;
    if ((rc = ctl_json_get_u64(req, "max_downtime", &ms)) == 0)
        o->max_downtime_ms = ms;
    else if (rc != -ENOENT)
        return rc;
    return 0;
}

int converge_cmd_dirty_rate(struct vs_vm *vm, bool migrating, struct json_object *req,
                            struct json_object *reply)
{
    uint64_t period = 1000;
    int rc = ctl_json_get_u64(req, "period_ms", &period);
    if (rc && rc != -ENOENT)
        return rc;
    pthread_mutex_lock(&vm->lock);
    enum vs_vm_state st = vm->state;
    pthread_mutex_unlock(&vm->lock);
    if (st == VS_VM_MIGRATED)
        return vs_fail(EINVAL, "the VM has migrated; measure it on the destination");
    if (migrating)
        return vs_fail(EBUSY, "a migration is running and owns dirty logging; its report has "
                       "the rate (migrate-status: ram.dirty-pages-rate, ram.vcpu-dirty-rate)");
    struct vs_dirty_rate r;
    if ((rc = vs_dirty_rate_measure(vm, period, &r)))
        return rc;
    json_object_object_add(reply, "tracking", json_object_new_string(r.tracking));
    json_object_object_add(reply, "period-ms", json_object_new_uint64(r.period_ms));
    json_object_object_add(reply, "dirty-pages", json_object_new_uint64(r.dirty_pages));
    json_object_object_add(reply, "dirty-pages-rate", json_object_new_double(r.pages_per_second));
    json_object_object_add(reply, "dirty-bytes-rate",
                           json_object_new_double(r.pages_per_second * 4096));
    json_object_object_add(reply, "saturated", json_object_new_boolean(r.saturated));
    json_object_object_add(reply, "working-set", json_object_new_uint64(r.working_set_bytes));
    json_object_object_add(reply, "ram", json_object_new_uint64(vm->mem.size));
    struct json_object *samples = json_object_new_array();
    for (unsigned i = 0; i < VS_DIRTY_RATE_SAMPLES; i++) {
        struct json_object *s = json_object_new_object();
        json_object_object_add(s, "t-ms", json_object_new_double(r.t_ms[i]));
        json_object_object_add(s, "dirty-pages", json_object_new_uint64(r.pages[i]));
        json_object_array_add(samples, s);
    }
    json_object_object_add(reply, "samples", samples);
    struct json_object *per = json_object_new_array();
    for (unsigned i = 0; vm->ring && i < r.nr_vcpus; i++)
        json_object_array_add(per, json_object_new_double(r.vcpu_pages_per_second[i]));
    json_object_object_add(reply, "vcpu-dirty-rate", per);
    return 0;
}
