#include "evacuate/evacuate_options.h"
#include "common/option_error.h"
#include "common/error.h"
#include "common/size.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_tcp.h"
#include "ctl/migration_params.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_head[] =
    "usage: vmshift evacuate --from HOST --to HOST[,HOST...] [SECURITY] [options]\n"
    "Live-migrate every VM of the source host to the destination hosts. A HOST is the\n"
    "control socket of a vmshiftd, or the HOST:PORT of one started with --listen (on this\n"
    "machine or another), reached over TLS 1.3. Each VM keeps every guarantee of\n"
    "`vmshift migrate` (end-to-end digest, rollback); a VM that fails or is refused keeps\n"
    "running on the source, and the others go on.\n"
    "  --from HOST            the host to drain\n"
    "  --to HOST[,HOST...]    where the VMs go (each VM to the one with most room)\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE   for HOST:PORT hosts: this client's\n"
    "                         certificate, its key, and the CA the hosts' certificates\n"
    "                         must be signed by (--tls-name NAME: the name they carry)\n"
    "  --tls-psk FILE         for HOST:PORT hosts: the key they hold, instead\n"
    "  --insecure             for HOST:PORT hosts: plain TCP, to hosts started so\n"
    "  --parallel N|auto      migrations at a time (default auto: adapts the degree to the\n"
    "                         measured aggregate throughput and per-migration progress)\n"
    "  --max-parallel N       the most auto may use (default 8)\n"
    "  --vms NAME[,NAME...]   only these VMs (default: every running VM of the source)\n"
    "  --migrate-opt KEY=VALUE  another migration parameter for every migration (its QMP\n"
    "                         name, e.g. x-converge=auto; repeatable); the migrations'\n"
    "                         security (x-tls-cert=FILE ..., files of the source host) goes\n"
    "                         here, or comes from the source vmshiftd's own --tls-* options\n"
    "  --report FILE          write the drain report (JSON) to FILE\n"
    "  --poll-ms MS           how often the migrations are looked at (default 100)\n"
    "  --quiet                no progress lines\n"
    "Exit status: 0 every VM moved; 1 some VM did not (failed, refused); 2 usage error or\n"
    "a host could not be reached.\n"
    "The migration parameters, as for vmshift migrate, for every migration (max-bandwidth\n"
    "is per migration):\n";

void evacuate_print_usage(FILE *f)
{
    char params[8192];
    mp_usage_except(params, sizeof(params), mp_is_security);
    fprintf(f, "%s%s", usage_head, params);
}

enum { OPT_FROM = 256, OPT_TO, OPT_PARALLEL, OPT_MAX_PARALLEL, OPT_VMS,
       OPT_MIGRATE_OPT, OPT_REPORT, OPT_POLL, OPT_QUIET, OPT_HELP, OPT_SECURITY,
       OPT_PARAM = 1000 };

#define NR_OWN_OPTIONS 16
static const struct option own_options[NR_OWN_OPTIONS] = {
    { "from", required_argument, NULL, OPT_FROM },
    { "to", required_argument, NULL, OPT_TO },
    { "parallel", required_argument, NULL, OPT_PARALLEL },
    { "max-parallel", required_argument, NULL, OPT_MAX_PARALLEL },
    { "vms", required_argument, NULL, OPT_VMS },
    { "migrate-opt", required_argument, NULL, OPT_MIGRATE_OPT },
    { "report", required_argument, NULL, OPT_REPORT },
    { "poll-ms", required_argument, NULL, OPT_POLL },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "help", no_argument, NULL, OPT_HELP },
    { "tls-psk", required_argument, NULL, OPT_SECURITY },
    { "tls-cert", required_argument, NULL, OPT_SECURITY },
    { "tls-key", required_argument, NULL, OPT_SECURITY },
    { "tls-ca", required_argument, NULL, OPT_SECURITY },
    { "tls-name", required_argument, NULL, OPT_SECURITY },
    { "insecure", no_argument, NULL, OPT_SECURITY },
};

static int parse_count(const char *opt, const char *arg, unsigned max, unsigned *out)
{
    uint64_t v;
    if (vs_parse_u64(arg, &v) || v < 1 || v > max)
        return vs_fail(EINVAL, "--%s '%s' is not a whole number from 1 to %u", opt, arg, max);
    *out = (unsigned)v;
    return 0;
}

