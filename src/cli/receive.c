#include "cli/receive.h"
#include "common/option_error.h"
#include "cli/monitor_loop.h"
#include "common/error.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/size.h"
#include "common/stop_signal.h"
#include "cli/receive_admission.h"
#include "ctl/nic_status.h"
#include "migrate/precopy/dest.h"
#include "migrate/precopy/prefault.h"
#include "migrate/commit/dest_resolve.h"
#include "migrate/postcopy/postcopy_dest.h"
#include "transport/security.h"
#include "transport/tcp.h"
#include "transport/tls.h"
#include "vmm/virtio/virtio_net_spec.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: vmshift receive --listen HOST:PORT [options]\n"
    "  --listen HOST:PORT     address to wait on for one incoming VM (port 0: any free port)\n"
    "  --port-file FILE       write the port actually listened on to FILE\n"
    "  --ctl SOCKET           control socket of the VM once it has arrived\n"
    "  --serial DEST          stdout | none | FILE for the guest's COM1 (default stdout)\n"
    "  --nic SPEC, --disk SPEC  this host's backends for the VM's NICs and disks, as for\n"
    "                         `vmshift run` and in the same order (default: the source's)\n"
    "security (choose one; the source must choose the same kind):\n"
    "  --tls-psk FILE         TLS 1.3 with the pre-shared key in FILE (hex, e.g. from\n"
    "                         `openssl rand -hex 32`; the same file on the source)\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
    "                         TLS 1.3 with this host's certificate and key; the source's\n"
    "                         certificate must be signed by the CA in --tls-ca\n"
    "  --tls-name NAME        ... and must be issued to NAME (DNS name or IP address)\n"
    "  --insecure             plain TCP: anyone who reaches the port can send a VM\n"
    "  --ktls                 let the kernel encrypt (kernel TLS), where it can\n"
    "bounds (what a peer can make this host do):\n"
    "  --max-mem SIZE         refuse VMs with more RAM than this (default: what is free)\n"
    "  --max-vcpus N          refuse VMs with more vCPUs than this (default 32)\n"
    "  --handshake-timeout SECONDS  a connection must finish TLS, then its first record,\n"
    "                         each within this (default 10)\n"
    "  --max-refused N        give up after refusing N connections (default 16)\n"
    "  --timeout SECONDS      a silent source is an error after this (default 60)\n"
    "  --report FILE          write this side's migration report (JSON)\n"
    "  --accept-timeout SECONDS  give up if no migration arrives (default: wait forever)\n"
    "  --run-for SECONDS      quit this long after the VM arrived (default: until 'quit')\n"
    "  --keep-after-migrate   once the VM has migrated on from here, stay (state migrated,\n"
    "                         its RAM given back) until 'quit'; by default exit 0 two\n"
    "                         seconds after that migration completed\n"
    "  --kvm-device PATH      KVM device (default /dev/kvm)\n"
    "tuning (docs/perf-notes.md):\n"
    "  --page-writes auto|file|mapping  put received pages into guest RAM through its\n"
    "                         memfd (file; --ram-backing memfd) or its mapping; auto\n"
    "                         (default): file with 4 KiB pages, mapping with 2 MiB\n"
    "                         pages (measured faster)\n"
    "  --prefault-threads N   threads faulting guest RAM in ahead of the first pass\n"
    "                         (default: none below 4 CPUs, then one per 4 CPUs, at most 4)\n"
    "  --ram-backing auto|memfd|anon  what backs the incoming VM's RAM (as vmshift run)\n";

struct receive_options {
    const char *listen, *port_file, *ctl, *report;
    struct vs_device_list nics, disks, devices;   /* --nic, --disk; devices: NICs first */
    struct vs_incoming_opts in;
    struct vs_security_opts security;
    double accept_timeout_s, run_for_s;
    unsigned max_refused;
    bool keep_after_migrate;
};

