#include "migrate/report.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#define MS(ns) ((double)(ns) / 1e6)

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
    json_object_object_add(o, k, json_object_new_uint64(v));
}

static void add_double(struct json_object *o, const char *k, double v)
{
    json_object_object_add(o, k, json_object_new_double(v));
}

static struct json_object *double_array(const double *v, unsigned n)
{
    struct json_object *a = json_object_new_array();
    for (unsigned i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_double(v[i]));
    return a;
}

/* --with-disks: the disks' blocks that went with the RAM. */
static void add_disk(struct json_object *r, const struct vs_disk_report *d)
{
    struct json_object *o = json_object_new_object();
    add_u64(o, "disks", d->disks);
    add_u64(o, "size", d->size_bytes);
    add_u64(o, "allocated", d->allocated_bytes);
    add_u64(o, "blocks", d->blocks);
    add_u64(o, "zero-blocks", d->zero_blocks);
    add_u64(o, "bytes", d->bytes);
    add_u64(o, "passes", d->passes);
    add_double(o, "bulk-time", MS(d->bulk_ns));
    add_u64(o, "final-blocks", d->final_blocks);
    add_double(o, "digest-time", MS(d->digest_ns));
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)d->digest);
    json_object_object_add(o, "digest", json_object_new_string(hex));
    if (d->audit != VS_DISK_AUDIT_NONE) {
        json_object_object_add(o, "audit", json_object_new_string(
            d->audit == VS_DISK_AUDIT_EQUAL ? "equal" : "differs"));
        add_double(o, "audit-time", MS(d->audit_ns));
        if (d->audit == VS_DISK_AUDIT_DIFFERS)
            add_u64(o, "audit-block", d->audit_block);
    }
    json_object_object_add(r, "disk", o);
}

/* --converge, the downtime policy, the throttle and the guest's progress. */
static void add_convergence(struct json_object *r, const struct vs_converge_stats *c)
{
    unsigned nv = c->nr_vcpus < VS_REPORT_MAX_VCPUS ? c->nr_vcpus : VS_REPORT_MAX_VCPUS;
    json_object_object_add(r, "converge", json_object_new_string(c->strategy ? c->strategy : "none"));
    json_object_object_add(r, "convergence", json_object_new_string(c->state ? c->state : "none"));
    add_double(r, "expected-total-time", c->expected_total_ms);
    add_u64(r, "expected-passes", c->expected_passes);
    add_u64(r, "max-downtime", c->max_downtime_ms);
    struct json_object *steps = json_object_new_array();
    for (unsigned i = 0; i < c->nr_steps && i < VS_REPORT_MAX_STEPS; i++)
        json_object_array_add(steps, json_object_new_uint64(c->schedule_ms[i]));
    json_object_object_add(r, "downtime-schedule", steps);
    add_u64(r, "downtime-steps-used", c->steps_used);
    add_u64(r, "switchover-retries", c->switchover_retries);

    struct json_object *t = json_object_new_object();
    json_object_object_add(t, "mode", json_object_new_string(c->throttle_mode ? c->throttle_mode : "none"));
    add_double(t, "started-at", MS(c->throttle_start_ns));
    add_double(t, "percent", c->throttle_pct);
    add_double(t, "max-percent", c->throttle_max_pct);
    json_object_object_add(t, "vcpu-dirty-limit", double_array(c->vcpu_dirty_limit, nv));
    add_double(t, "guest-baseline-pages-per-second", c->guest_baseline_pps);
    add_double(t, "guest-stall-time", c->guest_stall_ms);
    add_u64(t, "interval-ms", c->sample_ms);
    struct json_object *pct = json_object_new_array(), *gps = json_object_new_array();
    for (uint32_t i = 1; c->sample_ms && i < c->nr_samples; i++) {
        double ns = (double)(c->slept_ns[i] - c->slept_ns[i - 1]);
        double share = nv ? ns * 100 / (nv * c->sample_ms * 1e6) : 0;
        json_object_array_add(pct, json_object_new_double(share > 100 ? 100 : share));
        double pages = c->guest_pages[i] >= c->guest_pages[i - 1] ?
                       (double)(c->guest_pages[i] - c->guest_pages[i - 1]) : 0;
        json_object_array_add(gps, json_object_new_double(pages * 1000 / c->sample_ms));
    }
    json_object_object_add(t, "percent-samples", pct);
    json_object_object_add(t, "guest-pages-per-second", gps);
    json_object_object_add(r, "throttle", t);
}

