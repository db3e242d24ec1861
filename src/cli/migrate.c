#include "cli/migrate.h"
#include "common/option_error.h"
#include "common/error.h"
#include "common/size.h"
#include "common/stop_signal.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/migration_params.h"
#include "transport/security.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_head[] =
    "usage: vmshift migrate SOCKET --to HOST:PORT [options]\n"
    "Live-migrate the VM whose QMP control socket is SOCKET (the migration parameters of\n"
    "docs/control-protocol.md; options not given take their defaults):\n"
    "  --to HOST:PORT             where `vmshift receive --listen` waits\n";

static const char usage_tail[] =
    "security: choose one of --tls-psk, --tls-cert/--tls-key/--tls-ca (with --tls-name),\n"
    "--insecure; `vmshift receive` must choose the same kind.\n"
    "  --report FILE              write the final report (JSON) to FILE\n"
    "  --quiet                    no progress lines\n";

static void print_usage(FILE *f)
{
    char params[8192];
    mp_usage(params, sizeof(params), false);
    fprintf(f, "%s%s%s", usage_head, params, usage_tail);
}

static const char *str_of(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static double num_of(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

static bool is_final(const char *status)
{
    return !strcmp(status, "completed") || !strcmp(status, "failed") ||
           !strcmp(status, "cancelled") || !strcmp(status, "unconfirmed") ||
           !strcmp(status, "postcopy-paused");
}

static void progress(struct json_object *m)
{
    struct json_object *ram = NULL, *thr = NULL;
    json_object_object_get_ex(m, "ram", &ram);
    json_object_object_get_ex(m, "throttle", &thr);
    /* Passes are numbered from 0; "iterations" counts them: while one runs it is the
     * number of the running pass, at the end the number of passes made. */
    bool done = is_final(str_of(m, "status"));
    fprintf(stderr, "  %-10s %s %2.0f  sent %9.1f MiB  remaining %8.1f MiB  dirty %8.0f p/s  "
            "%7.0f Mbit/s  expected downtime %7.1f ms (limit %.0f)  expected total %7.0f ms  "
            "%s  throttle %3.0f%%\n", str_of(m, "status"), done ? "passes" : "pass  ",
            num_of(m, "iterations"), num_of(ram, "transferred") / 1048576.0,
            num_of(ram, "remaining") / 1048576.0, num_of(ram, "dirty-pages-rate"),
            num_of(ram, "mbps"), num_of(m, "expected-downtime"), num_of(m, "downtime-limit"),
            num_of(m, "expected-total-time"), str_of(m, "convergence"), num_of(thr, "percent"));
}

static void pass_table(struct json_object *m)
{
    struct json_object *passes;
    if (!json_object_object_get_ex(m, "passes", &passes))
        return;
    fprintf(stderr, "  pass  to send (MiB)  time (ms)  dirtied meanwhile (MiB)  limit (ms)  "
            "throttle  expected total (ms)\n");
    for (size_t i = 0; i < json_object_array_length(passes); i++) {
        struct json_object *p = json_object_array_get_idx(passes, i), *f;
        bool final = json_object_object_get_ex(p, "final", &f) && json_object_get_boolean(f);
        fprintf(stderr, "  %4.0f%s %14.1f %10.1f %24.1f %11.0f %8.0f%% %20.0f\n",
                num_of(p, "pass"), final ? "*" : " ", num_of(p, "bytes-to-send") / 1048576.0,
                num_of(p, "time"), num_of(p, "pages-dirtied") * 4096 / 1048576.0,
                num_of(p, "downtime-limit"), num_of(p, "throttle-percent"),
                num_of(p, "expected-total-time"));
    }
    struct json_object *thr;
    if (json_object_object_get_ex(m, "throttle", &thr) && strcmp(str_of(thr, "mode"), "none"))
        fprintf(stderr, "  throttle: %s from %.0f ms, deepest %.0f%%; guest progress lost to it: "
                "%.0f ms (guest wrote %.0f pages/s before)\n", str_of(thr, "mode"),
                num_of(thr, "started-at"), num_of(thr, "max-percent"),
                num_of(thr, "guest-stall-time"), num_of(thr, "guest-baseline-pages-per-second"));
}

/* With --report FILE the whole report goes to the file and stdout gets this. */
static void print_summary(struct json_object *m, const char *report)
{
    struct json_object *ram = NULL;
    json_object_object_get_ex(m, "ram", &ram);
    printf("migration %s: total %.0f ms, downtime %.1f ms, %.0f passes, %.1f MiB sent at "
           "%.0f Mbit/s; full report in %s\n", str_of(m, "status"), num_of(m, "total-time"),
           num_of(m, "downtime"), num_of(m, "iterations"),
           num_of(ram, "transferred") / 1048576.0, num_of(ram, "mbps"), report);
}

enum { OPT_TO = 1000, OPT_REPORT, OPT_QUIET, OPT_HELP, OPT_PARAM = 2000 };

struct migrate_cli {
    const char *to, *report, *sock;
    bool quiet, help;
    struct json_object *params;      /* migrate-set-parameters arguments */
    struct json_object *caps;        /* migrate-set-capabilities list */
    struct vs_security_opts security;
};

/* A schema option: checked here, stored under its QMP name. */
static int take_param(struct migrate_cli *m, const struct mp_def *d, const char *arg)
{
    struct json_object *v;
    int rc = mp_parse_text(d, arg, &v);
    if (rc)
        return rc;
    if ((rc = vs_security_set(&m->security, d->cli, d->type == MP_BOOL ? NULL : arg)) &&
        rc != -ENOENT) {
        json_object_put(v);
        return vs_fail_context(rc, "--%s", d->cli);
    }
    if (d->kind == MP_PARAMETER) {
        json_object_object_add(m->params, d->name, v);
        return 0;
    }
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "capability", json_object_new_string(d->name));
    json_object_object_add(c, "state", v);
    json_object_array_add(m->caps, c);
    return 0;
}

static int parse_cli(int argc, char **argv, struct migrate_cli *m)
{
    struct option opts[64] = {
        { "to", required_argument, NULL, OPT_TO }, { "report", required_argument, NULL, OPT_REPORT },
        { "quiet", no_argument, NULL, OPT_QUIET }, { "help", no_argument, NULL, OPT_HELP },
    };
    mp_getopt_options(opts + 4, 64 - 5, OPT_PARAM, false);
    /* Every parameter starts at its default: a migration does not inherit the values an
     * earlier client set on the monitor. */
    struct json_object *defaults = mp_defaults();
    json_object_object_foreach(defaults, key, val) {
        if (mp_find(key)->kind == MP_PARAMETER) {
            json_object_object_add(m->params, key, json_object_get(val));
        } else { /* a given state comes later in the list and wins */
            struct json_object *c = json_object_new_object();
            json_object_object_add(c, "capability", json_object_new_string(key));
            json_object_object_add(c, "state", json_object_get(val));
            json_object_array_add(m->caps, c);
        }
    }
    json_object_put(defaults);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case OPT_TO: m->to = optarg; break;
        case OPT_REPORT: m->report = optarg; break;
        case OPT_QUIET: m->quiet = true; break;
        case OPT_HELP: m->help = true; return 0;
        default:
            if (c >= OPT_PARAM && c < OPT_PARAM + (int)mp_count) {
                if (take_param(m, &mp_defs[c - OPT_PARAM], optarg))
                    return -EINVAL;
                break;
            }
            return vs_option_error(c, argv, optind, "vmshift migrate --help");
        }
    }
    if (optind + 1 != argc || !m->to)
        return vs_fail(EINVAL, "give the VM's control socket and --to HOST:PORT; see vmshift "
                       "migrate --help");
    m->sock = argv[optind];
    return vs_security_finish(&m->security, true);
}

