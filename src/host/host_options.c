#include "host/host_options.h"
#include "common/option_error.h"
#include "host/host_table.h"
#include "common/error.h"
#include "common/size.h"
#include "transport/tcp.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char host_usage[] =
    "usage: vmshiftd --ctl SOCKET [--listen HOST:PORT SECURITY] [options]\n"
    "       vmshiftd --listen HOST:PORT SECURITY --state-dir DIR [options]\n"
    "The host agent: starts, lists and stops the VMs of this host (each VM its own\n"
    "`vmshift run` or `vmshift receive` process) and accepts incoming migrations.\n"
    "  --ctl SOCKET           the host's control socket (QMP; vmshift ctl SOCKET vm-list)\n"
    "  --listen HOST:PORT     serve the same commands over TCP to other hosts, with TLS 1.3\n"
    "                         and mutual authentication (vmshift ctl HOST:PORT ...)\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE   this host's certificate, its key and\n"
    "                         the CA every client's certificate must be signed by\n"
    "  --tls-name NAME        the certificates of --listen's clients must carry this name\n"
    "  --tls-psk FILE         instead of certificates: a key every client holds too\n"
    "  --insecure             plain TCP on --listen: anyone who reaches it runs this host\n"
    "                         (only on a network you trust)\n"
    "                         These security options (but --tls-name) are also the default\n"
    "                         of this host's migrations: every `vmshift receive` gets them\n"
    "                         unless --receive-opt names its own, and a VM sent with vm-ctl\n"
    "                         vm-cmd=migrate to=... gets them unless the request names any\n"
    "  --state-dir DIR        VM directories go to DIR/NAME (default SOCKET.d)\n"
    "  --name NAME            this host's name in replies and reports (default: SOCKET, or\n"
    "                         HOST:PORT)\n"
    "  --max-mem SIZE         memory budget: the RAM of all VMs together (default: no limit\n"
    "                         beyond what each VM monitor finds available)\n"
    "  --migration-addr IP    address incoming migrations listen on; other hosts must reach\n"
    "                         it (default: the HOST of --listen, else 127.0.0.1)\n"
    "  --receive-opt ARG      extra argument for every `vmshift receive` (repeatable): the\n"
    "                         place for migration security options\n"
    "  --accept-timeout SECONDS  an announced incoming VM that does not come is given up\n"
    "                         after this (default 120)\n"
    "  --start-timeout SECONDS   a started VM must answer on its control socket within\n"
    "                         this (default 60)\n"
    "  --stop-timeout SECONDS    a VM told to quit is killed after this (default 10)\n"
    "  --vms-die-with-daemon  kill the VMs if the daemon dies (tests; default: they outlive\n"
    "                         a crashed daemon, and an orderly exit stops them)\n"
    "  --vmshift PATH         the vmshift binary (default: next to vmshiftd)\n";

enum { OPT_CTL = 256, OPT_STATE_DIR, OPT_NAME, OPT_MAX_MEM, OPT_ADDR, OPT_RECEIVE_OPT,
       OPT_ACCEPT_TIMEOUT, OPT_START_TIMEOUT, OPT_STOP_TIMEOUT, OPT_DIE, OPT_VMSHIFT,
       OPT_HELP, OPT_LISTEN, OPT_SECURITY };

static const struct option long_options[] = {
    { "ctl", required_argument, NULL, OPT_CTL },
    { "state-dir", required_argument, NULL, OPT_STATE_DIR },
    { "name", required_argument, NULL, OPT_NAME },
    { "max-mem", required_argument, NULL, OPT_MAX_MEM },
    { "migration-addr", required_argument, NULL, OPT_ADDR },
    { "receive-opt", required_argument, NULL, OPT_RECEIVE_OPT },
    { "accept-timeout", required_argument, NULL, OPT_ACCEPT_TIMEOUT },
    { "start-timeout", required_argument, NULL, OPT_START_TIMEOUT },
    { "stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT },
    { "vms-die-with-daemon", no_argument, NULL, OPT_DIE },
    { "vmshift", required_argument, NULL, OPT_VMSHIFT },
    { "help", no_argument, NULL, OPT_HELP },
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "tls-psk", required_argument, NULL, OPT_SECURITY },
    { "tls-cert", required_argument, NULL, OPT_SECURITY },
    { "tls-key", required_argument, NULL, OPT_SECURITY },
    { "tls-ca", required_argument, NULL, OPT_SECURITY },
    { "tls-name", required_argument, NULL, OPT_SECURITY },
    { "insecure", no_argument, NULL, OPT_SECURITY },
    { NULL, 0, NULL, 0 },
};

