#include "ctl/converge_commands.h"
#include "common/error.h"
#include "migrate/converge_model.h"
#include "migrate/dirty_rate.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int converge_measure_dirty_rate(struct vs_vm *vm, bool migrating, uint64_t period_ms,
                                struct vs_dirty_rate *r)
{
    pthread_mutex_lock(&vm->lock);
    enum vs_vm_state st = vm->state;
    pthread_mutex_unlock(&vm->lock);
    if (st == VS_VM_MIGRATED)
        return vs_fail(EINVAL, "the VM has migrated; measure it on the destination");
    if (migrating)
        return vs_fail(EBUSY, "a migration is running and owns dirty logging; its report has "
                       "the rate (query-migrate: ram.dirty-pages-rate, ram.vcpu-dirty-rate)");
    return vs_dirty_rate_measure(vm, period_ms, r);
}

void converge_dirty_rate_json(struct vs_vm *vm, const struct vs_dirty_rate *rp,
                              struct json_object *reply)
{
    const struct vs_dirty_rate r = *rp;
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
}