/* The command's reply, or -1 after printing why it failed (status in *exit_code). */
static int run(struct ctl_qmp *q, const char *name, struct json_object *args,
               struct json_object **ret, int *exit_code)
{
    struct json_object *r, *v, *e;
    if (ctl_qmp_execute(q, name, args, &r)) {
        fprintf(stderr, "vmshift migrate: %s\n", vs_last_error());
        *exit_code = 1;
        return -1;
    }
    if (json_object_object_get_ex(r, "return", &v)) {
        if (ret)
            *ret = json_object_get(v);
        json_object_put(r);
        return 0;
    }
    json_object_object_get_ex(r, "error", &e);
    fprintf(stderr, "vmshift migrate: %s\n", str_of(e, "desc"));
    json_object_put(r);
    *exit_code = 1;
    return -1;
}

/* Start the migration: parameters, capabilities, migrate. */
static int start(struct ctl_qmp *q, struct migrate_cli *m, int *exit_code)
{
    char uri[300];
    snprintf(uri, sizeof(uri), "tcp:%s", m->to);
    struct json_object *caps = json_object_new_object(), *margs = json_object_new_object();
    json_object_object_add(caps, "capabilities", json_object_get(m->caps));
    json_object_object_add(margs, "uri", json_object_new_string(uri));
    int rc = run(q, "migrate-set-parameters", m->params, NULL, exit_code);
    if (!rc)
        rc = run(q, "migrate-set-capabilities", caps, NULL, exit_code);
    if (!rc)
        rc = run(q, "migrate", margs, NULL, exit_code);
    json_object_put(caps);
    json_object_put(margs);
    return rc;
}

#define STOP_WAIT_S 30   /* how long a stopped client waits for the rollback */

/* SIGTERM or SIGINT while the migration runs: cancel it (the VM keeps running at the
 * source) and wait until it has rolled back. Past the commit it cannot be cancelled: it
 * goes on in the VM's process. Returns 0 when cancelled, else what to tell the user. */
