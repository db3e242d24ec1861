/* The middle of a random trial: watch both sides, strike at the plan's moment, act as the
 * operator where the design needs one, and wait until both sides have settled. */
#include "random_internal.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* How far a source's migration status has come (statuses a poll may skip count as
 * reached once a later one shows). */
static int status_rank(const char *s)
{
    static const struct { const char *name; int rank; } ranks[] = {
        { "setup", 0 }, { "active", 1 }, { "switchover", 2 }, { "verifying", 3 },
        { "resolving", 3 }, { "postcopy-active", 4 }, { "postcopy-paused", 4 },
        { "postcopy-recover", 4 }, { "completed", 5 }, { "failed", 5 }, { "cancelled", 5 },
        { "unconfirmed", 5 },
    };
    for (size_t i = 0; i < sizeof(ranks) / sizeof(ranks[0]); i++)
        if (!strcmp(s, ranks[i].name))
            return ranks[i].rank;
    return -1;
}

static bool is_final(const char *s)
{
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled") ||
           !strcmp(s, "unconfirmed");
}

static void copy_str(char *dst, size_t n, struct json_object *o, const char *key)
{
    snprintf(dst, n, "%s", json_str(o, key));
}

void rt_look(struct rt_ctx *c, struct rt_look *l)
{
    rt_look_sides(c, l, true);
}

void rt_look_sides(struct rt_ctx *c, struct rt_look *l, bool dst_too)
{
    memset(l, 0, sizeof(*l));
    /* The destination first: seen running, and then the source seen running after it, is
     * two VMs at once (the destination runs only once the source gave the VM up). */
    struct json_object *d = dst_too ? rt_ask(&c->dst, "status", NULL) : NULL, *s, *m;
    if (d) {
        copy_str(l->dst_state, sizeof(l->dst_state), d, "state");
        if (json_object_object_get_ex(d, "incoming", &m))
            copy_str(l->dst_in, sizeof(l->dst_in), m, "status");
    }
    s = rt_ask(&c->src, "status", NULL);
    if (s) {
        copy_str(l->src_state, sizeof(l->src_state), s, "state");
        if (json_object_object_get_ex(s, "migration", &m)) {
            copy_str(l->src_mig, sizeof(l->src_mig), m, "status");
            l->src_iterations = json_num(m, "iterations");
            if (json_str(m, "ram-digest")[0])
                copy_str(c->src_ram_digest, sizeof(c->src_ram_digest), m, "ram-digest");
        }
    }
    l->src_alive = rt_peer_alive(&c->src);
    l->dst_alive = rt_peer_alive(&c->dst);
    if (!strcmp(l->dst_state, "running") && !strcmp(l->src_state, "running") && !c->dup_seen) {
        c->dup_seen = true;
        rt_note(c, "TWO VMs ran at %.0f ms (destination %s, source %s)",
                (now_s() - c->t_migrate) * 1000, l->dst_in, l->src_mig);
    }
    rt_disk_look(c, d, s);
    json_object_put(d);
    json_object_put(s);
}

static bool migration_over(const struct rt_look *l)
{
    return !l->src_alive || is_final(l->src_mig) || !strcmp(l->src_mig, "postcopy-paused");
}

/* Whether the plan's moment has come; *late: the migration ended before it. */
static bool strike_due(struct rt_ctx *c, bool *late)
{
    const struct rplan *p = c->p;
    const struct rt_look *l = &c->look;
    double ms = (now_s() - c->t_migrate) * 1000;
    *late = false;
    if (p->fault == RF_NONE || p->fault == RF_POINT)
        return false;
    bool reached = p->when == RW_TIME ||
                   (p->when == RW_STATUS && status_rank(l->src_mig) >= status_rank(p->when_status)) ||
                   (p->when == RW_PASS && (l->src_iterations >= p->when_pass ||
                                           status_rank(l->src_mig) >= 2));
    if (reached && !c->t_status_seen)
        c->t_status_seen = now_s();
    if (p->when == RW_TIME ? ms >= p->when_ms
                           : c->t_status_seen && (now_s() - c->t_status_seen) * 1000 >= p->when_ms)
        return true;
    if (c->t_status_seen)
        return false;     /* reached: wait out the delay, even after the migration ended */
    *late = migration_over(l);
    return *late;
}

static void kill_peer(struct rt_ctx *c, struct rt_peer *x, const char *who)
{
    if (rt_peer_alive(x) && kill(x->vm.pid, SIGKILL) == 0)
        x->killed = true;
    else
        rt_note(c, "the %s was already gone when the fault came", who);
}

