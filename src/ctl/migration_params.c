/* The migration parameters, defined once (see migration_params.h). */
#include "ctl/migration_params.h"
#include "codec/codec.h"
#include "common/error.h"
#include "common/size.h"
#include "migrate/convergence/converge_model.h"
#include "migrate/precopy/source.h"
#include "wire/format.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t u64_of(struct json_object *v)
{
    return (uint64_t)json_object_get_uint64(v);
}

static int ap_downtime_limit(struct vs_migration_opts *o, struct json_object *v)
{
    o->downtime_limit_ms = u64_of(v);
    return 0;
}

static int ap_schedule(struct vs_migration_opts *o, struct json_object *v)
{
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n && i < VS_DOWNTIME_MAX_STEPS; i++)
        o->downtime_schedule_ms[i] = u64_of(json_object_array_get_idx(v, i));
    o->nr_downtime_steps = (uint32_t)n;
    return 0;
}

static int ap_max_downtime(struct vs_migration_opts *o, struct json_object *v)
{
    o->max_downtime_ms = u64_of(v);
    return 0;
}

static int ap_converge(struct vs_migration_opts *o, struct json_object *v)
{
    static const char *const names[] = { "none", "throttle", "postcopy", "auto" };
    for (int i = 0; i < 4; i++)
        if (strcmp(json_object_get_string(v), names[i]) == 0)
            o->converge = (enum vs_converge)i;
    return 0;
}

static int ap_max_passes(struct vs_migration_opts *o, struct json_object *v)
{
    o->max_passes = (uint32_t)u64_of(v);
    return 0;
}

static int ap_max_bandwidth(struct vs_migration_opts *o, struct json_object *v)
{
    o->max_bandwidth = u64_of(v);
    return 0;
}

static int ap_timeout(struct vs_migration_opts *o, struct json_object *v)
{
    o->timeout_ms = (int)u64_of(v);
    return 0;
}

static int ap_streams(struct vs_migration_opts *o, struct json_object *v)
{
    o->streams = (uint32_t)u64_of(v);
    return 0;
}

static int ap_compress(struct vs_migration_opts *o, struct json_object *v)
{
    enum vs_codec codec = VS_CODEC_NONE;
    const char *name = json_object_get_string(v);
    if (strcmp(name, "auto") == 0)
        o->compress = VS_COMPRESS_AUTO;
    else if (vs_codec_parse(name, &codec) == 0)
        o->compress = (int)codec;
    else
        return vs_fail(EINVAL, "multifd-compression '%s' is unknown; use none, lz4, zstd or "
                       "auto", name);
    return 0;
}

static int ap_with_disks(struct vs_migration_opts *o, struct json_object *v)
{
    o->with_disks = json_object_get_boolean(v);
    return 0;
}

static int ap_disk_verify(struct vs_migration_opts *o, struct json_object *v)
{
    const char *name = json_object_get_string(v);
    if (strcmp(name, "after") && strcmp(name, "blackout"))
        return vs_fail(EINVAL, "x-disk-verify '%s' is unknown; use after or blackout", name);
    o->disk_reread = !strcmp(name, "blackout");
    return 0;
}

static int ap_zerocopy(struct vs_migration_opts *o, struct json_object *v)
{
    o->zerocopy = json_object_get_boolean(v);
    return 0;
}

/* Security: the value goes to vs_security_set under the option's CLI name. */
static int ap_security(struct vs_migration_opts *o, const char *cli, struct json_object *v)
{
    if (json_object_is_type(v, json_type_boolean))
        return json_object_get_boolean(v) ? vs_security_set(&o->security, cli, NULL) : 0;
    const char *s = json_object_get_string(v);
    return *s ? vs_security_set(&o->security, cli, s) : 0;
}

#define SECURITY_APPLY(fn, cli)                                                \
    static int fn(struct vs_migration_opts *o, struct json_object *v)         \
    {                                                                          \
        return ap_security(o, cli, v);                                         \
    }
SECURITY_APPLY(ap_tls_psk, "tls-psk")
SECURITY_APPLY(ap_tls_cert, "tls-cert")
SECURITY_APPLY(ap_tls_key, "tls-key")
SECURITY_APPLY(ap_tls_ca, "tls-ca")
SECURITY_APPLY(ap_tls_name, "tls-name")
SECURITY_APPLY(ap_insecure, "insecure")
SECURITY_APPLY(ap_ktls, "ktls")