static const char *cancel_on_stop(const char *sock)
{
    static char why[640];
    struct json_object *reply = NULL, *ok;
    if (ctl_command(sock, "cancel", NULL, &reply, 10000)) {
        snprintf(why, sizeof(why), "could not cancel it: %s; it goes on in the VM's "
                 "process (vmshift ctl %s migrate-status)", vs_last_error(), sock);
        return why;
    }
    bool cancelled = json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok);
    if (!cancelled)
        snprintf(why, sizeof(why), "it could not be cancelled (%s) and goes on in the VM's "
                 "process (vmshift ctl %s migrate-status)", str_of(reply, "error"), sock);
    json_object_put(reply);
    return cancelled ? NULL : why;
}

/* After cancel_on_stop: the migration's final status, waiting at most STOP_WAIT_S. */
static void wait_rolled_back(const char *sock, char *status, size_t len)
{
    snprintf(status, len, "still rolling back");
    for (int i = 0; i < STOP_WAIT_S * 10; i++) {
        struct json_object *reply = NULL, *m;
        if (ctl_command(sock, "migrate-status", NULL, &reply, 10000))
            return;
        const char *s = json_object_object_get_ex(reply, "migration", &m)
                        ? str_of(m, "status") : "";
        bool done = is_final(s);
        if (done)
            snprintf(status, len, "%s", s);
        json_object_put(reply);
        if (done)
            return;
        usleep(100000);
    }
}

/* The exit of a client stopped by SIGTERM or SIGINT during the migration. */
static int stopped(const char *sock)
{
    int sig = vs_stop_signal();
    const char *sname = vs_stop_signal_name(sig);
    const char *why = cancel_on_stop(sock);
    if (why) {
        fprintf(stderr, "vmshift migrate: stopped by %s; the migration was not cancelled: "
                "%s\n", sname, why);
        return vs_stop_exit_status(sig);
    }
    char status[64];
    wait_rolled_back(sock, status, sizeof(status));
    fprintf(stderr, "vmshift migrate: stopped by %s: cancelled the migration (%s); the VM "
            "keeps running at the source (%s)\n", sname, status, sock);
    return vs_stop_exit_status(sig);
}

/* Follow the migration until it ends: each MIGRATION or MIGRATION_PASS event (or a second
 * without one) brings a query-migrate. Returns the final report. */
static struct json_object *follow(struct ctl_qmp *q, const char *sock, bool quiet,
                                  int *exit_code)
{
    char last_line[64] = "";
    for (;;) {
        if (vs_stop_signal()) {
            *exit_code = stopped(sock);
            return NULL;
        }
        struct json_object *ev = NULL, *m = NULL;
        int rc = ctl_qmp_next_event(q, 1000, &ev);
        json_object_put(ev);
        if (rc && rc != -ETIMEDOUT) {
            fprintf(stderr, "vmshift migrate: lost the control socket: %s\n", vs_last_error());
            *exit_code = 1;
            return NULL;
        }
        if (run(q, "query-migrate", NULL, &m, exit_code))
            return NULL;
        char line[64];
        snprintf(line, sizeof(line), "%s %.0f", str_of(m, "status"), num_of(m, "iterations"));
        if (!quiet && strcmp(line, last_line) && *str_of(m, "status")) {
            progress(m);
            snprintf(last_line, sizeof(last_line), "%s", line);
        }
        if (is_final(str_of(m, "status")))
            return m;
        json_object_put(m);
    }
}

static int report_result(struct json_object *m, const struct migrate_cli *cli)
{
    if (!cli->quiet)
        pass_table(m);
    if (!cli->report)
        printf("%s\n", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY));
    else if (json_object_to_file_ext(cli->report, m, JSON_C_TO_STRING_PRETTY) < 0)
        fprintf(stderr, "vmshift migrate: cannot write the report to %s\n", cli->report);
    else
        print_summary(m, cli->report);
    const char *status = str_of(m, "status");
    int exit_code = !strcmp(status, "completed") ? 0 : 1;
    if (exit_code)
        fprintf(stderr, "vmshift migrate: %s: %s\n", status, str_of(m, "error"));
    return exit_code;
}

int cli_migrate_main(int argc, char **argv)
{
    struct migrate_cli m = { .params = json_object_new_object(),
                             .caps = json_object_new_array() };
    int exit_code = 2;   /* usage error, until the options are read */
    if (parse_cli(argc, argv, &m)) {
        fprintf(stderr, "vmshift migrate: %s\n", vs_last_error());
    } else if (m.help) {
        print_usage(stdout);
        exit_code = 0;
    } else {
        struct ctl_qmp *q = NULL;
        struct json_object *report = NULL;
        vs_stop_signal_install();
        exit_code = 1;
        if (ctl_qmp_connect(m.sock, 10000, &q))
            fprintf(stderr, "vmshift migrate: %s\n", vs_last_error());
        else if (start(q, &m, &exit_code) == 0 && (report = follow(q, m.sock, m.quiet, &exit_code)))
            exit_code = report_result(report, &m);
        json_object_put(report);
        ctl_qmp_close(q);
    }
    json_object_put(m.params);
    json_object_put(m.caps);
    return exit_code;
}
