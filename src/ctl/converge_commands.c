#include "ctl/converge_commands.h"
#include "common/error.h"
#include "migrate/convergence/converge_model.h"
#include "migrate/convergence/dirty_rate.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void *measure_thread(void *arg)
{
    struct dirty_calc *d = arg;
    vs_clear_error();
    d->rc = vs_dirty_rate_measure(d->vm, d->period_ms, &d->next);
    if (d->rc)
        snprintf(d->error, sizeof(d->error), "%s", vs_last_error());
    atomic_store(&d->done, true);
    return NULL;
}

int dirty_calc_start(struct dirty_calc *d, struct vs_vm *vm, bool migrating, uint64_t period_ms)
{
    int failed = 0;
    if (dirty_calc_busy(d, &failed))
        return vs_fail(EBUSY, "a dirty-rate measurement is running; query-dirty-rate says "
                       "when it is measured");
    pthread_mutex_lock(&vm->lock);
    enum vs_vm_state st = vm->state;
    pthread_mutex_unlock(&vm->lock);
    if (st == VS_VM_MIGRATED)
        return vs_fail(EINVAL, "the VM has migrated; measure it on the destination");
    if (migrating)
        return vs_fail(EBUSY, "a migration is running and owns dirty logging; its report has "
                       "the rate (query-migrate: ram.dirty-pages-rate, ram.vcpu-dirty-rate)");
    if (period_ms < VS_DIRTY_RATE_MIN_MS || period_ms > VS_DIRTY_RATE_MAX_MS)
        return vs_fail(EINVAL, "calc-time %llu ms is out of range; give %d to %d ms",
                       (unsigned long long)period_ms, VS_DIRTY_RATE_MIN_MS,
                       VS_DIRTY_RATE_MAX_MS);
    d->vm = vm;
    d->period_ms = period_ms;
    d->rc = 0;
    d->start_time = (int64_t)time(NULL);
    atomic_store(&d->done, false);
    int rc = pthread_create(&d->thread, NULL, measure_thread, d);
    if (rc)
        return vs_fail(rc, "cannot start the dirty-rate measurement: %s", strerror(rc));
    d->running = true;
    return 0;
}

bool dirty_calc_busy(struct dirty_calc *d, int *failed)
{
    *failed = 0;
    if (!d->running)
        return false;
    if (!atomic_load(&d->done))
        return true;
    pthread_join(d->thread, NULL);
    d->running = false;
    if (d->rc)
        *failed = vs_fail(-d->rc, "%s", d->error);
    else
        d->last = d->next, d->measured = true;
    return false;
}

void dirty_calc_stop(struct dirty_calc *d)
{
    if (d->running)
        pthread_join(d->thread, NULL);
    d->running = false;
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
