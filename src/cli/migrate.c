#include "cli/migrate.h"
#include "common/option_error.h"
#include "common/error.h"
#include "common/size.h"
#include "common/stop_signal.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "transport/security.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: vmshift migrate SOCKET --to HOST:PORT [options]\n"
    "  --to HOST:PORT         where `vmshift receive --listen` waits\n"
    "  --downtime-limit MS    switch over when the rest fits in this (default 300)\n"
    "  --downtime-schedule MS,MS,...\n"
    "                         raise the limit to these, one step each time the passes stop\n"
    "                         shrinking (e.g. 500,1000,2000)\n"
    "  --max-downtime MS      never switch over when more is expected (default: no limit)\n"
    "  --converge STRATEGY    what to do when pre-copy stops converging (after the schedule\n"
    "                         is used up): none (default: give up after --max-passes),\n"
    "                         throttle (slow the vCPUs that dirty memory), postcopy (run the\n"
    "                         VM on the destination while its missing pages follow; `vmshift\n"
    "                         ctl SOCKET start-postcopy` switches at any time), or auto\n"
    "                         (throttle, but post-copy once the throttle would take away\n"
    "                         more than 80% of the guest's dirtying)\n"
    "  --max-passes N         give up as \"not converging\" after N pre-copy passes\n"
    "                         (default 30; 0 = go on until it converges or is cancelled)\n"
    "  --timeout-ms MS        connect, and any wait for the peer (default 60000)\n"
    "  --max-bandwidth RATE   cap pre-copy at RATE bytes/s (suffixes K, M, G; e.g. 100M)\n"
    "  --streams N            TCP connections in parallel, 1..16 (default: one per CPU, <= 4)\n"
    "  --compress CODEC       none (default), lz4, zstd, or auto (zstd where the link, not\n"
    "                         the CPU, is the bottleneck, measured per batch)\n"
    "  --zerocopy             send page data with MSG_ZEROCOPY\n"

    "security (choose one; `vmshift receive` must choose the same kind):\n"
    "  --tls-psk FILE         TLS 1.3 with the pre-shared key in FILE (the receiver's file)\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
    "                         TLS 1.3 with this host's certificate and key; the receiver's\n"
    "                         certificate must be signed by the CA in --tls-ca\n"
    "  --tls-name NAME        ... and must be issued to NAME (DNS name or IP address)\n"
    "  --insecure             plain TCP: the VM's memory crosses the network readable\n"
    "  --ktls                 let the kernel encrypt (kernel TLS), where it can\n"
    "  --report FILE          write the final report (JSON) to FILE\n"
    "  --quiet                no progress lines\n";

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

/* A security option: checked here, sent as a field of the request (the VM process reads
 * the files, so they go as absolute paths). */