/* Split a comma list in place into out[]; empty items are an error. */
static int split_list(const char *opt, char *list, const char **out, unsigned max, unsigned *n)
{
    *n = 0;
    char *save = NULL;
    if (!*list || list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,"))
        return vs_fail(EINVAL, "--%s '%s' has an empty item; give NAME[,NAME...]", opt, list);
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= max)
            return vs_fail(E2BIG, "--%s names more than %u items", opt, max);
        for (unsigned i = 0; i < *n; i++)
            if (strcmp(out[i], tok) == 0)
                return vs_fail(EINVAL, "--%s names '%s' twice", opt, tok);
        out[(*n)++] = tok;
    }
    return 0;
}

static int replace_dup(char **dst, const char *src)
{
    free(*dst);
    *dst = strdup(src);
    return *dst ? 0 : vs_fail(ENOMEM, "out of memory");
}

static int parse_parallel(const char *arg, struct evacuate_options *o)
{
    if (strcmp(arg, "auto") == 0) {
        o->parallel_auto = true;
        return 0;
    }
    o->parallel_auto = false;
    return parse_count("parallel", arg, EVAC_MAX_PARALLEL, &o->parallel);
}

/* Collected key=value tokens for the migrate request; each owned. */
struct field_tokens {
    char *tok[EVAC_MAX_MIGRATE_FIELDS];
    int n;
};

static int add_token(struct field_tokens *t, const char *key, const char *value)
{
    if (t->n >= EVAC_MAX_MIGRATE_FIELDS)
        return vs_fail(E2BIG, "more than %d migrate fields", EVAC_MAX_MIGRATE_FIELDS);
    if (asprintf(&t->tok[t->n], "%s%s%s", key, value ? "=" : "", value ? value : "") < 0)
        return vs_fail(ENOMEM, "out of memory");
    t->n++;
    return 0;
}

/* A migration parameter option, checked and stored under its QMP name. */
static int add_param(struct evacuate_options *o, const struct mp_def *d, const char *arg)
{
    struct json_object *v;
    if (json_object_object_get_ex(o->migrate, d->name, NULL))
        return vs_fail(EINVAL, "--%s repeats a migration parameter already given (%s)", d->cli,
                       d->name);
    int rc = mp_parse_text(d, arg, &v);
    if (!rc)
        json_object_object_add(o->migrate, d->name, v);
    return rc;
}

static int parse_option(int c, const char *name, const char *arg,
                        struct evacuate_options *o, struct field_tokens *fields)
{
    if (c >= OPT_PARAM && c < OPT_PARAM + (int)mp_count)
        return add_param(o, &mp_defs[c - OPT_PARAM], arg);
    uint64_t ms;
    switch (c) {
    case OPT_FROM: o->from = arg; return 0;
    case OPT_TO: return replace_dup(&o->to_list, arg);
    case OPT_VMS: return replace_dup(&o->vm_list, arg);
    case OPT_PARALLEL: return parse_parallel(arg, o);
    case OPT_MAX_PARALLEL:
        return parse_count("max-parallel", arg, EVAC_MAX_PARALLEL, &o->max_parallel);
    case OPT_MIGRATE_OPT:
        if (!strchr(arg, '=') || arg[0] == '=')
            return vs_fail(EINVAL, "--migrate-opt '%s' is not KEY=VALUE", arg);
        if (strncmp(arg, "to=", 3) == 0 || strncmp(arg, "cmd=", 4) == 0)
            return vs_fail(EINVAL, "--migrate-opt '%s': evacuate sets that field itself", arg);
        return add_token(fields, arg, NULL);
    case OPT_REPORT: o->report = arg; return 0;
    case OPT_POLL:
        if (vs_parse_u64(arg, &ms) || ms < 10 || ms > 10000)
            return vs_fail(EINVAL, "--poll-ms '%s' is not a number of milliseconds from 10 to "
                                   "10000", arg);
        o->poll_s = (double)ms / 1000.0;
        return 0;
    case OPT_QUIET: o->quiet = true; return 0;
    case OPT_SECURITY: return vs_security_set(&o->security, name, arg);
    default: return vs_fail(EINVAL, "unknown option");
    }
}

static void free_tokens(struct field_tokens *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->tok[i]);
    t->n = 0;
}

static bool security_given(const struct vs_security_opts *s)
{
    return s->insecure || s->psk[0] || s->cert[0] || s->key[0] || s->ca[0] || s->name[0];
}

