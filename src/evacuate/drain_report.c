/* The report of `vmshift evacuate`: JSON (per VM, totals, the degree over time, the
 * aggregate bandwidth over time) and the table printed at the end. */
#include "evacuate/drain.h"
#include "host/host_client.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define BW_INTERVAL_S 0.1      /* the VMs' own bandwidth samples are per 100 ms */

static void add_num(struct json_object *o, const char *key, double v)
{
    json_object_object_add(o, key, json_object_new_double(v));
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
    json_object_object_add(o, key, json_object_new_string(v));
}

static double item_bytes(const struct evac_item *it)
{
    return it->report ? host_json_num(host_json_obj(it->report, "ram"), "transferred") : it->bytes;
}

static const char *dest_name(const struct evac_drain *d, const struct evac_item *it)
{
    return it->dest >= 0 ? d->dests[it->dest].name : "";
}

static struct json_object *item_json(const struct evac_drain *d, const struct evac_item *it)
{
    struct json_object *o = json_object_new_object();
    add_str(o, "name", it->name);
    json_object_object_add(o, "mem", json_object_new_uint64(it->mem));
    add_str(o, "result", evac_state_name(it->state));
    if (it->dest >= 0) {
        add_str(o, "to-host", dest_name(d, it));
        add_str(o, "to", it->to);
    }
    add_num(o, "start", it->start_s * 1000);
    add_num(o, "end", it->end_s * 1000);
    if (it->report) {
        add_num(o, "total-time", host_json_num(it->report, "total-time"));
        add_num(o, "downtime", host_json_num(it->report, "downtime"));
        add_num(o, "passes", host_json_num(it->report, "iterations"));
        add_str(o, "ram-digest", host_json_str(it->report, "ram-digest"));
    }
    add_num(o, "bytes", item_bytes(it));
    if (it->digest_checked)
        json_object_object_add(o, "digest-match", json_object_new_boolean(it->digest_match));
    if (it->error[0])
        add_str(o, "error", it->error);
    if (it->report)
        json_object_object_add(o, "migration", json_object_get(it->report));
    return o;
}

/* Every VM's own 100 ms bandwidth samples, placed at its start and added up. */
static struct json_object *aggregate_bandwidth(const struct evac_drain *d)
{
    unsigned nbins = (unsigned)ceil(d->drain_s / BW_INTERVAL_S) + 1;
    double *bins = calloc(nbins, sizeof(*bins));
    struct json_object *bw = json_object_new_object(), *a = json_object_new_array();
    json_object_object_add(bw, "interval-ms", json_object_new_int((int)(BW_INTERVAL_S * 1000)));
    for (unsigned i = 0; bins && i < d->nitems; i++) {
        struct json_object *mbps, *b = host_json_obj(d->items[i].report, "bandwidth");
        if (!b || !json_object_object_get_ex(b, "mbps", &mbps))
            continue;
        unsigned first = (unsigned)floor(d->items[i].start_s / BW_INTERVAL_S + 0.5);
        for (size_t k = 0; k < json_object_array_length(mbps) && first + k < nbins; k++)
            bins[first + k] += json_object_get_double(json_object_array_get_idx(mbps, k));
    }
    for (unsigned k = 0; bins && k < nbins; k++)
        json_object_array_add(a, json_object_new_double(round(bins[k] * 10) / 10));
    free(bins);
    json_object_object_add(bw, "mbps", a);
    return bw;
}

static struct json_object *samples_json(const struct evac_drain *d)
{
    struct json_object *o = json_object_new_object(), *t = json_object_new_array(),
                       *m = json_object_new_array(), *act = json_object_new_array(),
                       *deg = json_object_new_array();
    for (unsigned i = 0; i < d->nsamples; i++) {
        json_object_array_add(t, json_object_new_double(round(d->samples[i].t_s * 1000) / 1000));
        json_object_array_add(m, json_object_new_double(round(d->samples[i].mbps * 10) / 10));
        json_object_array_add(act, json_object_new_int((int)d->samples[i].active));
        json_object_array_add(deg, json_object_new_int((int)d->samples[i].degree));
    }
    json_object_object_add(o, "t", t);
    json_object_object_add(o, "mbps", m);
    json_object_object_add(o, "active", act);
    json_object_object_add(o, "degree", deg);
    return o;
}

static double total_bytes(const struct evac_drain *d)
{
    double b = 0;
    for (unsigned i = 0; i < d->nitems; i++)
        b += item_bytes(&d->items[i]);
    return b;
}