/* A whole number in [lo, hi] for option opt. */
static int parse_count(const char *opt, const char *text, unsigned lo, unsigned hi,
                       unsigned *out)
{
    uint64_t v;
    if (vs_parse_u64(text, &v) || v < lo || v > hi)
        return vs_fail(EINVAL, "%s '%s' is not a whole number in %u..%u", opt, text, lo, hi);
    *out = (unsigned)v;
    return 0;
}

static int parse(int argc, char **argv, struct receive_options *o)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' }, { "port-file", required_argument, NULL, 'p' },
        { "ctl", required_argument, NULL, 'c' }, { "serial", required_argument, NULL, 's' },
        { "max-mem", required_argument, NULL, 'm' }, { "report", required_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 't' },
        { "accept-timeout", required_argument, NULL, 'a' },
        { "run-for", required_argument, NULL, 'f' }, { "kvm-device", required_argument, NULL, 'k' },
        { "max-vcpus", required_argument, NULL, 'v' },
        { "handshake-timeout", required_argument, NULL, 'H' },
        { "max-refused", required_argument, NULL, 'R' },
        { "nic", required_argument, NULL, 'N' }, { "disk", required_argument, NULL, 'D' },
        { "tls-psk", required_argument, NULL, 'S' }, { "tls-cert", required_argument, NULL, 'S' },
        { "tls-key", required_argument, NULL, 'S' }, { "tls-ca", required_argument, NULL, 'S' },
        { "tls-name", required_argument, NULL, 'S' }, { "insecure", no_argument, NULL, 'S' },
        { "ktls", no_argument, NULL, 'S' },
        { "keep-after-migrate", no_argument, NULL, 'K' },
        { "page-writes", required_argument, NULL, 'W' },
        { "prefault-threads", required_argument, NULL, 'P' },
        { "ram-backing", required_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof(*o));
    o->in.kvm_device = "/dev/kvm";
    o->in.serial = "stdout";
    o->in.timeout_ms = 60000;
    o->in.handshake_timeout_ms = 10000;
    o->in.max_vcpus = 32;
    o->in.tuning.prefault_threads = -1;
    o->max_refused = 16;
    optind = 1;
    opterr = 0;
    int c, opt_index = 0;
    char *end;
    double secs;
    struct vs_net_spec nic;
    while ((c = getopt_long(argc, argv, ":", opts, &opt_index)) != -1) {
        switch (c) {
        case 'S':
            if (vs_security_set(&o->security, opts[opt_index].name, optarg))
                return vs_fail_context(-EINVAL, "--%s", opts[opt_index].name);
            break;
        case 'v':
            if (parse_count("--max-vcpus", optarg, 1, 32, &o->in.max_vcpus))
                return -EINVAL;
            break;
        case 'W':
            if (vs_page_writes_parse(optarg, &o->in.tuning.page_writes))
                return -EINVAL;
            break;
        case 'B':
            if (vs_ram_backing_parse(optarg, &o->in.tuning.ram_backing))
                return -EINVAL;
            break;
        case 'P': {
            unsigned n = 0;
            if (parse_count("--prefault-threads", optarg, 0, VS_PREFAULT_MAX_THREADS, &n))
                return -EINVAL;
            o->in.tuning.prefault_threads = (int)n;
            break;
        }
        case 'R':
            if (parse_count("--max-refused", optarg, 0, 1000000, &o->max_refused))
                return -EINVAL;
            break;
        case 'N': case 'D':
            if ((c == 'N' && vs_net_spec_parse(optarg, &nic)) ||
                vs_device_list_add(c == 'N' ? &o->nics : &o->disks,
                                   c == 'N' ? VS_DEVICE_NIC : VS_DEVICE_DISK, optarg))
                return -EINVAL;
            break;
        case 'l': o->listen = optarg; break;
        case 'p': o->port_file = optarg; break;
        case 'c': o->ctl = optarg; break;
        case 's': o->in.serial = optarg; break;
        case 'r': o->report = optarg; break;
        case 'K': o->keep_after_migrate = true; break;
        case 'k': o->in.kvm_device = optarg; break;
        case 'm':
            if (vs_parse_size(optarg, &o->in.max_mem))
                return vs_fail_context(-EINVAL, "--max-mem");
            break;
        case 't': case 'a': case 'f': case 'H':
            secs = strtod(optarg, &end);
            if (end == optarg || *end || secs < 0 || secs > 86400 || (c == 'H' && secs <= 0))
                return vs_fail(EINVAL, "%s '%s' is not a number of seconds%s", argv[optind - 1],
                               optarg, c == 'H' ? " above 0" : "");
            if (c == 't')
                o->in.timeout_ms = (int)(secs * 1000);
            else if (c == 'H')
                o->in.handshake_timeout_ms = secs * 1000 < 1 ? 1 : (int)(secs * 1000);
            else if (c == 'a')
                o->accept_timeout_s = secs;
            else
                o->run_for_s = secs;
            break;
        case 'h': fputs(usage, stdout); exit(0);
        default:
            return vs_option_error(c, argv, optind, "vmshift receive --help");
        }
    }
    if (optind < argc)
        return vs_fail(EINVAL, "unexpected argument '%s'; see vmshift receive --help",
                       argv[optind]);
    if (!o->listen)
        return vs_fail(EINVAL, "--listen HOST:PORT is required");
    if (vs_device_list_join(&o->devices, &o->nics, &o->disks))
        return -EINVAL;
    o->in.local_devices = &o->devices;
    return vs_security_finish(&o->security, true);
}

