#include "cli/plan.h"
#include "common/option_error.h"
#include "common/error.h"
#include "common/rate.h"
#include "common/size.h"
#include "ctl/ctl_client.h"
#include "ctl/migration_params.h"
#include "migrate/precopy/source.h"
#include "migrate/convergence/converge.h"
#include "migrate/convergence/converge_model.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_head[] =
    "usage: vmshift plan [SOCKET] --bandwidth RATE [options]\n"
    "Predict a live migration pass by pass: what each pre-copy pass sends, how long it takes,\n"
    "what the guest dirties meanwhile; whether plain pre-copy converges, the total time and\n"
    "downtime, the same with --converge throttle, and the strategy to use.\n"
    "  SOCKET                 a running VM's control socket: its memory and its dirty rate\n"
    "                         and working set, measured now (vmshift ctl SOCKET dirty-rate)\n"
    "  --bandwidth RATE       what the link carries: 10gbit, 400mbit, 1.2G (bytes/s)\n"
    "  --mem SIZE             what the first pass sends (default: the VM's written memory)\n"
    "  --dirty-rate RATE      how fast the guest dirties memory: 500M (bytes/s), 100000p\n"
    "                         (pages/s), 2gbit\n"
    "  --working-set SIZE     the memory the guest keeps rewriting (bounds what a pass finds\n"
    "                         dirty; default: measured, or unbounded)\n"
    "  --period MS            how long to measure a running VM (default 1000)\n"
    "  --json                 print the plan as JSON\n"
    "and the migration parameters it plans with (as for vmshift migrate):\n";

static void print_usage(FILE *f)
{
    char params[4096];
    mp_usage(params, sizeof(params), true);
    fprintf(f, "%s%s", usage_head, params);
}

struct plan_input {
    const char *sock;
    double first_pass, dirty_rate, bandwidth, working_set;
    bool have_mem, have_rate, have_ws;
    uint64_t period_ms;
    struct vs_conv_policy policy;
    bool json;
    const char *source;          /* where the rate came from */
};

static double num_field(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

/* Ask a running VM for its memory and dirty rate. */
static int measure(struct plan_input *in)
{
    struct json_object *reply = NULL, *args = json_object_new_object();
    int rc = ctl_command(in->sock, "status", NULL, &reply, 10000);
    if (rc) {
        json_object_put(args);
        return rc;
    }
    if (!in->have_mem) {
        /* Never-written memory is not sent at all: the first pass is what the VM holds. */
        in->first_pass = num_field(reply, "ram_allocated_bytes");
        in->have_mem = in->first_pass > 0;
    }
    json_object_put(reply);
    json_object_object_add(args, "period_ms", json_object_new_uint64(in->period_ms));
    rc = ctl_command(in->sock, "dirty-rate", args, &reply, (int)in->period_ms + 30000);
    json_object_put(args);
    if (rc)
        return rc;
    struct json_object *ok;
    if (!json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok)) {
        struct json_object *e = NULL;
        json_object_object_get_ex(reply, "error", &e);
        rc = vs_fail(EIO, "%s: dirty-rate failed: %s", in->sock, e ? json_object_get_string(e) : "?");
        json_object_put(reply);
        return rc;
    }
    if (!in->have_rate) {
        in->dirty_rate = num_field(reply, "dirty-bytes-rate");
        in->have_rate = true;
        in->source = "measured";
    }
    if (!in->have_ws && num_field(reply, "working-set") > 0) {
        in->working_set = num_field(reply, "working-set");
        in->have_ws = true;
    }
    json_object_put(reply);
    return 0;
}

enum { OPT_PARAM = 1000 };