#define PATH_LEN (VS_SEC_PATH_MAX - 1)

const struct mp_def mp_defs[] = {
    { "downtime-limit", "downtime-limit", MP_UINT, MP_PARAMETER, "ms", "300", 0, 2000000, NULL,
      true, "switch over when the rest can be sent within this (as QEMU)", ap_downtime_limit },
    { "x-downtime-schedule", "downtime-schedule", MP_MS_LIST, MP_PARAMETER, "ms", "", 0, 0,
      NULL, true, "raise the limit to these, one step each time the passes stop shrinking "
      "(increasing, above downtime-limit; at most 8)", ap_schedule },
    { "x-max-downtime", "max-downtime", MP_UINT, MP_PARAMETER, "ms", "0", 0, 3600000, NULL,
      true, "never switch over when more is expected (0: no hard limit)", ap_max_downtime },
    { "x-converge", "converge", MP_ENUM, MP_PARAMETER, "", "none", 0, 0,
      "none,throttle,postcopy,auto", false, "when pre-copy stops converging: give up after "
      "max-passes, slow the vCPUs that dirty memory, switch to post-copy, or throttle and "
      "switch to post-copy once the throttle would take more than 80% of the dirtying",
      ap_converge },
    { "x-max-passes", "max-passes", MP_UINT, MP_PARAMETER, "passes", "30", 0, 1000, NULL, true,
      "give up as not converging after this many pre-copy passes (0: until it converges "
      "or is cancelled)", ap_max_passes },
    { "max-bandwidth", "max-bandwidth", MP_SIZE, MP_PARAMETER, "bytes/s", "0", 0, UINT64_MAX,
      NULL, false, "cap pre-copy, all streams together (0: unlimited; QEMU's default is a "
      "cap)", ap_max_bandwidth },
    { "x-peer-timeout", "timeout-ms", MP_UINT, MP_PARAMETER, "ms", "60000", 1, 3600000, NULL,
      false, "connecting, and any wait for the destination", ap_timeout },
    { "multifd-channels", "streams", MP_UINT, MP_PARAMETER, "connections", "0", 0,
      VS_WIRE_MAX_STREAMS, NULL, false, "TCP connections in parallel (0: one per online CPU, "
      "at most 16 and one per 5 Gbit/s of a link of known speed); always in use, no multifd "
      "capability needed", ap_streams },
    { "multifd-compression", "compress", MP_ENUM, MP_PARAMETER, "", "none", 0, 0,
      "none,lz4,zstd,auto", false, "compress page batches; auto: zstd where the link, not "
      "the CPU, is the bottleneck, decided per batch", ap_compress },
    { "zero-copy-send", "zerocopy", MP_BOOL, MP_CAPABILITY, "", "false", 0, 0, NULL, false,
      "send page data with MSG_ZEROCOPY (a capability, as in QEMU)", ap_zerocopy },
    { "x-with-disks", "with-disks", MP_BOOL, MP_PARAMETER, "", "false", 0, 0, NULL, false,
      "copy the VM's disks that are not `shared` with its RAM (the destination receives "
      "into its own --disk files); QMP migrate's blk=true means the same", ap_with_disks },
    { "x-disk-verify", "disk-verify", MP_ENUM, MP_PARAMETER, "", "after", 0, 0,
      "after,blackout", false, "the copied disks' end-to-end digest: after: from the hashes "
      "of the blocks as they were sent (nothing to read in the blackout), and the source "
      "re-reads its final disk after the commit to audit them; blackout: the source re-reads "
      "its final disk inside the blackout, so a write the tracking missed fails the "
      "migration before the commit (the read is downtime)", ap_disk_verify },
    { "x-tls-psk", "tls-psk", MP_PATH, MP_PARAMETER, "file", "", 0, PATH_LEN, NULL, false,
      "TLS 1.3 with the pre-shared key in this file", ap_tls_psk },
    { "x-tls-cert", "tls-cert", MP_PATH, MP_PARAMETER, "file", "", 0, PATH_LEN, NULL, false,
      "TLS 1.3 with certificates: this host's certificate (with its key and the CA)",
      ap_tls_cert },
    { "x-tls-key", "tls-key", MP_PATH, MP_PARAMETER, "file", "", 0, PATH_LEN, NULL, false,
      "its private key", ap_tls_key },
    { "x-tls-ca", "tls-ca", MP_PATH, MP_PARAMETER, "file", "", 0, PATH_LEN, NULL, false,
      "the CA the destination's certificate must be signed by", ap_tls_ca },
    { "tls-hostname", "tls-name", MP_STRING, MP_PARAMETER, "", "", 0, 127, NULL, false,
      "the name the destination's certificate must carry (as QEMU)", ap_tls_name },
    { "x-insecure", "insecure", MP_BOOL, MP_PARAMETER, "", "false", 0, 0, NULL, false,
      "plain TCP: the VM's memory crosses the network readable", ap_insecure },
    { "x-ktls", "ktls", MP_BOOL, MP_PARAMETER, "", "false", 0, 0, NULL, false,
      "let the kernel encrypt (kernel TLS) where it can", ap_ktls },
};