static void write_report(const char *path, const struct vs_migration_stats *s)
{
    if (!path)
        return;
    struct json_object *j = vs_report_json(s);
    if (json_object_to_file_ext(path, j, JSON_C_TO_STRING_PRETTY) < 0)
        vs_warn("cannot write the report to %s", path);
    json_object_put(j);
}

static int accept_stream(void *ctx, unsigned want, int timeout_ms, struct vs_channel **out)
{
    return vs_admission_next(ctx, want, timeout_ms, out);
}

static int write_port(const char *path, int port)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return vs_fail(errno, "--port-file %s: %s", path, strerror(errno));
    fprintf(f, "%d\n", port);
    fclose(f);
    return 0;
}

/* Wait for a source: refuse (and log) every connection that fails authentication or does
 * not start with a valid HELLO, up to --max-refused of them. */
static int receive_vm(struct receive_options *o, struct vs_admission *a, struct vm_commands *cmds,
                      struct vs_incoming_session *session)
{
    unsigned refused = 0;
    double deadline = o->accept_timeout_s > 0 ? vs_clock_ns() / 1e9 + o->accept_timeout_s : 0;
    for (;;) {
        if (vs_stop_signal())
            return vs_fail(EINTR, "stopped while waiting for an incoming VM");
        int wait_ms = 0;
        if (deadline > 0) {
            double left = deadline - vs_clock_ns() / 1e9;
            wait_ms = left * 1000 < 1 ? 1 : (int)(left * 1000);
        }
        struct vs_channel *ch;
        int rc = vs_admission_next(a, 1, wait_ms, &ch);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            rc = vs_incoming_run(ch, &o->in, &cmds->vm, &cmds->incoming, session);
            if (rc != VS_INCOMING_NOT_A_SOURCE) {
                if (rc != VS_INCOMING_POSTCOPY)   /* else stream 0 is the post-copy's */
                    vs_channel_close(ch);
                return rc;
            }
            vs_fail_context(-EPROTO, "%s sent no valid HELLO", ch->peer);
            vs_warn("refused a connection: %s", vs_last_error());
            vs_channel_linger_close(ch, 500);
        }
        char last[512];
        snprintf(last, sizeof(last), "%s", vs_last_error());
        if (++refused > o->max_refused)
            return vs_fail(EACCES, "gave up after refusing %u connection(s) (--max-refused "
                           "%u); the last: %.380s", refused, o->max_refused, last);
    }
}

/* Closes the listening socket and removes the port file: from here a source that calls
 * finds this process gone. */