/* The planner's migration parameters (given ones over the defaults) into its policy. */
static int take_policy(struct json_object *given, struct plan_input *in)
{
    struct json_object *set = mp_defaults();
    json_object_object_foreach(given, key, val) {
        json_object_object_add(set, key, json_object_get(val));
    }
    struct vs_migration_opts mo;
    vs_migration_default_opts(&mo);
    int rc = mp_apply(set, &mo, true);
    json_object_put(set);
    in->policy.downtime_limit_ms = (double)mo.downtime_limit_ms;
    in->policy.nr_steps = mo.nr_downtime_steps;
    for (unsigned i = 0; i < mo.nr_downtime_steps && i < VS_CONV_MAX_STEPS; i++)
        in->policy.schedule_ms[i] = (double)mo.downtime_schedule_ms[i];
    in->policy.max_downtime_ms = (double)mo.max_downtime_ms;
    in->policy.max_passes = mo.max_passes;
    return rc;
}

static int parse_args(int argc, char **argv, struct plan_input *in, struct json_object *given)
{
    struct option opts[24] = {
        { "bandwidth", required_argument, NULL, 'b' }, { "mem", required_argument, NULL, 'm' },
        { "dirty-rate", required_argument, NULL, 'r' },
        { "working-set", required_argument, NULL, 'w' }, { "period", required_argument, NULL, 'P' },
        { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
    };
    mp_getopt_options(opts + 7, 24 - 8, OPT_PARAM, true);
    optind = 1;
    opterr = 0;
    int c, rc = 0;
    uint64_t v;
    struct json_object *pv;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        const char *opt = argv[optind - 1];
        switch (c) {
        case 'b': rc = vs_parse_rate(optarg, &in->bandwidth); break;
        case 'r': rc = vs_parse_rate(optarg, &in->dirty_rate); in->have_rate = !rc; break;
        case 'm':
        case 'w':
            if (!(rc = vs_parse_size(optarg, &v))) {
                *(c == 'm' ? &in->first_pass : &in->working_set) = (double)v;
                *(c == 'm' ? &in->have_mem : &in->have_ws) = true;
            }
            break;
        case 'P':
            if (!(rc = vs_parse_u64(optarg, &v)))
                in->period_ms = v;
            break;
        case 'j': in->json = true; break;
        case 'h': print_usage(stdout); return 1;
        default:
            if (c >= OPT_PARAM && c < OPT_PARAM + (int)mp_count) {
                if (mp_parse_text(&mp_defs[c - OPT_PARAM], optarg, &pv))
                    return -EINVAL;
                json_object_object_add(given, mp_defs[c - OPT_PARAM].name, pv);
                continue;
            }
            return vs_option_error(c, argv, optind, "vmshift plan --help");
        }
        if (rc)
            return vs_fail_context(rc, "%s", opt);
    }
    if (optind < argc)
        in->sock = argv[optind++];
    if (optind < argc)
        return vs_fail(EINVAL, "unexpected argument '%s'", argv[optind]);
    return take_policy(given, in);
}

static int check_input(struct plan_input *in)
{
    if (in->bandwidth <= 0)
        return vs_fail(EINVAL, "give --bandwidth, what the link carries (e.g. 10gbit)");
    if (!in->have_mem || in->first_pass <= 0)
        return vs_fail(EINVAL, "give --mem (the VM's memory) or the VM's control socket");
    if (!in->have_rate)
        return vs_fail(EINVAL, "give --dirty-rate (e.g. 100000p) or the VM's control socket");
    return vs_conv_check_policy(&in->policy);
}

static void simulate(const struct plan_input *in, enum vs_converge strategy,
                     struct vs_conv_plan *out)
{
    struct vs_conv_sim sim = {
        .first_pass_bytes = in->first_pass,
        .setup_ms = VS_CONV_SETUP_MS,
        .switchover_ms = VS_CONV_SWITCHOVER_MS,
        .link = { .bandwidth = in->bandwidth, .dirty_rate = in->dirty_rate,
                  .working_set = in->have_ws ? in->working_set : 0 },
        .policy = in->policy,
    };
    sim.policy.converge = strategy;
    vs_conv_simulate(&sim, out);
}

