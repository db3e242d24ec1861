#include "evacuate/drain.h"
#include "evacuate/placement.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/size.h"
#include "common/stop_signal.h"
#include "host/host_client.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADOPT_TIMEOUT_S 30.0    /* a completed VM must show up running at the destination */
#define MAX_POLL_FAILURES 25    /* looks at a migration that failed in a row: source lost */

const char *evac_state_name(enum evac_state s)
{
    static const char *const names[] = { "pending", "migrating", "adopting", "completed",
                                         "failed", "cancelled", "refused", "unconfirmed",
                                         "skipped" };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static double now_s(const struct evac_drain *d)
{
    return (double)(vs_clock_ns() - d->t0_ns) / 1e9;
}

static void say(const struct evac_drain *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const struct evac_drain *d, const char *fmt, ...)
{
    if (d->opt->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %7.2fs  ", now_s(d));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static struct json_object *name_args(const char *name)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "name", json_object_new_string(name));
    return a;
}

/* {"cmd": "vm-ctl", "name": NAME, "vm-cmd": CMD} plus `extra`'s fields, to the source. */
static int source_vm_cmd(struct evac_drain *d, const char *name, const char *cmd,
                         struct json_object *extra, struct json_object **reply)
{
    struct json_object *a = name_args(name);
    json_object_object_add(a, "vm-cmd", json_object_new_string(cmd));
    if (extra) {
        json_object_object_foreach(extra, k, v) {
            json_object_object_add(a, k, json_object_get(v));
        }
    }
    int rc = host_call(&d->links, d->opt->from, "vm-ctl", a, reply);
    json_object_put(a);
    return rc;
}

static void host_vm_stop_quietly(struct evac_drain *d, const char *host,
                                 const char *name)
{
    struct json_object *a = name_args(name);
    if (host_call(&d->links, host, "vm-stop", a, NULL))
        fprintf(stderr, "vmshift evacuate: %s\n", vs_last_error());
    json_object_put(a);
}

static void set_error(struct evac_item *it, const char *msg)
{
    snprintf(it->error, sizeof(it->error), "%s", msg);
}

/* ---- listing ------------------------------------------------------------------- */

static bool wanted(const struct evacuate_options *o, const char *name)
{
    if (!o->nvms)
        return true;
    for (unsigned i = 0; i < o->nvms; i++)
        if (strcmp(o->vms[i], name) == 0)
            return true;
    return false;
}

static int add_item(struct evac_drain *d, const char *name, uint64_t mem, unsigned vcpus,
                    enum evac_state state, const char *why)
{
    if (d->nitems >= EVAC_MAX_VMS)
        return vs_fail(E2BIG, "the source lists more than %d VMs", EVAC_MAX_VMS);
    struct evac_item *it = &d->items[d->nitems++];
    memset(it, 0, sizeof(*it));
    snprintf(it->name, sizeof(it->name), "%s", name);
    it->mem = mem;
    it->vcpus = vcpus;
    it->state = state;
    it->dest = -1;
    if (why)
        set_error(it, why);
    return 0;
}

static int list_source(struct evac_drain *d)
{
    struct json_object *r;
    int rc = host_call(&d->links, d->opt->from, "vm-list", NULL, &r);
    if (rc)
        return rc;
    snprintf(d->source_name, sizeof(d->source_name), "%s", host_json_str(r, "host"));
    struct json_object *vms;
    if (!json_object_object_get_ex(r, "vms", &vms) || !json_object_is_type(vms, json_type_array)) {
        json_object_put(r);
        return vs_fail(EPROTO, "host %s: vm-list has no \"vms\" array", d->opt->from);
    }
    for (size_t i = 0; !rc && i < json_object_array_length(vms); i++) {
        struct json_object *v = json_object_array_get_idx(vms, i);
        const char *name = host_json_str(v, "name"), *state = host_json_str(v, "state");
        if (!wanted(d->opt, name))
            continue;
        bool live = !strcmp(state, "running") || !strcmp(state, "starting") ||
                    !strcmp(state, "incoming") || !strcmp(state, "stopping");
        if (!strcmp(state, "running"))
            rc = add_item(d, name, (uint64_t)host_json_num(v, "mem"),
                          (unsigned)host_json_num(v, "vcpus"), EVAC_PENDING, NULL);
        else if (live || d->opt->nvms) {
            char why[96];
            snprintf(why, sizeof(why), "it is %s on the source, not running", state);
            rc = add_item(d, name, (uint64_t)host_json_num(v, "mem"), 0, EVAC_SKIPPED, why);
        }
    }
    json_object_put(r);
    for (unsigned i = 0; !rc && i < d->opt->nvms; i++) {
        bool found = false;
        for (unsigned k = 0; k < d->nitems; k++)
            found |= strcmp(d->items[k].name, d->opt->vms[i]) == 0;
        if (!found)
            rc = add_item(d, d->opt->vms[i], 0, 0, EVAC_SKIPPED, "no such VM on the source");
    }
    return rc;
}

static void plan_order(struct evac_drain *d)
{
    struct evac_vm_size sizes[EVAC_MAX_VMS];
    for (unsigned i = 0; i < d->nitems; i++)
        sizes[i] = (struct evac_vm_size){ .name = d->items[i].name, .mem = d->items[i].mem };
    evac_order(sizes, d->order, d->nitems);
}

/* ---- starting a migration -------------------------------------------------------- */

static void dest_views(struct evac_drain *d, struct evac_dest_view *v)
{
    for (unsigned i = 0; i < d->ndests; i++) {
        struct json_object *r;
        memset(&v[i], 0, sizeof(v[i]));
        v[i].incoming = d->dests[i].incoming;
        if (host_call(&d->links, d->dests[i].host, "host-status", NULL, &r))
            continue;
        v[i].reachable = true;
        v[i].limited = host_json_num(r, "max_mem") > 0;
        v[i].free = (uint64_t)host_json_num(r, "mem_free");
        if (!d->dests[i].name[0])
            snprintf(d->dests[i].name, sizeof(d->dests[i].name), "%s", host_json_str(r, "host"));
        json_object_put(r);
    }
}

static void append_reason(char *buf, size_t len, const char *reason)
{
    size_t n = strlen(buf);
    snprintf(buf + n, len - n, "%s%s", n ? "; " : "", reason);
}

/* Ask the destinations, best first, until one gets ready for the VM. */
static int place(struct evac_drain *d, struct evac_item *it)
{
    struct evac_dest_view v[EVAC_MAX_DESTS];
    char reasons[sizeof(it->error)] = "";
    dest_views(d, v);
    for (unsigned i = 0; i < d->ndests; i++)
        if (!v[i].reachable)
            append_reason(reasons, sizeof(reasons), "host unreachable");
    for (;;) {
        int k = evac_pick_dest(v, d->ndests, it->mem);
        if (k < 0)
            break;
        v[k].tried = true;
        struct json_object *a = name_args(it->name), *r;
        json_object_object_add(a, "mem", json_object_new_uint64(it->mem));
        json_object_object_add(a, "vcpus", json_object_new_int((int)it->vcpus));
        int rc = host_call(&d->links, d->dests[k].host, "vm-receive", a, &r);
        json_object_put(a);
        if (rc) {
            append_reason(reasons, sizeof(reasons), vs_last_error());
            continue;
        }
        snprintf(it->to, sizeof(it->to), "%s", host_json_str(r, "to"));
        json_object_put(r);
        it->dest = (int)k;
        return 0;
    }
    for (unsigned i = 0; i < d->ndests; i++) {
        if (v[i].reachable && !v[i].tried && v[i].limited && v[i].free < it->mem) {
            char need[32], left[32], line[200];
            snprintf(line, sizeof(line), "host %s: %s free of its budget, the VM needs %s",
                     d->dests[i].name[0] ? d->dests[i].name : d->dests[i].host, vs_format_size(v[i].free, left, sizeof(left)),
                     vs_format_size(it->mem, need, sizeof(need)));
            append_reason(reasons, sizeof(reasons), line);
        }
    }
    snprintf(it->error, sizeof(it->error), "no destination took it: %s",
             reasons[0] ? reasons : "no destination");
    return -ENOSPC;
}

static void start_item(struct evac_drain *d, struct evac_item *it)
{
    if (place(d, it)) {
        it->state = EVAC_REFUSED;
        it->start_s = it->end_s = now_s(d);
        say(d, "%s refused: %s; it keeps running on the source", it->name, it->error);
        return;
    }
    struct evac_dest *dst = &d->dests[it->dest];
    struct json_object *args = json_object_new_object();
    if (d->opt->migrate) {
        json_object_object_foreach(d->opt->migrate, k, v) {
            json_object_object_add(args, k, json_object_get(v));
        }
    }
    json_object_object_add(args, "to", json_object_new_string(it->to));
    it->start_s = now_s(d);
    int rc = source_vm_cmd(d, it->name, "migrate", args, NULL);
    json_object_put(args);
    if (rc) {
        set_error(it, vs_last_error());
        it->state = EVAC_FAILED;
        it->end_s = now_s(d);
        host_vm_stop_quietly(d, dst->host, it->name);
        say(d, "%s could not start migrating: %s", it->name, it->error);
        return;
    }
    it->state = EVAC_MIGRATING;
    dst->incoming++;
    say(d, "%s (%.0f MiB) -> %s (%s)", it->name, (double)it->mem / 1048576.0, dst->name, it->to);
}

/* ---- following the migrations ----------------------------------------------------- */

static bool is_final(const char *status)
{
    return !strcmp(status, "completed") || !strcmp(status, "failed") ||
           !strcmp(status, "cancelled") || !strcmp(status, "unconfirmed");
}

static void migration_ended(struct evac_drain *d, struct evac_item *it, struct json_object *m)
{
    const char *status = host_json_str(m, "status");
    struct evac_dest *dst = &d->dests[it->dest];
    it->report = json_object_get(m);
    it->end_s = it->start_s + host_json_num(m, "total-time") / 1000.0;
    dst->incoming--;
    if (!strcmp(status, "completed")) {
        it->state = EVAC_ADOPTING;
        it->adopt_deadline_s = now_s(d) + ADOPT_TIMEOUT_S;
        return;
    }
    set_error(it, host_json_str(m, "error"));
    if (!strcmp(status, "unconfirmed")) {
        it->state = EVAC_UNCONFIRMED;
        say(d, "%s unconfirmed: %s; check %s", it->name, it->error, dst->name);
        return;
    }
    it->state = !strcmp(status, "cancelled") ? EVAC_CANCELLED : EVAC_FAILED;
    host_vm_stop_quietly(d, dst->host, it->name);   /* release the destination's reservation */
    say(d, "%s %s: %s; it keeps running on the source", it->name, status, it->error);
}

static void poll_item(struct evac_drain *d, struct evac_item *it)
{
    struct json_object *r;
    if (source_vm_cmd(d, it->name, "migrate-status", NULL, &r)) {
        if (++it->poll_failures >= MAX_POLL_FAILURES) {
            snprintf(it->error, sizeof(it->error), "lost the source VM: %s", vs_last_error());
            it->state = EVAC_FAILED;
            it->end_s = now_s(d);
            d->dests[it->dest].incoming--;
            host_vm_stop_quietly(d, d->dests[it->dest].host, it->name);
            say(d, "%s failed: %s", it->name, it->error);
        }
        return;
    }
    it->poll_failures = 0;
    struct json_object *m = host_json_obj(r, "migration"), *ram = host_json_obj(m, "ram");
    it->bytes = host_json_num(ram, "transferred");
    it->passes = (unsigned)host_json_num(m, "iterations");
    it->struggling = par_is_struggling(it->passes,
                                       host_json_num(ram, "dirty-pages-rate") * 4096.0,
                                       host_json_num(ram, "mbps") * 1e6 / 8.0);
    if (d->interrupted && !it->cancel_sent) {
        it->cancel_sent = true;
        if (source_vm_cmd(d, it->name, "cancel", NULL, NULL))
            say(d, "%s: cannot cancel: %s", it->name, vs_last_error());
    }
    if (m && is_final(host_json_str(m, "status")))
        migration_ended(d, it, m);
    json_object_put(r);
}

/* A completed VM: confirm it runs at the destination with the same RAM digest, then stop
 * the source's monitor (its VM is `migrated` and can never run there again). */
static void adopt_item(struct evac_drain *d, struct evac_item *it)
{
    struct evac_dest *dst = &d->dests[it->dest];
    struct json_object *a = name_args(it->name), *r = NULL;
    int rc = host_call(&d->links, dst->host, "vm-status", a, &r);
    json_object_put(a);
    struct json_object *vm = host_json_obj(r, "vm");
    bool running = !rc && !strcmp(host_json_str(vm, "state"), "running");
    if (!running && now_s(d) < it->adopt_deadline_s) {
        json_object_put(r);
        return;
    }
    if (running) {
        struct json_object *in = host_json_obj(host_json_obj(r, "status"), "incoming");
        it->digest_checked = true;
        it->digest_match = in && !strcmp(host_json_str(in, "ram-digest"),
                                         host_json_str(it->report, "ram-digest"));
        if (!it->digest_match)
            snprintf(it->error, sizeof(it->error), "the destination reports RAM digest '%s', "
                     "the source '%s'", host_json_str(in, "ram-digest"),
                     host_json_str(it->report, "ram-digest"));
    } else {
        char msg[sizeof(it->error)];
        snprintf(msg, sizeof(msg), "migrated, but %s does not list it running after %.0f s "
                 "(%s)", dst->name, ADOPT_TIMEOUT_S,
                 rc ? vs_last_error() : host_json_str(vm, "state"));
        set_error(it, msg);
    }
    json_object_put(r);
    host_vm_stop_quietly(d, d->opt->from, it->name);
    it->state = EVAC_COMPLETED;
    struct json_object *ram = host_json_obj(it->report, "ram");
    say(d, "%s completed in %.2f s, downtime %.1f ms, %.1f MiB sent%s%s", it->name,
        host_json_num(it->report, "total-time") / 1000.0,
        host_json_num(it->report, "downtime"), host_json_num(ram, "transferred") / 1048576.0,
        it->error[0] ? "; " : "", it->error);
}

/* ---- the loop --------------------------------------------------------------------- */

static void record_sample(struct evac_drain *d, double t, double mbps, unsigned active)
{
    if (d->nsamples == d->samples_cap) {
        unsigned cap = d->samples_cap ? d->samples_cap * 2 : 256;
        struct evac_sample *s = realloc(d->samples, cap * sizeof(*s));
        if (!s)
            return;
        d->samples = s;
        d->samples_cap = cap;
    }
    d->samples[d->nsamples++] = (struct evac_sample){ .t_s = t, .mbps = mbps, .active = active,
                                                      .degree = d->degree };
}

unsigned evac_count(const struct evac_drain *d, enum evac_state s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < d->nitems; i++)
        n += d->items[i].state == s;
    return n;
}

static unsigned waiting(const struct evac_drain *d)
{
    unsigned n = 0;
    for (unsigned k = d->next; k < d->nitems; k++)
        n += d->items[d->order[k]].state == EVAC_PENDING;
    return n;
}

/* Look at every running migration; feed the controller; start what the degree allows. */
static void step(struct evac_drain *d, double *last_t)
{
    unsigned active = evac_count(d, EVAC_MIGRATING);
    double bytes = 0;
    for (unsigned i = 0; i < d->nitems; i++) {
        struct evac_item *it = &d->items[i];
        if (it->state == EVAC_MIGRATING) {
            poll_item(d, it);
            bytes += it->bytes - it->prev_bytes;
            it->prev_bytes = it->bytes;
        }
        if (it->state == EVAC_ADOPTING)
            adopt_item(d, it);
    }
    double t = now_s(d), dt = t - *last_t;
    *last_t = t;
    unsigned struggling = 0;
    for (unsigned i = 0; i < d->nitems; i++)
        struggling += d->items[i].state == EVAC_MIGRATING && d->items[i].struggling;
    if (d->opt->parallel_auto) {
        struct par_sample s = { .dt_s = dt, .bytes = bytes, .active = active,
                                .struggling = struggling, .waiting = waiting(d) };
        unsigned before = d->degree;
        d->degree = par_update(&d->par, &s);
        if (d->degree != before)
            say(d, "parallel %u -> %u: %s", before, d->degree, d->par.reason);
    }
    record_sample(d, t, dt > 0 ? bytes * 8 / dt / 1e6 : 0, active);
    if (vs_stop_signal() && !d->interrupted) {
        d->interrupted = true;
        say(d, "interrupted: no more migrations start; running ones are cancelled");
    }
    while (!d->interrupted && evac_count(d, EVAC_MIGRATING) < d->degree && d->next < d->nitems) {
        struct evac_item *it = &d->items[d->order[d->next++]];
        if (it->state == EVAC_PENDING)
            start_item(d, it);
    }
    if (d->interrupted) {
        for (; d->next < d->nitems; d->next++) {
            struct evac_item *it = &d->items[d->order[d->next]];
            if (it->state == EVAC_PENDING) {
                it->state = EVAC_SKIPPED;
                set_error(it, "the evacuation was interrupted before it started");
            }
        }
    }
}

static void finish_times(struct evac_drain *d)
{
    d->drain_s = 0;
    for (unsigned i = 0; i < d->nitems; i++)
        if (d->items[i].end_s > d->drain_s)
            d->drain_s = d->items[i].end_s;
    d->elapsed_s = now_s(d);
}

int evac_drain_run(const struct evacuate_options *o, const struct ctl_remote *remote,
                   struct evac_drain *d)
{
    memset(d, 0, sizeof(*d));
    d->opt = o;
    host_links_init(&d->links, remote);
    for (unsigned i = 0; i < o->nto; i++)
        d->dests[d->ndests++].host = o->to[i];
    d->t0_ns = vs_clock_ns();
    int rc = list_source(d);
    if (rc)
        return rc;
    plan_order(d);
    par_init(&d->par, o->max_parallel);
    d->degree = o->parallel_auto ? d->par.degree : o->parallel;
    vs_stop_signal_install();
    d->t0_ns = vs_clock_ns();
    say(d, "draining %s: %u VM(s) to %u host(s), %s %u at a time", d->source_name,
        evac_count(d, EVAC_PENDING), d->ndests, o->parallel_auto ? "parallel auto, starting with" :
        "parallel", d->degree);
    double last_t = 0;
    for (;;) {
        step(d, &last_t);
        if (!evac_count(d, EVAC_PENDING) && !evac_count(d, EVAC_MIGRATING) && !evac_count(d, EVAC_ADOPTING))
            break;
        vs_sleep_ns((uint64_t)(o->poll_s * 1e9));
    }
    finish_times(d);
    for (unsigned i = 0; i < d->nitems; i++)
        if (d->items[i].state != EVAC_COMPLETED || !d->items[i].digest_match)
            return 1;
    return 0;
}

void evac_drain_free(struct evac_drain *d)
{
    for (unsigned i = 0; i < d->nitems; i++)
        json_object_put(d->items[i].report);
    free(d->samples);
    d->samples = NULL;
    d->nitems = 0;
    host_links_close(&d->links);
}