static int parse_seconds(const char *opt, const char *arg, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end || !(v > 0) || v > 86400)
        return vs_fail(EINVAL, "--%s '%s' is not a number of seconds between 0 and 86400", opt,
                       arg);
    *out = v;
    return 0;
}

static int copy(char *dst, size_t len, const char *opt, const char *val)
{
    if (strlen(val) >= len)
        return vs_fail(ENAMETOOLONG, "--%s '%.60s...' is too long (at most %zu characters)", opt,
                       val, len - 1);
    snprintf(dst, len, "%s", val);
    return 0;
}

/* The socket of a VM is STATE_DIR/NAME/ctl.sock and must fit a unix socket path. */
#define VM_SOCK_SUFFIX_LEN (1 + HOST_NAME_MAX_LEN + sizeof("/ctl.sock") - 1)

static bool any_security(const struct vs_security_opts *s)
{
    return s->insecure || s->psk[0] || s->cert[0] || s->key[0] || s->ca[0] || s->name[0];
}

/* The security options again, as arguments of `vmshift receive`. */
static void security_args(struct host_options *o)
{
    const struct vs_security_opts *s = &o->security;
    const char **a = o->security_args;
    int n = 0;
    if (s->mode == VS_SEC_INSECURE) {
        a[n++] = "--insecure";
    } else if (s->mode == VS_SEC_PSK) {
        a[n++] = "--tls-psk";
        a[n++] = s->psk;
    } else if (s->mode == VS_SEC_CERT) {
        a[n++] = "--tls-cert";
        a[n++] = s->cert;
        a[n++] = "--tls-key";
        a[n++] = s->key;
        a[n++] = "--tls-ca";
        a[n++] = s->ca;            /* --tls-name is the listener's own */
    }
    a[n] = NULL;
}

/* --listen needs a security choice; the migration address defaults to its host. */
static int finish_listen(struct host_options *o)
{
    if (any_security(&o->security) || o->listen) {
        int rc = vs_security_finish_for(&o->security, true, o->listen ?
                                        "--listen (and this host's migrations)" :
                                        "this host's migrations");
        if (rc)
            return rc;
        security_args(o);
    }
    if (!o->listen)
        return 0;
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = vs_tcp_parse_addr(o->listen, &ss, &len);
    if (rc)
        return vs_fail_context(rc, "--listen");
    if (!o->migration_addr[0]) {
        const char *colon = strrchr(o->listen, ':');
        const char *host = o->listen[0] == '[' ? o->listen + 1 : o->listen;
        size_t n = (size_t)(colon - host) - (o->listen[0] == '[');
        snprintf(o->migration_addr, sizeof(o->migration_addr), "%.*s", (int)n, host);
        if (!strcmp(o->migration_addr, "0.0.0.0") || !strcmp(o->migration_addr, "::"))
            o->migration_addr[0] = '\0';   /* all addresses: which one others reach is unknown */
    }
    return 0;
}