static const char *outcome_name(enum vs_conv_outcome o)
{
    switch (o) {
    case VS_CONV_CONVERGES: return "converges";
    case VS_CONV_GIVES_UP: return "not-converging";
    case VS_CONV_TO_POSTCOPY: return "postcopy";
    case VS_CONV_RUNS_ON: return "runs-on";
    }
    return "?";
}

static const char *recommend(const struct vs_conv_plan *plain, const struct vs_conv_plan *thr)
{
    if (plain->outcome == VS_CONV_CONVERGES)
        return "precopy";
    if (thr->outcome == VS_CONV_CONVERGES && thr->throttle <= VS_CONV_AUTO_MAX_THROTTLE)
        return "throttle";
    return "postcopy";
}

#define MIB(b) ((b) / 1048576.0)

static struct json_object *plan_json(const struct vs_conv_plan *p)
{
    struct json_object *o = json_object_new_object(), *rows = json_object_new_array();
    json_object_object_add(o, "outcome", json_object_new_string(outcome_name(p->outcome)));
    json_object_object_add(o, "precopy-passes", json_object_new_int((int)p->precopy_passes));
    json_object_object_add(o, "total-time", json_object_new_double(p->total_ms));
    json_object_object_add(o, "downtime", json_object_new_double(p->downtime_ms));
    json_object_object_add(o, "transferred", json_object_new_double(p->transferred));
    json_object_object_add(o, "shortest-downtime", json_object_new_double(p->floor_ms));
    json_object_object_add(o, "throttle", json_object_new_double(p->throttle));
    json_object_object_add(o, "throttled-time", json_object_new_double(p->throttled_ms));
    json_object_object_add(o, "guest-stall-time", json_object_new_double(p->guest_stall_ms));
    for (unsigned i = 0; i < p->nr_rows; i++) {
        const struct vs_conv_row *r = &p->rows[i];
        struct json_object *j = json_object_new_object();
        json_object_object_add(j, "pass", json_object_new_int((int)r->pass));
        json_object_object_add(j, "bytes-to-send", json_object_new_double(r->to_send));
        json_object_object_add(j, "time", json_object_new_double(r->seconds * 1e3));
        json_object_object_add(j, "bytes-dirtied", json_object_new_double(r->dirtied));
        json_object_object_add(j, "dirty-rate", json_object_new_double(r->dirty_rate));
        json_object_object_add(j, "downtime-limit", json_object_new_double(r->limit_ms));
        json_object_object_add(j, "final", json_object_new_boolean(r->final));
        json_object_array_add(rows, j);
    }
    json_object_object_add(o, "passes", rows);
    return o;
}

static void print_table(const char *title, const struct vs_conv_plan *p, double rate)
{
    printf("\n%s\n  pass  to send (MiB)  time (ms)  dirtied meanwhile (MiB)  guest dirty rate "
           "(MiB/s)  limit (ms)\n", title);
    for (unsigned i = 0; i < p->nr_rows; i++) {
        const struct vs_conv_row *r = &p->rows[i];
        if (r->final)
            printf("  %4u* %13.1f %10.1f   (vCPUs stopped: the downtime)\n", r->pass,
                   MIB(r->to_send), r->seconds * 1e3);
        else
            printf("  %4u  %13.1f %10.1f %24.1f %24.1f%s %10.0f\n", r->pass, MIB(r->to_send),
                   r->seconds * 1e3, MIB(r->dirtied), MIB(r->dirty_rate),
                   r->dirty_rate < rate ? "*" : " ", r->limit_ms);
    }
    switch (p->outcome) {
    case VS_CONV_CONVERGES:
        printf("  converges after %u pre-copy passes: total %.1f s, downtime %.0f ms (%.0f ms "
               "transfer + %.0f ms switchover), %.1f MiB sent\n", p->precopy_passes,
               p->total_ms / 1e3, p->downtime_ms, p->downtime_ms - VS_CONV_SWITCHOVER_MS,
               VS_CONV_SWITCHOVER_MS, MIB(p->transferred));
        break;
    case VS_CONV_GIVES_UP:
        printf("  does NOT converge: gives up after %u passes (\"not converging\"); the VM "
               "keeps running at the source\n", p->precopy_passes);
        break;
    case VS_CONV_RUNS_ON:
        printf("  does NOT converge: passes go on until cancelled\n");
        break;
    case VS_CONV_TO_POSTCOPY:
        printf("  switches to post-copy after %u passes\n", p->precopy_passes);
        break;
    }
    if (p->throttle > 0)
        printf("  (* throttled) the guest is slowed by up to %.0f%% for %.1f s; progress lost: "
               "%.1f s\n", p->throttle * 100, p->throttled_ms / 1e3, p->guest_stall_ms / 1e3);
}

