#include "transport/security.h"
#include "common/error.h"

#include <stdio.h>
#include <string.h>

enum opt_id { OPT_PSK, OPT_CERT, OPT_KEY, OPT_CA, OPT_NAME, OPT_INSECURE, OPT_KTLS };

static const struct {
    const char *name;
    enum opt_id id;
} options[] = {
    { "tls-psk", OPT_PSK }, { "tls-cert", OPT_CERT }, { "tls-key", OPT_KEY },
    { "tls-ca", OPT_CA }, { "tls-name", OPT_NAME }, { "insecure", OPT_INSECURE },
    { "ktls", OPT_KTLS },
};

/* "tls_psk" and "tls-psk" are the same option. */
static bool same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '_' || *a == '-') && (*b == '_' || *b == '-')))
            return false;
    return *a == *b;
}

static int set_path(char *dst, size_t cap, const char *name, const char *value)
{
    if (!value || !*value)
        return vs_fail(EINVAL, "%s needs a file name", name);
    if (strlen(value) >= cap)
        return vs_fail(ENAMETOOLONG, "%s '%.60s...' is too long (at most %zu characters)",
                       name, value, cap - 1);
    snprintf(dst, cap, "%s", value);
    return 0;
}

int vs_security_set(struct vs_security_opts *o, const char *name, const char *value)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (!same_name(name, options[i].name))
            continue;
        switch (options[i].id) {
        case OPT_PSK: return set_path(o->psk, sizeof(o->psk), name, value);
        case OPT_CERT: return set_path(o->cert, sizeof(o->cert), name, value);
        case OPT_KEY: return set_path(o->key, sizeof(o->key), name, value);
        case OPT_CA: return set_path(o->ca, sizeof(o->ca), name, value);
        case OPT_NAME:
            if (!value || !*value || strlen(value) >= sizeof(o->name))
                return vs_fail(EINVAL, "%s needs a name of 1..%zu characters", name,
                               sizeof(o->name) - 1);
            snprintf(o->name, sizeof(o->name), "%s", value);
            return 0;
        case OPT_INSECURE: o->insecure = true; return 0;
        case OPT_KTLS: o->ktls = true; return 0;
        }
    }
    return -ENOENT;
}

int vs_security_finish(struct vs_security_opts *o, bool cli)
{
    return vs_security_finish_for(o, cli, "the migration");
}

int vs_security_finish_for(struct vs_security_opts *o, bool cli, const char *what)
{
    /* Not on the command line: the migration parameters (migrate-set-parameters). */
    const char *psk = cli ? "--tls-psk FILE" : "x-tls-psk FILE";
    const char *certs = cli ? "--tls-cert FILE --tls-key FILE --tls-ca FILE"
                            : "x-tls-cert FILE, x-tls-key FILE, x-tls-ca FILE";
    const char *insecure = cli ? "--insecure" : "x-insecure true";
    bool any_cert = o->cert[0] || o->key[0] || o->ca[0];
    int chosen = (int)o->insecure + (o->psk[0] != 0) + any_cert;
    if (chosen == 0)
        return vs_fail(EINVAL, "choose how %s is secured: %s (a key shared by both hosts, "
                       "e.g. `openssl rand -hex 32 > FILE`), or %s (certificates from one "
                       "CA; scripts/make-test-certs.sh DIR makes a test set), or %s (plain "
                       "TCP, only on a network you trust)", what, psk, certs, insecure);
    if (chosen > 1)
        return vs_fail(EINVAL, "choose one way to secure %s: %s, %s, or %s, not several",
                       what, psk, certs, insecure);
    if (any_cert && !(o->cert[0] && o->key[0] && o->ca[0]))
        return vs_fail(EINVAL, "certificates need all three of %s (missing: %s%s%s)", certs,
                       o->cert[0] ? "" : cli ? "--tls-cert " : "x-tls-cert ",
                       o->key[0] ? "" : cli ? "--tls-key " : "x-tls-key ",
                       o->ca[0] ? "" : cli ? "--tls-ca" : "x-tls-ca");
    if (o->name[0] && !any_cert)
        return vs_fail(EINVAL, "%s checks the peer's certificate: it needs %s",
                       cli ? "--tls-name" : "tls-hostname", certs);
    if (o->ktls && o->insecure)
        return vs_fail(EINVAL, "%s is for TLS; it means nothing with %s",
                       cli ? "--ktls" : "x-ktls", insecure);
    o->mode = o->insecure ? VS_SEC_INSECURE : o->psk[0] ? VS_SEC_PSK : VS_SEC_CERT;
    return 0;
}

const char *vs_security_mode_name(enum vs_security_mode m)
{
    switch (m) {
    case VS_SEC_INSECURE: return "insecure";
    case VS_SEC_PSK: return "tls-psk";
    case VS_SEC_CERT: return "tls-cert";
    default: return "unset";
    }
}

const char *vs_security_flags(enum vs_security_mode m)
{
    switch (m) {
    case VS_SEC_INSECURE: return "--insecure";
    case VS_SEC_PSK: return "--tls-psk";
    case VS_SEC_CERT: return "--tls-cert/--tls-key/--tls-ca";
    default: return "no security option";
    }
}