static void strike(struct rt_ctx *c, bool late)
{
    const struct rplan *p = c->p;
    unsigned touched = 1;
    switch (p->fault) {
    case RF_CUT: touched = proxy_cut_all(c->proxy); break;
    case RF_STALL: touched = proxy_stall_all(c->proxy, p->stall_ms); break;
    case RF_CORRUPT:
        touched = proxy_corrupt_next(c->proxy, p->corrupt_dir ? PROXY_TO_SRC : PROXY_TO_DST,
                                     p->corrupt_conn, p->corrupt_pos);
        break;
    case RF_KILL_SRC: kill_peer(c, &c->src, "source"); break;
    case RF_KILL_DST: kill_peer(c, &c->dst, "destination"); break;
    case RF_KILL_DAEMON: {
        struct host_proc *h = &c->hosts[p->daemon];
        int st;
        kill(h->pid, SIGKILL);
        waitpid(h->pid, &st, 0);
        c->host_up[p->daemon] = false;
        break;
    }
    default: break;
    }
    c->fired = true;
    c->t_fired = now_s();
    snprintf(c->r->fired, sizeof(c->r->fired), "%.0fms%s (%s)", (c->t_fired - c->t_migrate) * 1000,
             late ? " late" : "",
             c->look.src_alive ? (c->look.src_mig[0] ? c->look.src_mig : "?") : "source gone");
    if (!touched)
        rt_note(c, "no connection was open when the link fault came");
}

/* What an operator does: start post-copy when the plan says. A paused post-copy is not
 * resumed here: the source reconnects by itself (docs/state-machine.md, "Post-copy"), and
 * a trial that needed an operator for it would hide that it does not. */
static void operate(struct rt_ctx *c)
{
    const struct rt_look *l = &c->look;
    double ms = (now_s() - c->t_migrate) * 1000;
    if (!strcmp(l->src_mig, "postcopy-paused") && !c->t_paused_seen) {
        c->t_paused_seen = now_s();
        rt_note(c, "post-copy paused at %.0f ms", ms);
    }
    if (c->p->strategy == RP_POSTCOPY && c->p->postcopy_at_ms >= 0 && !c->postcopy_sent &&
        !strcmp(l->src_mig, "active") && ms >= c->p->postcopy_at_ms) {
        c->postcopy_sent = true;
        json_object_put(rt_ask(&c->src, "start-postcopy", NULL));
    }
}

static bool both_settled(struct rt_ctx *c, double *src_done_at)
{
    const struct rt_look *l = &c->look;
    bool src_done = !l->src_alive || is_final(l->src_mig) ||
                    (!strcmp(l->src_mig, "postcopy-paused") && !l->dst_alive);
    if (!src_done) {
        *src_done_at = 0;
        return false;
    }
    if (!*src_done_at)
        *src_done_at = now_s();
    bool dst_done = !l->dst_alive ||
                    (!strcmp(l->dst_state, "running") &&
                     (!strcmp(l->dst_in, "completed") || !l->dst_in[0])) ||
                    /* the source kept the VM: a receiver may take a while to give up */
                    (!strcmp(l->src_state, "running") && now_s() - *src_done_at > 15) ||
                    /* nobody is left to settle with */
                    (!l->src_alive && now_s() - c->src.gone_at > 12);
    return dst_done;
}

void rt_watch(struct rt_ctx *c)
{
    const struct rplan *p = c->p;
    double deadline = c->t_migrate + 60 + p->stall_ms / 1000.0 +
                      (p->strategy == RP_POSTCOPY ? 20 : 0), src_done_at = 0;
    bool strikes = p->fault != RF_NONE && p->fault != RF_POINT;
    for (unsigned i = 0;; i++) {
        /* Waiting to strike, mostly the source (whose status the moment depends on). */
        bool waiting = strikes && !c->fired;
        rt_look_sides(c, &c->look, !waiting || i % 4 == 0);
        bool late;
        if (strikes && !c->fired && strike_due(c, &late)) {
            strike(c, late);
            continue;
        }
        operate(c);
        if ((!strikes || c->fired) && both_settled(c, &src_done_at)) {
            c->settled = true;
            return;
        }
        if (now_s() > deadline) {
            const struct rt_look *l = &c->look;
            rt_note(c, "not settled after %.0f s: source %s/%s, destination %s/%s",
                    now_s() - c->t_migrate, l->src_alive ? l->src_state : "gone", l->src_mig,
                    l->dst_alive ? (l->dst_state[0] ? l->dst_state : "no-vm") : "gone",
                    l->dst_in);
            return;
        }
        usleep(c->fired || !strikes ? 50000 : 10000);
    }
}
