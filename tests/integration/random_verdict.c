/* The end of a random trial: how many VMs run, whether a missing one was lost or died
 * with the process that owned it, and whether the one that runs is the VM it should be. */
#include "random_internal.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void verdict(struct rt_ctx *c, enum rt_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(struct rt_ctx *c, enum rt_outcome o, const char *fmt, ...)
{
    c->r->outcome = o;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->r->detail, sizeof(c->r->detail), fmt, ap);
    va_end(ap);
}

/* A later, worse finding replaces a survival (never a loss or a duplicate). */
static void demote(struct rt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void demote(struct rt_ctx *c, const char *fmt, ...)
{
    size_t used = 0;
    if (c->r->outcome == RT_SURVIVED || c->r->outcome == RT_OWNER_KILLED)
        c->r->outcome = RT_BAD;
    else
        used = strlen(c->r->detail);
    if (used && used + 3 < sizeof(c->r->detail))
        used += (size_t)snprintf(c->r->detail + used, sizeof(c->r->detail) - used, "; ");
    if (used >= sizeof(c->r->detail))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->r->detail + used, sizeof(c->r->detail) - used, fmt, ap);
    va_end(ap);
}

static bool killed_by_point(struct rt_ctx *c, unsigned side)
{
    const struct rplan *p = c->p;
    return p->fault == RF_POINT && p->point_side == side && strstr(p->point, ":kill") &&
           rt_logged(side ? &c->dst : &c->src, "fault injected:");
}

/* Nothing runs: acceptable only when the fault killed the process that held the VM. */
static void judge_no_vm(struct rt_ctx *c)
{
    const struct rt_look *l = &c->look;
    bool src_killed = c->src.killed || killed_by_point(c, 0);
    bool dst_killed = c->dst.killed || killed_by_point(c, 1);
    if (src_killed && !dst_killed) {
        if (rt_logged(&c->dst, "missing; the VM will run before they arrive"))
            verdict(c, RT_OWNER_KILLED, "the source died in post-copy, holding pages the "
                    "destination lacks: a post-copy VM does not survive its source");
        else if (!rt_logged(&c->dst, "end-to-end check passed"))
            verdict(c, RT_OWNER_KILLED, "the source died before the destination verified a "
                    "copy: the source held the only one");
        else
            verdict(c, RT_LOST, "the destination verified a complete copy, the source was "
                    "killed, and the destination does not run the VM (destination %s/%s)",
                    l->dst_alive ? l->dst_state : "gone", l->dst_in);
    } else if (dst_killed && !src_killed) {
        if (l->src_alive && !strcmp(l->src_state, "migrated"))
            verdict(c, RT_OWNER_KILLED, "the destination died after the source granted it the "
                    "VM (source's migration %s)", l->src_mig);
        else
            verdict(c, RT_LOST, "the destination died before it owned the VM, and the source "
                    "(%s, migration %s) did not take it back",
                    l->src_alive ? l->src_state : "gone", l->src_mig);
    } else {
        verdict(c, RT_LOST, "no VM runs, and no fault killed the process that held it: "
                "source %s/%s, destination %s/%s", l->src_alive ? l->src_state : "gone",
                l->src_mig, l->dst_alive ? l->dst_state : "gone", l->dst_in);
    }
}

/* The guest goes on working and has found no bad page, over two whole passes. */
static void check_guest(struct rt_ctx *c, struct rt_peer *w)
{
    struct json_object *st = rt_ask(w, "status", NULL);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    double deadline = now_s() + 60;
    bool moving = c->p->workload != RP_IDLE && c->p->workload != RP_NET;
    for (;;) {
        st = rt_ask(w, "status", NULL);
        if (!st) {
            demote(c, "the VM stopped answering while its guest was checked");
            return;
        }
        uint64_t errors = guest_u64(st, "errors"), now_passes = guest_u64(st, "passes");
        uint64_t first_bad = guest_u64(st, "first_bad_addr");
        json_object_put(st);
        if (errors) {
            demote(c, "the guest found %llu bad pages (first at 0x%llx)",
                   (unsigned long long)errors, (unsigned long long)first_bad);
            return;
        }
        if (!moving || now_passes >= passes + 2)
            return;
        if (now_s() > deadline) {
            demote(c, "the guest made no progress in 60 s (passes %llu -> %llu)",
                   (unsigned long long)passes, (unsigned long long)now_passes);
            return;
        }
        usleep(100000);
    }
}