const size_t mp_count = sizeof(mp_defs) / sizeof(mp_defs[0]);

const struct mp_def *mp_find(const char *name)
{
    for (size_t i = 0; i < mp_count; i++)
        if (strcmp(mp_defs[i].name, name) == 0)
            return &mp_defs[i];
    return NULL;
}

const struct mp_def *mp_find_cli(const char *cli)
{
    char key[64];
    snprintf(key, sizeof(key), "%s", cli);
    for (char *p = key; *p; p++)
        *p = *p == '_' ? '-' : *p;
    for (size_t i = 0; i < mp_count; i++)
        if (strcmp(mp_defs[i].cli, key) == 0)
            return &mp_defs[i];
    return NULL;
}

static bool enum_has(const char *values, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = values; p && *p;) {
        const char *bar = strchr(p, ',');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static int check_number(const struct mp_def *d, struct json_object *value, uint64_t *out)
{
    if (json_object_is_type(value, json_type_string) &&
        (d->type == MP_SIZE ? vs_parse_size : vs_parse_u64)(json_object_get_string(value), out) == 0)
        ;
    else if (json_object_is_type(value, json_type_int) && json_object_get_int64(value) >= 0)
        *out = (uint64_t)json_object_get_uint64(value);
    else
        return vs_fail(EINVAL, "'%s' must be a whole number of %s, not %s", d->name,
                       d->unit, json_object_to_json_string(value));
    if (*out < d->min || *out > d->max)
        return vs_fail(ERANGE, "'%s' %llu is out of range; give %llu to %llu %s", d->name,
                       (unsigned long long)*out, (unsigned long long)d->min,
                       (unsigned long long)d->max, d->unit);
    return 0;
}

static int check_schedule(const struct mp_def *d, struct json_object *value,
                          struct json_object **out)
{
    double steps[VS_CONV_MAX_STEPS];
    unsigned n = 0;
    if (json_object_is_type(value, json_type_string)) {
        if (*json_object_get_string(value) && vs_conv_parse_schedule(json_object_get_string(value), steps, &n))
            return vs_fail_context(-EINVAL, "'%s'", d->name);
    } else if (json_object_is_type(value, json_type_array)) {
        size_t len = json_object_array_length(value);
        if (len > VS_CONV_MAX_STEPS)
            return vs_fail(EINVAL, "'%s' has %zu steps; give at most %d", d->name, len,
                           VS_CONV_MAX_STEPS);
        for (size_t i = 0; i < len; i++) {
            struct json_object *e = json_object_array_get_idx(value, i);
            if (!json_object_is_type(e, json_type_int) || json_object_get_int64(e) <= 0)
                return vs_fail(EINVAL, "'%s' entry %zu is not a number of milliseconds above "
                               "0", d->name, i + 1);
            steps[n++] = (double)json_object_get_int64(e);
        }
    } else {
        return vs_fail(EINVAL, "'%s' must be milliseconds like [500, 1000, 2000] or "
                       "\"500,1000,2000\"", d->name);
    }
    for (unsigned i = 1; i < n; i++)
        if (steps[i] <= steps[i - 1])
            return vs_fail(EINVAL, "'%s' must increase: %.0f after %.0f", d->name, steps[i],
                           steps[i - 1]);
    *out = json_object_new_array();
    for (unsigned i = 0; i < n; i++)
        json_object_array_add(*out, json_object_new_uint64((uint64_t)steps[i]));
    return 0;
}

/* The checked, normalised value of `value` for d (new reference in *out). */
static int normalise(const struct mp_def *d, struct json_object *value, struct json_object **out)
{
    uint64_t n;
    int rc;
    switch (d->type) {
    case MP_UINT:
    case MP_SIZE:
        if ((rc = check_number(d, value, &n)))
            return rc;
        *out = json_object_new_uint64(n);
        return 0;
    case MP_BOOL:
        if (!json_object_is_type(value, json_type_boolean))
            return vs_fail(EINVAL, "'%s' must be true or false", d->name);
        *out = json_object_new_boolean(json_object_get_boolean(value));
        return 0;
    case MP_ENUM:
        if (!json_object_is_type(value, json_type_string) ||
            !enum_has(d->values, json_object_get_string(value)))
            return vs_fail(EINVAL, "'%s' %s is unknown; use one of %s", d->name,
                           json_object_to_json_string(value), d->values);
        *out = json_object_new_string(json_object_get_string(value));
        return 0;
    case MP_STRING:
    case MP_PATH:
        if (!json_object_is_type(value, json_type_string))
            return vs_fail(EINVAL, "'%s' must be a string", d->name);
        if (strlen(json_object_get_string(value)) > d->max)
            return vs_fail(ENAMETOOLONG, "'%s' is longer than %llu bytes", d->name,
                           (unsigned long long)d->max);
        *out = json_object_new_string(json_object_get_string(value));
        return 0;
    case MP_MS_LIST:
        return check_schedule(d, value, out);
    }
    return vs_fail(EINVAL, "'%s': unknown type", d->name);
}

int mp_set(struct json_object *set, const struct mp_def *d, struct json_object *value)
{
    struct json_object *v = NULL;
    int rc = normalise(d, value, &v);
    if (rc)
        return rc;
    json_object_object_add(set, d->name, v);
    return 0;
}

struct json_object *mp_defaults(void)
{
    struct json_object *set = json_object_new_object();
    for (size_t i = 0; i < mp_count; i++) {
        const struct mp_def *d = &mp_defs[i];
        struct json_object *text = json_object_new_string(d->def), *v = NULL;
        if (d->type == MP_BOOL)
            v = json_object_new_boolean(strcmp(d->def, "true") == 0);
        else if (d->type == MP_UINT || d->type == MP_SIZE)
            v = json_object_new_uint64(strtoull(d->def, NULL, 10));
        else if (d->type == MP_MS_LIST)
            v = json_object_new_array();
        else
            v = json_object_get(text);
        json_object_put(text);
        json_object_object_add(set, d->name, v);
    }
    return set;
}

int mp_parse_text(const struct mp_def *d, const char *text, struct json_object **out)
{
    struct json_object *raw;
    char path[PATH_MAX];
    uint64_t n;
    if (d->type == MP_UINT || d->type == MP_SIZE) {
        if ((d->type == MP_SIZE ? vs_parse_size : vs_parse_u64)(text ? text : "", &n))
            return vs_fail(EINVAL, "--%s '%s' is not a whole number%s", d->cli, text ? text : "",
                           d->type == MP_SIZE ? " of bytes (suffixes K, M, G: 100M)" : "");
        raw = json_object_new_uint64(n);
    } else if (d->type == MP_BOOL) {
        raw = json_object_new_boolean(!text || strcmp(text, "false") != 0);
    } else if (d->type == MP_PATH && text && *text) {
        if (!realpath(text, path))
            return vs_fail(errno, "--%s %s: %s", d->cli, text, strerror(errno));
        raw = json_object_new_string(path);
    } else {
        raw = json_object_new_string(text ? text : "");
    }
    int rc = normalise(d, raw, out);
    json_object_put(raw);
    return rc ? vs_fail_context(rc, "--%s", d->cli) : 0;
}

int mp_apply(struct json_object *set, struct vs_migration_opts *o, bool plan_only)
{
    int rc;
    for (size_t i = 0; i < mp_count; i++) {
        struct json_object *v;
        if ((!plan_only || mp_defs[i].plan) && json_object_object_get_ex(set, mp_defs[i].name, &v) &&
            (rc = mp_defs[i].apply(o, v)))
            return rc;
    }
    return 0;
}

int mp_to_opts(struct json_object *set, struct vs_migration_opts *o)
{
    int rc = mp_apply(set, o, false);
    return rc ? rc : vs_security_finish(&o->security, false);
}

bool mp_is_security(const struct mp_def *d)
{
    static const char *const names[] = { "tls-psk", "tls-cert", "tls-key", "tls-ca",
                                         "tls-name", "insecure" };
    for (size_t i = 0; d && i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(d->cli, names[i]))
            return true;
    return false;
}

size_t mp_getopt_options(struct option *out, size_t max, int first_val, bool plan_only)
{
    size_t n = 0;
    for (size_t i = 0; i < mp_count && n < max; i++) {
        if (plan_only && !mp_defs[i].plan)
            continue;
        out[n++] = (struct option){ mp_defs[i].cli,
                                    mp_defs[i].type == MP_BOOL ? no_argument : required_argument,
                                    NULL, first_val + (int)i };
    }
    return n;
}

static const char *metavar(const struct mp_def *d)
{
    switch (d->type) {
    case MP_UINT: return strcmp(d->unit, "ms") == 0 ? "MS" : "N";
    case MP_SIZE: return "RATE";
    case MP_BOOL: return "";
    case MP_ENUM: return d->values;
    case MP_STRING: return "NAME";
    case MP_PATH: return "FILE";
    case MP_MS_LIST: return "MS,MS,...";
    }
    return "";
}

/* Append text to buf, wrapped at 90 columns with continuation lines indented to col. */
static size_t wrap(char *buf, size_t len, size_t off, const char *text, size_t col)
{
    size_t line = col;
    const char *p = text;
    while (*p && off + 1 < len) {
        size_t w = strcspn(p, " ");
        if (line + w + 1 > 90 && line > col) {
            off += (size_t)snprintf(buf + off, len - off, "\n%*s", (int)col, "");
            line = col;
        } else if (line > col) {
            off += (size_t)snprintf(buf + off, len - off, " ");
            line++;
        }
        off += (size_t)snprintf(buf + off, len - off, "%.*s", (int)w, p);
        line += w;
        p += w;
        while (*p == ' ')
            p++;
    }
    if (off + 1 < len)
        off += (size_t)snprintf(buf + off, len - off, "\n");
    return off < len ? off : len - 1;
}

static bool not_planned(const struct mp_def *d)
{
    return !d->plan;
}

void mp_usage(char *buf, size_t len, bool plan_only)
{
    mp_usage_except(buf, len, plan_only ? not_planned : NULL);
}

void mp_usage_except(char *buf, size_t len, bool (*skip)(const struct mp_def *d))
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < mp_count && off + 1 < len; i++) {
        const struct mp_def *d = &mp_defs[i];
        if (skip && skip(d))
            continue;
        char opt[64], text[600];
        snprintf(opt, sizeof(opt), "--%s %s", d->cli, metavar(d));
        bool show_default = *d->def && d->type != MP_BOOL;
        snprintf(text, sizeof(text), "%s%s%s%s", d->help, show_default ? " (default " : "",
                 show_default ? d->def : "", show_default ? ")" : "");
        off += (size_t)snprintf(buf + off, len - off, "  %-26s", opt);
        if (strlen(opt) > 26 && off + 1 < len)
            off += (size_t)snprintf(buf + off, len - off, "\n%29s", "");
        else if (off + 1 < len)
            off += (size_t)snprintf(buf + off, len - off, " ");
        if (off >= len)
            break;
        off = wrap(buf, len, off, text, 29);
    }
}

char *mp_docs_table(void)
{
    size_t cap = 16384, off = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    off += (size_t)snprintf(buf, cap, "| QMP name | kind | CLI option | type | unit | default | "
                            "range | meaning |\n|---|---|---|---|---|---|---|---|\n");
    static const char *const types[] = { "integer", "size", "bool", "enum", "string", "path",
                                         "list of ms" };
    for (size_t i = 0; i < mp_count && off < cap; i++) {
        const struct mp_def *d = &mp_defs[i];
        char range[64] = "";
        if (d->type == MP_UINT || (d->type == MP_SIZE && d->max != UINT64_MAX))
            snprintf(range, sizeof(range), "%llu..%llu", (unsigned long long)d->min,
                     (unsigned long long)d->max);
        else if (d->type == MP_ENUM)
            snprintf(range, sizeof(range), "%s", d->values);
        int n = snprintf(buf + off, cap - off, "| `%s` | %s | `--%s` | %s | %s | %s | %s | %s |\n",
                         d->name, d->kind == MP_CAPABILITY ? "capability" : "parameter", d->cli,
                         types[d->type], d->unit, *d->def ? d->def : "—", range, d->help);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}