static void close_listener(struct vs_admission *a, const char *port_file)
{
    vs_admission_drain(a);
    vs_tcp_listener_close(a->listener);
    a->listener = NULL;
    vs_tls_free(a->tls);
    a->tls = NULL;
    if (port_file)
        unlink(port_file);
}

/* A migration that failed before this side verified its copy: does the source still run
 * the VM (it rolls back), or did it die with it? Then nothing can bring the VM back, and
 * what the operator must do is boot it again. */
static void explain_failure(const struct receive_options *o,
                            const struct vs_incoming_session *session,
                            const struct vs_migration_stats *in)
{
    struct vs_tls *tls = NULL;
    if (!in->ram_total_bytes || vs_tls_new(&o->security, VS_TLS_SOURCE, &tls))
        return;   /* no source was admitted: no VM was on its way */
    char addr[96], mem[32];
    int gone = vs_dest_probe_source(session, tls, 2000, addr, sizeof(addr));
    vs_tls_free(tls);
    if (gone == 0) {
        fprintf(stderr, "vmshift receive: the source %s still runs (its RESOLVE endpoint %s "
                "answered): it keeps the VM\n", session->source, addr);
        return;
    }
    snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(in->ram_total_bytes >> 20));
    if (gone > 0)
        fprintf(stderr, "vmshift receive: the source process that sent the VM from %s is "
                "gone (its RESOLVE endpoint %s refuses): it ended (killed, crashed or "
                "stopped) before this side had the VM's verified state, and the VM died with "
                "it; the partial copy here cannot run and was discarded. Nothing can bring the VM back "
                "(docs/state-machine.md, \"What needs an operator\"): boot it again, on its "
                "host or here, with its kernel and options:\n"
                "    vmshift run --mem %s --vcpus %u --kernel KERNEL --ctl SOCKET ...\n",
                session->source, addr, mem, in->vcpus);
    else
        fprintf(stderr, "vmshift receive: cannot tell whether the source %s still runs the "
                "VM (%s): if its process lives, it keeps the VM; if it is gone, the VM died "
                "with it and must be booted again (vmshift run --mem %s --vcpus %u --kernel "
                "KERNEL ...)\n", session->source, vs_last_error(), mem, in->vcpus);
}

/* The exit of a receiver stopped by SIGTERM or SIGINT before its VM arrived. */
static int stopped_before_arrival(const struct receive_options *o,
                                  const struct vs_migration_stats *in)
{
    int sig = vs_stop_signal();
    if (in->ram_total_bytes)   /* a source was admitted: it rolls back */
        fprintf(stderr, "vmshift receive: stopped by %s during the incoming migration from "
                "%s (%s); the partial copy here was discarded and the source keeps running "
                "the VM\n", vs_stop_signal_name(sig), in->peer, vs_last_error());
    else
        fprintf(stderr, "vmshift receive: stopped by %s while waiting for an incoming VM on "
                "%s; nothing runs here\n", vs_stop_signal_name(sig), o->in.resume_addr);
    return vs_stop_exit_status(sig);
}