static void check_memory(struct rt_ctx *c, struct rt_peer *w, bool is_dst)
{
    char fixed[24], full[24];
    rt_digests(w, c->p, fixed, full, sizeof(fixed));
    if (strcmp(fixed, c->static_digest))
        demote(c, "the RAM above the workload range changed: digest %s, before the migration %s",
               fixed, c->static_digest);
    if (c->p->workload == RP_IDLE && strcmp(full, c->full_digest))
        demote(c, "the idle guest's RAM changed: digest %s, before the migration %s", full,
               c->full_digest);
    if (!is_dst)
        return;
    struct json_object *st = rt_ask(w, "status", NULL), *in;
    const char *dd = st && json_object_object_get_ex(st, "incoming", &in) ? json_str(in, "ram-digest") : "";
    if (c->src_ram_digest[0] && strcmp(dd, c->src_ram_digest))
        demote(c, "the destination resumed RAM with digest '%s', the source paused it at '%s'",
               dd, c->src_ram_digest);
    json_object_put(st);
}

/* VMSHIFT_FAULTS_SELFTEST=poke: the runner itself changes a word of the RAM above the
 * workload range of the VM that survived, which its checks must find (the ctest
 * faults_random_detects). */
static void self_test(struct rt_ctx *c, struct rt_peer *w)
{
    const char *t = getenv("VMSHIFT_FAULTS_SELFTEST");
    if (!t || strcmp(t, "poke"))
        return;
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "addr", json_object_new_uint64((5 + c->p->range_mib) << 20));
    json_object_object_add(a, "value", json_object_new_uint64(0x5e1f7e57));
    json_object_put(rt_ask(w, "debug-poke", a));
    json_object_put(a);
}

void rt_judge(struct rt_ctx *c)
{
    const struct rt_look *l = &c->look;
    bool src_runs = l->src_alive && !strcmp(l->src_state, "running");
    bool dst_runs = l->dst_alive && !strcmp(l->dst_state, "running");
    snprintf(c->r->runs, sizeof(c->r->runs), "%s",
             src_runs && dst_runs ? "both" : src_runs ? "source" : dst_runs ? "destination" : "none");
    snprintf(c->r->src_end, sizeof(c->r->src_end), "%s", l->src_alive ? l->src_mig : "gone");
    if ((src_runs && dst_runs) || c->dup_seen) {
        verdict(c, RT_DUPLICATED, "two VMs ran: source %s/%s, destination %s/%s", l->src_state,
                l->src_mig, l->dst_state, l->dst_in);
    } else if (src_runs || dst_runs) {
        verdict(c, RT_SURVIVED, "%s", "");
        struct rt_peer *w = src_runs ? &c->src : &c->dst;
        self_test(c, w);
        check_guest(c, w);
        check_memory(c, w, dst_runs);
        char why[256];
        if (!rt_disk_judge(c, w, why, sizeof(why)) || !rt_nic_judge(c, why, sizeof(why)))
            demote(c, "%s", why);
    } else {
        judge_no_vm(c);
        char why[256];
        if (!rt_disk_judge_none(c, why, sizeof(why)))
            demote(c, "%s", why);
    }
    if (!c->settled)
        demote(c, "%s", "the trial did not settle");
    if (c->note[0]) {
        size_t used = strlen(c->r->detail);
        if (used + 4 < sizeof(c->r->detail))
            snprintf(c->r->detail + used, sizeof(c->r->detail) - used, "%s[%s]",
                     used ? " " : "", c->note);
    }
}

void rt_scan_logs(struct rt_ctx *c, const char *const *paths, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        FILE *f = paths[i][0] ? fopen(paths[i], "r") : NULL;
        char line[1024];
        while (f && fgets(line, sizeof(line), f)) {
            if (strstr(line, "Sanitizer") || strstr(line, "runtime error:")) {
                line[strcspn(line, "\n")] = '\0';
                demote(c, "sanitizer report in %s: %s", paths[i], line);
                break;
            }
        }
        if (f)
            fclose(f);
    }
    struct rt_peer *peers[] = { &c->src, &c->dst };
    for (unsigned i = 0; i < 2; i++) {
        int st = peers[i]->exit_status;
        if (st > 128 && st != 128 + 9)
            demote(c, "the %s crashed (signal %d)", i ? "destination" : "source", st - 128);
    }
}