/* Hosts given as HOST:PORT are reached as the security options say; sockets need none. */
static int finish_remote(struct evacuate_options *o)
{
    o->remote = ctl_is_tcp_address(o->from);
    for (unsigned i = 0; i < o->nto; i++)
        o->remote |= ctl_is_tcp_address(o->to[i]);
    if (!o->remote && security_given(&o->security))
        return vs_fail(EINVAL, "--tls-* and --insecure secure the connections to hosts given "
                       "as HOST:PORT, and every host here is a socket; the migrations' "
                       "security goes in --migrate-opt (x-tls-psk=FILE, x-tls-cert=FILE, "
                       "..., x-insecure=true), or comes from the source vmshiftd's own");
    if (!o->remote)
        return 0;
    return vs_security_finish_for(&o->security, true, "the connections to the hosts");
}

static int finish(struct evacuate_options *o, struct field_tokens *fields)
{
    if (!o->from)
        return vs_fail(EINVAL, "--from HOST is required: the control socket of the vmshiftd "
                               "to drain");
    if (!o->to_list)
        return vs_fail(EINVAL, "--to HOST[,HOST...] is required: the control socket(s) of the "
                               "destination vmshiftd(s)");
    int rc = split_list("to", o->to_list, o->to, EVAC_MAX_DESTS, &o->nto);
    if (!rc && o->vm_list)
        rc = split_list("vms", o->vm_list, o->vms, EVAC_MAX_VMS, &o->nvms);
    if (rc)
        return rc;
    for (unsigned i = 0; i < o->nto; i++)
        if (strcmp(o->to[i], o->from) == 0)
            return vs_fail(EINVAL, "--to names the source host %s; a host cannot be drained "
                                   "into itself", o->from);
    if ((rc = finish_remote(o)))
        return rc;
    if (!o->max_parallel)
        o->max_parallel = o->parallel && !o->parallel_auto ? o->parallel
                                                           : EVAC_DEFAULT_MAX_PARALLEL;
    struct json_object *extra;
    if ((rc = ctl_json_parse_args(fields->n, fields->tok, &extra)))
        return rc;
    json_object_object_foreach(extra, key, val) {
        const struct mp_def *d = mp_find(key) ? mp_find(key) : mp_find_cli(key);
        const char *name = d ? d->name : key;
        if (json_object_object_get_ex(o->migrate, name, NULL)) {
            rc = vs_fail(EINVAL, "--migrate-opt %s repeats a migration parameter already "
                         "given (%s)", key, name);
            break;
        }
        json_object_object_add(o->migrate, name, json_object_get(val));
    }
    json_object_put(extra);
    return rc;
}

int evacuate_options_parse(int argc, char **argv, struct evacuate_options *o)
{
    memset(o, 0, sizeof(*o));
    o->parallel_auto = true;
    o->migrate = json_object_new_object();
    struct option long_options[NR_OWN_OPTIONS + 32];
    memcpy(long_options, own_options, sizeof(own_options));
    size_t n = mp_getopt_options(long_options + NR_OWN_OPTIONS, 31, OPT_PARAM, false);
    size_t kept = 0;   /* the migrations' security options are --migrate-opt's */
    for (size_t i = 0; i < n; i++)
        if (!mp_is_security(&mp_defs[long_options[NR_OWN_OPTIONS + i].val - OPT_PARAM]))
            long_options[NR_OWN_OPTIONS + kept++] = long_options[NR_OWN_OPTIONS + i];
    memset(&long_options[NR_OWN_OPTIONS + kept], 0, sizeof(long_options[0]));
    o->poll_s = 0.1;
    struct field_tokens fields = { .n = 0 };
    optind = 1;
    opterr = 0;
    int c, idx = 0, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, ":", long_options, &idx)) != -1) {
        if (c == OPT_HELP) {
            o->help = true;
            free_tokens(&fields);
            return 0;
        }
        if (c == '?' || c == ':')
            rc = vs_option_error(c, argv, optind, "vmshift evacuate --help");
        else
            rc = parse_option(c, long_options[idx].name, optarg, o, &fields);
    }
    if (!rc && optind < argc)
        rc = vs_fail(EINVAL, "unexpected argument '%s'; see vmshift evacuate --help",
                     argv[optind]);
    if (!rc)
        rc = finish(o, &fields);
    free_tokens(&fields);
    if (rc)
        evacuate_options_free(o);
    return rc;
}

void evacuate_options_free(struct evacuate_options *o)
{
    free(o->to_list);
    free(o->vm_list);
    json_object_put(o->migrate);
    o->to_list = o->vm_list = NULL;
    o->migrate = NULL;
}