struct json_object *vs_report_json(const struct vs_migration_stats *s)
{
    struct json_object *r = json_object_new_object();
    json_object_object_add(r, "status", json_object_new_string(s->status ? s->status : "none"));
    if (s->error[0])
        json_object_object_add(r, "error", json_object_new_string(s->error));
    json_object_object_add(r, "peer", json_object_new_string(s->peer));
    add_double(r, "total-time", MS(s->total_ns));
    add_double(r, "setup-time", MS(s->setup_ns));
    add_double(r, "downtime", MS(s->downtime_ns));
    json_object_object_add(r, "downtime-exact", json_object_new_boolean(s->downtime_exact));
    add_double(r, "blackout-send-time", MS(s->blackout_send_ns));
    add_double(r, "verify-time", MS(s->verify_ns));
    add_u64(r, "device-state-save-us", s->device_state_save_ns / 1000);
    add_u64(r, "device-state-load-us", s->device_state_load_ns / 1000);
    add_u64(r, "device-state-bytes", s->device_state_bytes);
    add_double(r, "expected-downtime", s->expected_downtime_ms);
    add_u64(r, "downtime-limit", s->downtime_limit_ms);
    add_u64(r, "vcpus", s->vcpus);
    add_double(r, "dirty-log-start-time", MS(s->dirty_log_start_ns));
    add_double(r, "dirty-sync-time", MS(s->last_sync_ns));
    double gib = (double)s->ram_total_bytes / (double)(1ULL << 30);
    if (gib > 0) {
        add_double(r, "dirty-log-start-ms-per-gib", MS(s->dirty_log_start_ns) / gib);
        add_double(r, "dirty-sync-ms-per-gib", MS(s->last_sync_ns) / gib);
    }
    add_double(r, "switchover-at", MS(s->switchover_at_ns));

    struct json_object *streams = json_object_new_object();
    add_u64(streams, "count", s->nr_streams);
    struct json_object *per = json_object_new_array();
    for (unsigned i = 0; i < s->nr_streams && i < VS_REPORT_MAX_STREAMS; i++)
        json_object_array_add(per, json_object_new_uint64(s->stream_bytes[i]));
    json_object_object_add(streams, "bytes", per);
    json_object_object_add(streams, "compress",
                           json_object_new_string(s->compress ? s->compress : "none"));
    json_object_object_add(streams, "zerocopy", json_object_new_boolean(s->zerocopy));
    add_u64(streams, "zerocopy-sends", s->zerocopy_sends);
    add_u64(streams, "zerocopy-copied", s->zerocopy_copied);
    json_object_object_add(r, "streams", streams);

    struct json_object *sec = json_object_new_object();
    json_object_object_add(sec, "mode", json_object_new_string(s->security ? s->security : ""));
    json_object_object_add(sec, "cipher", json_object_new_string(s->tls_cipher));
    json_object_object_add(sec, "ktls", json_object_new_boolean(s->ktls));
    json_object_object_add(r, "security", sec);

    struct json_object *cpu = json_object_new_object();
    add_double(cpu, "seconds", (double)s->cpu_ns / 1e9);
    add_double(cpu, "seconds-per-gb-transferred",
               s->transferred_bytes ? ((double)s->cpu_ns / 1e9) / ((double)s->transferred_bytes / 1e9) : 0);
    json_object_object_add(r, "cpu", cpu);