int cli_receive_main(int argc, char **argv)
{
    struct receive_options o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "vmshift receive: %s\n", vs_last_error());
        return 2;
    }
    monitor_install_signals();
    struct vs_admission a = { .handshake_timeout_ms = o.in.handshake_timeout_ms };
    if (vs_tls_new(&o.security, VS_TLS_DESTINATION, &a.tls)) {
        fprintf(stderr, "vmshift receive: %s\n", vs_last_error());
        return 1;
    }
    if (vs_tcp_listen(o.listen, &a.listener) ||
        (o.port_file && write_port(o.port_file, vs_tcp_listener_port(a.listener)))) {
        fprintf(stderr, "vmshift receive: %s\n", vs_last_error());
        vs_tcp_listener_close(a.listener);
        vs_tls_free(a.tls);
        return 1;
    }
    /* Until the VM is here, a stop signal ends every wait for a connection. */
    vs_tcp_listener_stop_on(a.listener, vs_stop_signal_fd());
    vs_info("waiting for an incoming VM on %s (port %d, %s)", o.listen,
            vs_tcp_listener_port(a.listener), vs_security_mode_name(o.security.mode));
    struct vm_commands cmds = { .has_incoming = true };
    o.in.accept_stream = accept_stream;   /* the other streams come to the same port */
    o.in.accept_ctx = &a;
    o.in.security = vs_security_mode_name(o.security.mode);
    o.in.postcopy = &cmds.postcopy;       /* ... and a lost post-copy comes back there */
    char where[96];
    snprintf(where, sizeof(where), "%s (port %d)", o.listen, vs_tcp_listener_port(a.listener));
    o.in.resume_addr = where;
    struct vs_incoming_session session;
    int rc = receive_vm(&o, &a, &cmds, &session);
    if (rc < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", vs_last_error());
        close_listener(&a, o.port_file);
        write_report(o.report, &cmds.incoming);
        vs_fail(rc, "%s", why);
        if (vs_stop_signal())
            return stopped_before_arrival(&o, &cmds.incoming);
        fprintf(stderr, "vmshift receive: %s; nothing runs here\n", why);
        explain_failure(&o, &session, &cmds.incoming);
        return 1;
    }
    /* The listener's users from now on (the resolver, the post-copy engine) look at the
     * stop themselves (the monitor loop stops them). */
    vs_tcp_listener_stop_on(a.listener, -1);
    /* The listener stays open while this process holds the VM, with one user at a time:
     * in post-copy the post-copy engine (a lost connection comes back there; the source's
     * RESOLVE too, in the commit window), otherwise the outcome resolver (the source
     * settles a lost commit window there). "Connection refused" there means this copy is
     * gone. Every connection is admitted (TLS) first. */
    struct vs_dest_resolver *resolver = NULL;
    struct vs_tls *resolve_tls = NULL;    /* for asking the source: the TLS client side */
    if (rc != VS_INCOMING_POSTCOPY) {
        write_report(o.report, &cmds.incoming);   /* written again when this process ends */
        struct vs_dest_resolver_opts ro = { .accept = accept_stream, .accept_ctx = &a,
                                            .in_doubt = rc == VS_INCOMING_IN_DOUBT,
                                            .quit = &cmds.quit, .stats = &cmds.incoming };
        int err = vs_tls_new(&o.security, VS_TLS_SOURCE, &resolve_tls);
        ro.tls = resolve_tls;
        if (err || vs_dest_resolver_start(&resolver, &ro, cmds.vm, &session))
            vs_warn("cannot settle a lost commit window with the source: %s", vs_last_error());
    }
    vs_info("the VM %s", rc == VS_INCOMING_IN_DOUBT ? "is here, paused in doubt until the "
            "outcome is settled" : rc == VS_INCOMING_POSTCOPY ? "runs here once the source "
            "grants it (post-copy: its missing pages follow)" : "runs here now");
    struct monitor_opts mo = { .who = "vmshift receive", .ctl_path = o.ctl,
                               .run_for_s = o.run_for_s,
                               .keep_after_migrate = o.keep_after_migrate };
    int status = monitor_serve(&cmds, &mo);
    bool discarded = resolver && vs_dest_resolver_state(resolver) == VS_OUTCOME_DST_DISCARDED;
    vs_dest_resolver_stop(resolver);
    vs_tls_free(resolve_tls);
    if (cmds.postcopy) {
        vs_postcopy_dest_stats(cmds.postcopy, &cmds.incoming);
        vs_postcopy_dest_free(cmds.postcopy);   /* closes stream 0 */
    }
    close_listener(&a, o.port_file);
    vm_nics_note_announces(cmds.vm, &cmds.incoming);
    write_report(o.report, &cmds.incoming);
    vs_vm_destroy(cmds.vm);
    if (discarded && status < 128) {
        fprintf(stderr, "vmshift receive: the source kept the VM; the copy here was "
                "discarded and never ran\n");
        return 1;
    }
    return status;
}