static int finish(struct host_options *o, const char *self_exe)
{
    if (!o->ctl && !o->listen)
        return vs_fail(EINVAL, "--ctl SOCKET or --listen HOST:PORT is required: where the "
                               "host is controlled from");
    int rc = finish_listen(o);
    if (rc)
        return rc;
    if (!o->migration_addr[0])
        snprintf(o->migration_addr, sizeof(o->migration_addr), "127.0.0.1");
    o->receive.listen_addr = o->migration_addr;
    if (!o->state_dir[0] && !o->ctl)
        return vs_fail(EINVAL, "--state-dir DIR is required without --ctl: where the VMs' "
                               "directories go (with --ctl it defaults to SOCKET.d)");
    if (!o->state_dir[0] && (rc = snprintf(o->state_dir, sizeof(o->state_dir), "%s.d", o->ctl)) >=
                                (int)sizeof(o->state_dir))
        return vs_fail(ENAMETOOLONG, "--ctl %s is too long", o->ctl);
    size_t n = strlen(o->state_dir);
    while (n > 1 && o->state_dir[n - 1] == '/')
        o->state_dir[--n] = '\0';
    if (n + VM_SOCK_SUFFIX_LEN >= HOST_PATH_LEN)
        return vs_fail(ENAMETOOLONG, "--state-dir %s is too long for the VMs' control sockets "
                                     "(%zu characters, at most %zu); choose a shorter one",
                       o->state_dir, n, HOST_PATH_LEN - 1 - VM_SOCK_SUFFIX_LEN);
    if (!o->name[0])
        snprintf(o->name, sizeof(o->name), "%.63s", o->ctl ? o->ctl : o->listen);
    if (!o->vmshift[0]) {
        const char *slash = self_exe ? strrchr(self_exe, '/') : NULL;
        if (slash)
            snprintf(o->vmshift, sizeof(o->vmshift), "%.*s/vmshift", (int)(slash - self_exe),
                     self_exe);
        else
            snprintf(o->vmshift, sizeof(o->vmshift), "vmshift");
    }
    return 0;
}

int host_options_parse(int argc, char **argv, const char *self_exe, struct host_options *o)
{
    memset(o, 0, sizeof(*o));
    o->receive.accept_timeout_s = 120;
    o->receive.extra_args = o->receive_args;
    o->receive.default_security = o->security_args;
    o->start_timeout_s = 60;
    o->stop_timeout_s = 10;
    unsigned nargs = 0;
    optind = 1;
    opterr = 0;
    int c, idx = 0, rc = 0;
    while ((c = getopt_long(argc, argv, ":", long_options, &idx)) != -1) {
        switch (c) {
        case OPT_CTL: o->ctl = optarg; break;
        case OPT_STATE_DIR: rc = copy(o->state_dir, sizeof(o->state_dir), "state-dir", optarg); break;
        case OPT_NAME: rc = copy(o->name, sizeof(o->name), "name", optarg); break;
        case OPT_VMSHIFT: rc = copy(o->vmshift, sizeof(o->vmshift), "vmshift", optarg); break;
        case OPT_MAX_MEM:
            if ((rc = vs_parse_size(optarg, &o->max_mem)))
                rc = vs_fail_context(rc, "--max-mem");
            break;
        case OPT_ADDR:
            rc = copy(o->migration_addr, sizeof(o->migration_addr), "migration-addr", optarg);
            break;
        case OPT_LISTEN: o->listen = optarg; break;
        case OPT_SECURITY: rc = vs_security_set(&o->security, long_options[idx].name, optarg);
            break;
        case OPT_RECEIVE_OPT:
            if (nargs >= HOST_MAX_RECEIVE_ARGS)
                return vs_fail(E2BIG, "more than %d --receive-opt", HOST_MAX_RECEIVE_ARGS);
            o->receive_args[nargs++] = optarg;
            break;
        case OPT_ACCEPT_TIMEOUT:
            rc = parse_seconds("accept-timeout", optarg, &o->receive.accept_timeout_s);
            break;
        case OPT_START_TIMEOUT: rc = parse_seconds("start-timeout", optarg, &o->start_timeout_s); break;
        case OPT_STOP_TIMEOUT: rc = parse_seconds("stop-timeout", optarg, &o->stop_timeout_s); break;
        case OPT_DIE: o->die_with_daemon = true; break;
        case OPT_HELP: o->help = true; return 0;
        default:
            return vs_option_error(c, argv, optind, "vmshiftd --help");
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return vs_fail(EINVAL, "unexpected argument '%s'; see vmshiftd --help", argv[optind]);
    return finish(o, self_exe);
}