struct json_object *evac_report_json(const struct evac_drain *d)
{
    const struct evacuate_options *o = d->opt;
    struct json_object *r = json_object_new_object(), *to = json_object_new_array(),
                       *vms = json_object_new_array();
    add_str(r, "from", o->from);
    add_str(r, "source", d->source_name);
    for (unsigned i = 0; i < d->ndests; i++)
        json_object_array_add(to, json_object_new_string(d->dests[i].host));
    json_object_object_add(r, "to", to);
    if (o->parallel_auto)
        add_str(r, "parallel", "auto");
    else
        json_object_object_add(r, "parallel", json_object_new_int((int)o->parallel));
    json_object_object_add(r, "max-parallel", json_object_new_int((int)o->max_parallel));
    add_num(r, "drain-time", d->drain_s * 1000);
    add_num(r, "elapsed", d->elapsed_s * 1000);
    json_object_object_add(r, "vms-total", json_object_new_int((int)d->nitems));
    json_object_object_add(r, "vms-moved", json_object_new_int((int)evac_count(d, EVAC_COMPLETED)));
    add_num(r, "bytes", total_bytes(d));
    add_num(r, "mbps", d->drain_s > 0 ? total_bytes(d) * 8 / d->drain_s / 1e6 : 0);
    json_object_object_add(r, "interrupted", json_object_new_boolean(d->interrupted));
    for (unsigned i = 0; i < d->nitems; i++)
        json_object_array_add(vms, item_json(d, &d->items[d->order[i]]));
    json_object_object_add(r, "vms", vms);
    json_object_object_add(r, "bandwidth", aggregate_bandwidth(d));
    json_object_object_add(r, "samples", samples_json(d));
    return r;
}

/* The degrees in the order they were used, e.g. "2 -> 4 -> 2". */
static void degree_path(const struct evac_drain *d, char *buf, size_t len)
{
    buf[0] = '\0';
    unsigned last = 0;
    for (unsigned i = 0; i < d->nsamples; i++) {
        if (d->samples[i].degree == last)
            continue;
        last = d->samples[i].degree;
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s%u", n ? " -> " : "", last);
    }
}

void evac_print_summary(const struct evac_drain *d, FILE *f)
{
    fprintf(f, "%-16s %-12s %-11s %9s %12s %10s %6s  %s\n", "VM", "to", "result", "time s",
            "downtime ms", "sent MiB", "passes", "digest");
    for (unsigned k = 0; k < d->nitems; k++) {
        const struct evac_item *it = &d->items[d->order[k]];
        const char *digest = it->digest_checked ? (it->digest_match ? "equal" : "DIFFERS") : "-";
        fprintf(f, "%-16s %-12.12s %-11s %9.2f %12.1f %10.1f %6.0f  %s\n", it->name,
                dest_name(d, it), evac_state_name(it->state),
                it->report ? host_json_num(it->report, "total-time") / 1000 : 0,
                it->report ? host_json_num(it->report, "downtime") : 0,
                item_bytes(it) / 1048576.0, it->report ? host_json_num(it->report, "iterations") : 0,
                digest);
        if (it->error[0])
            fprintf(f, "    %s\n", it->error);
    }
    char path[256];
    degree_path(d, path, sizeof(path));
    fprintf(f, "drain time %.2f s: %u of %u VM(s) moved, %.1f MiB sent, %.0f Mbit/s on average; "
            "parallel %s (%s)\n", d->drain_s, evac_count(d, EVAC_COMPLETED), d->nitems, total_bytes(d) / 1048576.0,
            d->drain_s > 0 ? total_bytes(d) * 8 / d->drain_s / 1e6 : 0,
            d->opt->parallel_auto ? "auto" : "fixed", path[0] ? path : "-");
    /* Aggregate bandwidth per second, from the VMs' own 100 ms samples. */
    struct json_object *bw = aggregate_bandwidth(d), *mbps;
    if (json_object_object_get_ex(bw, "mbps", &mbps) && json_object_array_length(mbps)) {
        fprintf(f, "aggregate Mbit/s, per second:");
        size_t n = json_object_array_length(mbps);
        for (size_t s = 0; s * 10 < n; s++) {
            double sum = 0;
            size_t k;
            for (k = 0; k < 10 && s * 10 + k < n; k++)
                sum += json_object_get_double(json_object_array_get_idx(mbps, s * 10 + k));
            fprintf(f, " %.0f", sum / (double)k);
        }
        fputc('\n', f);
    }
    json_object_put(bw);
}