    if (s->bw_interval_ms) {
        struct json_object *bw = json_object_new_object();
        add_u64(bw, "interval-ms", s->bw_interval_ms);
        struct json_object *mbps = json_object_new_array();
        for (uint32_t i = 0; i < s->bw_count; i++) {
            uint64_t prev = i ? s->bw_bytes[i - 1] : 0;
            double v = (double)(s->bw_bytes[i] - prev) * 8 / 1e6 / (s->bw_interval_ms / 1e3);
            json_object_array_add(mbps, json_object_new_double(v));
        }
        json_object_object_add(bw, "mbps", mbps);
        json_object_object_add(r, "bandwidth", bw);
    }

    struct json_object *ram = json_object_new_object();
    add_u64(ram, "total", s->ram_total_bytes);
    add_u64(ram, "transferred", s->transferred_bytes);
    add_u64(ram, "remaining", s->remaining_bytes);
    add_u64(ram, "normal", s->normal_pages);
    add_u64(ram, "normal-bytes", s->normal_pages * 4096);
    add_u64(ram, "duplicate", s->zero_pages);
    add_u64(ram, "skipped", s->skipped_pages);
    add_u64(ram, "compressed", s->compressed_pages);
    add_u64(ram, "raw", s->normal_pages - (s->compressed_pages < s->normal_pages ? s->compressed_pages : s->normal_pages));
    add_double(ram, "compression-ratio", s->compressed_wire_bytes ?
               (double)s->compressed_raw_bytes / (double)s->compressed_wire_bytes : 1.0);
    add_double(ram, "mbps", s->mbps);
    add_double(ram, "dirty-pages-rate", s->dirty_pages_rate);
    json_object_object_add(ram, "dirty-tracking",
                           json_object_new_string(s->conv.tracking ? s->conv.tracking : "dirty-log"));
    if (s->ram_pages)
        json_object_object_add(ram, "page-size", json_object_new_string(s->ram_pages));
    bool ring = s->conv.tracking && strcmp(s->conv.tracking, "dirty-ring") == 0;
    unsigned nv = s->conv.nr_vcpus < VS_REPORT_MAX_VCPUS ? s->conv.nr_vcpus : VS_REPORT_MAX_VCPUS;
    json_object_object_add(ram, "vcpu-dirty-rate", double_array(s->conv.vcpu_dirty_rate,
                                                                ring ? nv : 0));
    add_u64(ram, "dirty-sync-count", s->nr_passes);
    add_double(ram, "pages-per-second",
               s->total_ns ? (double)(s->normal_pages + s->zero_pages) * 1e9 / (double)s->total_ns : 0);
    json_object_object_add(r, "ram", ram);
    add_u64(r, "iterations", s->nr_passes);
    if (s->ram_digest) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)s->ram_digest);
        json_object_object_add(r, "ram-digest", json_object_new_string(hex));
    }

    if (s->disk.disks)
        add_disk(r, &s->disk);

    if (s->postcopy.active) {
        const struct vs_postcopy_stats *pc = &s->postcopy;
        struct json_object *o = json_object_new_object();
        add_double(o, "switch-at", MS(pc->at_ns));
        add_double(o, "postcopy-time", MS(pc->time_ns));
        add_u64(o, "missing-pages", pc->missing_pages);
        add_u64(o, "requested-pages", pc->requested_pages);
        add_u64(o, "urgent-pages", pc->urgent_pages);
        add_u64(o, "background-pages", pc->background_pages);
        add_u64(o, "urgent-bytes", pc->urgent_bytes);
        add_u64(o, "background-bytes", pc->background_bytes);
        add_u64(o, "faults", pc->faults);
        add_double(o, "fault-wait-avg", pc->faults ? MS(pc->fault_wait_ns) / (double)pc->faults : 0);
        add_double(o, "fault-wait-max", MS(pc->fault_wait_max_ns));
        add_u64(o, "resumes", pc->resumes);
        json_object_object_add(o, "all-present", json_object_new_boolean(pc->verified_present));
        json_object_object_add(r, "postcopy", o);
    }

    if (s->nr_announces) {
        struct json_object *a = json_object_new_array();
        for (unsigned i = 0; i < s->nr_announces && i < VS_REPORT_MAX_ANNOUNCES; i++) {
            const struct vs_announce_report *e = &s->announces[i];
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "nic", json_object_new_string(e->nic));
            json_object_object_add(o, "tap", json_object_new_string(e->tap));
            add_u64(o, "round", e->round);
            add_double(o, "at", e->at_ms);
            json_object_object_add(o, "rarp", json_object_new_boolean(e->rarp));
            json_object_object_add(o, "garp", json_object_new_boolean(e->garp));
            json_object_object_add(o, "guest", json_object_new_boolean(e->guest));
            json_object_array_add(a, o);
        }
        json_object_object_add(r, "announces", a);
    }

    struct json_object *passes = json_object_new_array();
    for (unsigned i = 0; i < s->nr_passes && i < VS_REPORT_MAX_PASSES; i++) {
        const struct vs_pass_stats *p = &s->passes[i];
        struct json_object *o = json_object_new_object();
        add_u64(o, "pass", p->pass);
        add_u64(o, "bytes-to-send", p->dirty_pages * 4096);
        add_u64(o, "pages-sent", p->sent_pages);
        add_u64(o, "zero-pages", p->zero_pages);
        add_u64(o, "skipped-pages", p->skipped_pages);
        add_u64(o, "bytes-transferred", p->bytes);
        add_double(o, "time", MS(p->duration_ns));
        add_u64(o, "pages-dirtied", p->dirtied_pages);
        add_double(o, "dirty-sync-time", MS(p->sync_ns));
        add_double(o, "dirty-pages-rate", p->duration_ns && !p->final ?
                   (double)p->dirtied_pages * 1e9 / (double)p->duration_ns : 0);
        add_double(o, "downtime-limit", p->limit_ms);
        add_double(o, "throttle-percent", p->throttle_pct);
        add_double(o, "expected-total-time", p->expected_total_ms);
        if (s->disk.disks) {
            add_u64(o, "disk-blocks", p->disk_blocks);
            add_u64(o, "disk-bytes", p->disk_bytes);
        }
        json_object_object_add(o, "final", json_object_new_boolean(p->final));
        json_object_array_add(passes, o);
    }
    json_object_object_add(r, "passes", passes);
    if (s->conv.strategy)
        add_convergence(r, &s->conv);
    return r;
}