static int print_plan(const struct plan_input *in)
{
    struct vs_conv_plan plain, thr;
    simulate(in, VS_CONVERGE_NONE, &plain);
    simulate(in, VS_CONVERGE_THROTTLE, &thr);
    const char *rec = recommend(&plain, &thr);
    if (in->json) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "memory", json_object_new_double(in->first_pass));
        json_object_object_add(o, "dirty-rate", json_object_new_double(in->dirty_rate));
        json_object_object_add(o, "dirty-rate-source", json_object_new_string(in->source));
        json_object_object_add(o, "working-set", json_object_new_double(in->have_ws ? in->working_set : 0));
        json_object_object_add(o, "bandwidth", json_object_new_double(in->bandwidth));
        json_object_object_add(o, "downtime-limit", json_object_new_double(in->policy.downtime_limit_ms));
        json_object_object_add(o, "precopy", plan_json(&plain));
        json_object_object_add(o, "throttle", plan_json(&thr));
        json_object_object_add(o, "recommended", json_object_new_string(rec));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
        return 0;
    }
    char ws[64] = "unbounded";
    if (in->have_ws)
        snprintf(ws, sizeof(ws), "%.1f MiB", MIB(in->working_set));
    printf("memory %.1f MiB, guest dirty rate %.1f MiB/s (%.0f pages/s, %s), working set %s, "
           "link %.2f Gbit/s (%.1f MiB/s); downtime limit %.0f ms, at most %u passes\n",
           MIB(in->first_pass), MIB(in->dirty_rate), in->dirty_rate / 4096, in->source, ws,
           in->bandwidth * 8 / 1e9, MIB(in->bandwidth), in->policy.downtime_limit_ms,
           in->policy.max_passes);
    print_table("plain pre-copy (--converge none):", &plain, in->dirty_rate);
    if (plain.outcome != VS_CONV_CONVERGES) {
        printf("  the shortest downtime plain pre-copy reaches is %.0f ms of transfer\n",
               plain.floor_ms);
        print_table("with --converge throttle:", &thr, in->dirty_rate);
    }
    printf("\nrecommended: %s\n", !strcmp(rec, "precopy") ? "plain pre-copy" :
           !strcmp(rec, "throttle") ? "--converge throttle" :
           "--converge postcopy (throttling would take away more than 80% of the guest's "
           "dirtying, or would not converge)");
    return 0;
}

int cli_plan_main(int argc, char **argv)
{
    struct plan_input in = { .period_ms = 1000, .source = "given" };
    struct json_object *given = json_object_new_object();
    int rc = parse_args(argc, argv, &in, given);
    json_object_put(given);
    if (rc > 0)
        return 0;
    if (!rc && in.sock && (!in.have_rate || !in.have_mem || !in.have_ws) && measure(&in)) {
        fprintf(stderr, "vmshift plan: %s\n", vs_last_error());
        return 1;   /* the VM could not be measured: not a usage error */
    }
    if (!rc)
        rc = check_input(&in);
    if (rc) {
        fprintf(stderr, "vmshift plan: %s\n", vs_last_error());
        print_usage(stderr);
        return 2;
    }
    return print_plan(&in);
}
