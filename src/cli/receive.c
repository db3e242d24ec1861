#include "cli/receive.h"
#include "cli/monitor_loop.h"
#include "common/error.h"
#include "common/log.h"
#include "common/size.h"
#include "migrate/dest.h"
#include "migrate/dest_resolve.h"
#include "transport/tcp.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: vmshift receive --listen HOST:PORT [options]\n"
    "  --listen HOST:PORT     address to wait on for one incoming VM (port 0: any free port)\n"
    "  --port-file FILE       write the port actually listened on to FILE\n"
    "  --ctl SOCKET           control socket of the VM once it has arrived\n"
    "  --serial DEST          stdout | none | FILE for the guest's COM1 (default stdout)\n"
    "  --max-mem SIZE         refuse VMs with more RAM than this\n"
    "  --report FILE          write this side's migration report (JSON)\n"
    "  --timeout SECONDS      a silent source is an error after this (default 60)\n"
    "  --accept-timeout SECONDS  give up if no migration arrives (default: wait forever)\n"
    "  --run-for SECONDS      quit this long after the VM arrived (default: until 'quit')\n"
    "  --kvm-device PATH      KVM device (default /dev/kvm)\n";

struct receive_options {
    const char *listen, *port_file, *ctl, *report;
    struct vs_incoming_opts in;
    double accept_timeout_s, run_for_s;
};

static int parse(int argc, char **argv, struct receive_options *o)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' }, { "port-file", required_argument, NULL, 'p' },
        { "ctl", required_argument, NULL, 'c' }, { "serial", required_argument, NULL, 's' },
        { "max-mem", required_argument, NULL, 'm' }, { "report", required_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 't' },
        { "accept-timeout", required_argument, NULL, 'a' },
        { "run-for", required_argument, NULL, 'f' }, { "kvm-device", required_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof(*o));
    o->in.kvm_device = "/dev/kvm";
    o->in.serial = "stdout";
    o->in.timeout_ms = 60000;
    optind = 1;
    opterr = 0;
    int c;
    char *end;
    double secs;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': o->listen = optarg; break;
        case 'p': o->port_file = optarg; break;
        case 'c': o->ctl = optarg; break;
        case 's': o->in.serial = optarg; break;
        case 'r': o->report = optarg; break;
        case 'k': o->in.kvm_device = optarg; break;
        case 'm':
            if (vs_parse_size(optarg, &o->in.max_mem))
                return vs_fail_context(-EINVAL, "--max-mem");
            break;
        case 't': case 'a': case 'f':
            secs = strtod(optarg, &end);
            if (end == optarg || *end || secs < 0)
                return vs_fail(EINVAL, "%s '%s' is not a number of seconds", argv[optind - 1],
                               optarg);
            if (c == 't')
                o->in.timeout_ms = (int)(secs * 1000);
            else if (c == 'a')
                o->accept_timeout_s = secs;
            else
                o->run_for_s = secs;
            break;
        case 'h': fputs(usage, stdout); exit(0);
        default:
            return vs_fail(EINVAL, "unknown or incomplete option '%s'; see vmshift receive --help",
                           argv[optind - 1]);
        }
    }
    if (optind < argc)
        return vs_fail(EINVAL, "unexpected argument '%s'; see vmshift receive --help",
                       argv[optind]);
    if (!o->listen)
        return vs_fail(EINVAL, "--listen HOST:PORT is required");
    return 0;
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

static int accept_stream(void *ctx, int timeout_ms, struct vs_channel **out)
{
    return vs_tcp_accept(ctx, timeout_ms, out);
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

int cli_receive_main(int argc, char **argv)
{
    struct receive_options o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "vmshift receive: %s\n", vs_last_error());
        return 2;
    }
    monitor_install_signals();
    struct vs_tcp_listener *l;
    if (vs_tcp_listen(o.listen, &l) ||
        (o.port_file && write_port(o.port_file, vs_tcp_listener_port(l)))) {
        fprintf(stderr, "vmshift receive: %s\n", vs_last_error());
        return 1;
    }
    vs_info("waiting for an incoming VM on %s (port %d)", o.listen, vs_tcp_listener_port(l));
    struct vs_channel *ch;
    int rc = vs_tcp_accept(l, (int)(o.accept_timeout_s * 1000), &ch);
    if (rc) {
        vs_tcp_listener_close(l);
        fprintf(stderr, "vmshift receive: %s\n", vs_last_error());
        return 1;
    }
    struct vm_commands cmds = { .has_incoming = true };
    o.in.accept_stream = accept_stream;   /* the other streams come to the same port */
    o.in.accept_ctx = l;
    struct vs_incoming_session session;
    rc = vs_incoming_run(ch, &o.in, &cmds.vm, &cmds.incoming, &session);
    vs_channel_close(ch);
    if (rc < 0) {
        vs_tcp_listener_close(l);
        write_report(o.report, &cmds.incoming);
        fprintf(stderr, "vmshift receive: %s; nothing runs here\n", vs_last_error());
        return 1;
    }
    write_report(o.report, &cmds.incoming);   /* written again when this process ends */
    /* The listener stays open while this process holds the VM: the source settles a lost
     * commit window through it, and "connection refused" there means this copy is gone. */
    struct vs_dest_resolver *resolver = NULL;
    if (vs_dest_resolver_start(&resolver, l, cmds.vm, &session, rc == VS_INCOMING_IN_DOUBT,
                               &cmds.quit, &cmds.incoming))
        vs_warn("%s", vs_last_error());
    vs_info("the VM %s", rc == VS_INCOMING_IN_DOUBT ? "is here, paused in doubt until the "
            "outcome is settled" : "runs here now");
    int status = monitor_serve(&cmds, o.ctl, o.run_for_s, "vmshift receive");
    bool discarded = resolver && vs_dest_resolver_state(resolver) == VS_OUTCOME_DST_DISCARDED;
    vs_dest_resolver_stop(resolver);
    vs_tcp_listener_close(l);
    write_report(o.report, &cmds.incoming);
    vs_vm_destroy(cmds.vm);
    if (discarded) {
        fprintf(stderr, "vmshift receive: the source kept the VM; the copy here was "
                "discarded and never ran\n");
        return 1;
    }
    return status;
}