void vs_report_note_switchover(struct vs_migration_stats *s, uint64_t at_ns)
{
    if (at_ns > s->start_ns)
        s->switchover_at_ns = at_ns - s->start_ns;
}

void vs_report_note_resume(struct vs_migration_stats *s, uint64_t resume_ns)
{
    uint64_t switch_ns = s->start_ns + s->switchover_at_ns;
    if (s->switchover_at_ns && resume_ns >= switch_ns)
        s->downtime_ns = resume_ns - switch_ns;
}

void vs_report_note_total(struct vs_migration_stats *s)
{
    if (s->total_ns)
        s->mbps = (double)s->transferred_bytes * 8e3 / (double)s->total_ns;
}

void vs_report_progress(const struct vs_migration_stats *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s: pass %u, sent %.1f MiB, remaining %.1f MiB, dirty %.0f pages/s, "
             "%.0f Mbit/s, expected downtime %.1f ms, expected total %.0f ms, throttle %.0f%%",
             s->status ? s->status : "none", s->nr_passes,
             (double)s->transferred_bytes / 1048576.0, (double)s->remaining_bytes / 1048576.0,
             s->dirty_pages_rate, s->mbps, s->expected_downtime_ms, s->conv.expected_total_ms,
             s->conv.throttle_pct);
}