static int add_security(struct json_object *req, struct vs_security_opts *sec, const char *name,
                        const char *value)
{
    int rc = vs_security_set(sec, name, value);
    if (rc)
        return vs_fail_context(rc, "--%s", name);
    char key[32], path[PATH_MAX];
    snprintf(key, sizeof(key), "%s", name);
    for (char *p = key; *p; p++)
        *p = *p == '-' ? '_' : *p;
    if (!value) {
        json_object_object_add(req, key, json_object_new_boolean(1));
        return 0;
    }
    if (strcmp(name, "tls-name") != 0) {
        if (!realpath(value, path))
            return vs_fail(errno, "--%s %s: %s", name, value, strerror(errno));
        value = path;
    }
    json_object_object_add(req, key, json_object_new_string(value));
    return 0;
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

int cli_migrate_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "to", required_argument, NULL, 't' }, { "downtime-limit", required_argument, NULL, 'd' },
        { "max-passes", required_argument, NULL, 'p' }, { "timeout-ms", required_argument, NULL, 'o' },
        { "report", required_argument, NULL, 'r' }, { "max-bandwidth", required_argument, NULL, 'b' }, { "quiet", no_argument, NULL, 'q' },
        { "streams", required_argument, NULL, 's' }, { "compress", required_argument, NULL, 'c' },
        { "zerocopy", no_argument, NULL, 'z' }, { "converge", required_argument, NULL, 'C' },
        { "downtime-schedule", required_argument, NULL, 'D' },
        { "max-downtime", required_argument, NULL, 'M' },
        { "tls-psk", required_argument, NULL, 'S' }, { "tls-cert", required_argument, NULL, 'S' },
        { "tls-key", required_argument, NULL, 'S' }, { "tls-ca", required_argument, NULL, 'S' },
        { "tls-name", required_argument, NULL, 'S' }, { "insecure", no_argument, NULL, 'S' },
        { "ktls", no_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    struct vs_security_opts security = { 0 };
    const char *report = NULL;
    bool quiet = false;
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("migrate"));
    optind = 1;
    opterr = 0;
    int c, opt_index = 0;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":", opts, &opt_index)) != -1) {
        const char *key = c == 'd' ? "downtime_limit" : c == 'p' ? "max_passes" :
                          c == 's' ? "streams" : c == 'M' ? "max_downtime" : "timeout_ms";
        switch (c) {
        case 't': json_object_object_add(req, "to", json_object_new_string(optarg)); break;
        case 'c': json_object_object_add(req, "compress", json_object_new_string(optarg)); break;
        case 'z': json_object_object_add(req, "zerocopy", json_object_new_boolean(1)); break;
        case 'C': json_object_object_add(req, "converge", json_object_new_string(optarg)); break;
        case 'D':
            json_object_object_add(req, "downtime_schedule", json_object_new_string(optarg));
            break;
        case 'd': case 'p': case 'o': case 's': case 'M':
            if (vs_parse_u64(optarg, &v)) {
                fprintf(stderr, "vmshift migrate: --%s '%s' is not a whole number\n",
                        opts[opt_index].name, optarg);
                json_object_put(req);
                return 2;
            }
            json_object_object_add(req, key, json_object_new_uint64(v));
            break;
        case 'b':
            if (vs_parse_size(optarg, &v)) {
                fprintf(stderr, "vmshift migrate: --max-bandwidth: %s\n", vs_last_error());
                json_object_put(req);
                return 2;
            }
            json_object_object_add(req, "max_bandwidth", json_object_new_uint64(v));
            break;
        case 'S':
            if (add_security(req, &security, opts[opt_index].name, optarg)) {
                fprintf(stderr, "vmshift migrate: %s\n", vs_last_error());
                json_object_put(req);
                return 2;
            }
            break;
        case 'r': report = optarg; break;
        case 'q': quiet = true; break;
        case 'h': fputs(usage, stdout); json_object_put(req); return 0;
        default:
            vs_option_error(c, argv, optind, "vmshift migrate --help");
            fprintf(stderr, "vmshift migrate: %s\n", vs_last_error());
            json_object_put(req);
            return 2;
        }
    }
    if (optind + 1 != argc || !json_object_object_get_ex(req, "to", NULL)) {
        fprintf(stderr, "vmshift migrate: give the VM's control socket and --to HOST:PORT\n%s",
                usage);
        json_object_put(req);
        return 2;
    }
    if (vs_security_finish(&security, true)) {
        fprintf(stderr, "vmshift migrate: %s\n", vs_last_error());
        json_object_put(req);
        return 2;
    }
    const char *sock = argv[optind];
    vs_stop_signal_install();
    struct json_object *reply = NULL, *ok;
    int rc = ctl_request(sock, req, &reply, 10000);
    json_object_put(req);
    if (rc) {
        fprintf(stderr, "vmshift migrate: %s\n", vs_last_error());
        return 2;
    }
    if (!json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok)) {
        fprintf(stderr, "vmshift migrate: %s\n", str_of(reply, "error"));
        json_object_put(reply);
        return 1;
    }
    json_object_put(reply);

    struct json_object *m = NULL;
    char last_line[64] = "";
    for (;;) {
        usleep(200000);
        if (vs_stop_signal()) {
            json_object_put(m);
            return stopped(sock);
        }
        if (ctl_command(sock, "migrate-status", NULL, &reply, 10000)) {
            fprintf(stderr, "vmshift migrate: lost the control socket: %s\n", vs_last_error());
            return 2;
        }
        if (json_object_object_get_ex(reply, "migration", &m))
            m = json_object_get(m);
        json_object_put(reply);
        if (!m)
            continue;
        char line[64];
        snprintf(line, sizeof(line), "%s %.0f", str_of(m, "status"), num_of(m, "iterations"));
        if (!quiet && strcmp(line, last_line)) {
            progress(m);
            snprintf(last_line, sizeof(last_line), "%s", line);
        }
        if (is_final(str_of(m, "status")))
            break;
        json_object_put(m);
        m = NULL;
    }
    if (!quiet)
        pass_table(m);
    if (!report)
        printf("%s\n", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY));
    else if (json_object_to_file_ext(report, m, JSON_C_TO_STRING_PRETTY) < 0)
        fprintf(stderr, "vmshift migrate: cannot write the report to %s\n", report);
    else
        print_summary(m, report);
    const char *status = str_of(m, "status");
    int exit_code = !strcmp(status, "completed") ? 0 : 1;
    if (exit_code)
        fprintf(stderr, "vmshift migrate: %s: %s\n", status, str_of(m, "error"));
    json_object_put(m);
    return exit_code;
}
