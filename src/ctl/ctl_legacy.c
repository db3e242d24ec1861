/* The old control protocol's commands, mapped onto the QMP commands (see ctl_legacy.h). */
#include "ctl/ctl_legacy.h"
#include "common/clock.h"
#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/migration_params.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* Execute; a failed command ends the mapping with its reply in *out (old shape). */
static int call(struct ctl_qmp *q, const char *name, struct json_object *args,
                struct json_object **ret, struct json_object **out)
{
    struct json_object *r;
    *ret = NULL;
    int rc = ctl_qmp_execute(q, name, args, &r);
    if (rc)
        return rc;
    struct json_object *v;
    if (json_object_object_get_ex(r, "return", &v)) {
        *ret = json_object_get(v);
        json_object_put(r);
        return 0;
    }
    *out = ctl_qmp_to_legacy(r);
    json_object_put(r);
    return 1;
}

static struct json_object *ok_reply(struct json_object *fields)
{
    struct json_object *r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(1));
    if (fields && json_object_is_type(fields, json_type_object)) {
        json_object_object_foreach(fields, key, val) {
            json_object_object_add(r, key, json_object_get(val));
        }
    }
    return r;
}

static struct json_object *fail_reply(const char *msg)
{
    struct json_object *r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object_object_add(r, "error", json_object_new_string(msg));
    json_object_object_add(r, "class", json_object_new_string("GenericError"));
    return r;
}

/* pause/resume: the QMP command, then the reply of vmshift-status. */
static int run_then_status(struct ctl_qmp *q, const char *name, struct json_object **out)
{
    struct json_object *ret;
    int rc = call(q, name, NULL, &ret, out);
    json_object_put(ret);
    if (rc)
        return rc > 0 ? 0 : rc;
    if ((rc = call(q, "vmshift-status", NULL, &ret, out)))
        return rc > 0 ? 0 : rc;
    *out = ok_reply(ret);
    json_object_put(ret);
    return 0;
}

static int migrate_status(struct ctl_qmp *q, struct json_object **out)
{
    struct json_object *ret, *m, *in;
    int rc = call(q, "vmshift-status", NULL, &ret, out);
    if (rc)
        return rc > 0 ? 0 : rc;
    bool has_m = json_object_object_get_ex(ret, "migration", &m);
    bool has_in = json_object_object_get_ex(ret, "incoming", &in);
    if (!has_m && !has_in) {
        *out = fail_reply("no migration has been started on this VM");
    } else {
        *out = ok_reply(NULL);
        if (has_m)
            json_object_object_add(*out, "migration", json_object_get(m));
        if (has_in)
            json_object_object_add(*out, "incoming", json_object_get(in));
    }
    json_object_put(ret);
    return 0;
}

/* Every parameter at its default, overlaid with the request's fields (old or QMP names):
 * the old migrate started from the defaults each time. */
static int migrate_sets(struct json_object *args, struct json_object *params,
                        struct json_object *caps, char *err, size_t len)
{
    struct json_object *defaults = mp_defaults();
    json_object_object_foreach(defaults, dk, dv) {
        const struct mp_def *d = mp_find(dk);
        if (d->kind == MP_PARAMETER) {
            json_object_object_add(params, dk, json_object_get(dv));
        } else { /* the given state, if any, comes later in the list and wins */
            struct json_object *c = json_object_new_object();
            json_object_object_add(c, "capability", json_object_new_string(dk));
            json_object_object_add(c, "state", json_object_get(dv));
            json_object_array_add(caps, c);
        }
    }
    json_object_put(defaults);
    json_object_object_foreach(args, key, val) {
        if (strcmp(key, "to") == 0)
            continue;
        const struct mp_def *d = mp_find(key);
        if (!d)
            d = mp_find_cli(key);
        if (!d) {
            snprintf(err, len, "migrate: unknown field '%s'; see docs/control-protocol.md", key);
            return -EINVAL;
        }
        if (d->kind == MP_PARAMETER) {
            json_object_object_add(params, d->name, json_object_get(val));
        } else {
            struct json_object *c = json_object_new_object();
            json_object_object_add(c, "capability", json_object_new_string(d->name));
            json_object_object_add(c, "state", json_object_get(val));
            json_object_array_add(caps, c);
        }
    }
    return 0;
}

/* migrate to=HOST:PORT and the old fields: migrate-set-parameters,
 * migrate-set-capabilities, migrate. */
static int legacy_migrate(struct ctl_qmp *q, struct json_object *args, struct json_object **out)
{
    struct json_object *to, *ret;
    json_object_object_get_ex(args, "to", &to);
    if (!json_object_is_type(to, json_type_string)) {
        *out = fail_reply("migrate needs to=HOST:PORT (where `vmshift receive` listens)");
        return 0;
    }
    struct json_object *params = json_object_new_object(), *caps = json_object_new_array();
    struct json_object *cargs = json_object_new_object(), *margs = json_object_new_object();
    char err[200], uri[160];
    int rc = migrate_sets(args, params, caps, err, sizeof(err));
    json_object_object_add(cargs, "capabilities", caps);
    snprintf(uri, sizeof(uri), "tcp:%s", json_object_get_string(to));
    json_object_object_add(margs, "uri", json_object_new_string(uri));
    if (rc)
        *out = fail_reply(err), rc = 0;
    else if ((rc = call(q, "migrate-set-parameters", params, &ret, out)) == 0 &&
             (json_object_put(ret), rc = call(q, "migrate-set-capabilities", cargs, &ret, out)) == 0 &&
             (json_object_put(ret), rc = call(q, "migrate", margs, &ret, out)) == 0) {
        json_object_put(ret);
        *out = ok_reply(NULL);
        json_object_object_add(*out, "to", json_object_get(to));
    }
    json_object_put(params);
    json_object_put(cargs);
    json_object_put(margs);
    return rc > 0 ? 0 : rc;
}

/* resume-migration [to=HOST:PORT]: the destination says where it waits (migrate-recover);
 * the source reconnects (migrate resume=true, by default to the address last used). */
static int legacy_resume(struct ctl_qmp *q, struct json_object *args, struct json_object **out)
{
    struct json_object *a = json_object_new_object(), *ret, *to = NULL, *peer;
    json_object_object_add(a, "uri", json_object_new_string("tcp:0:0"));
    int rc = call(q, "migrate-recover", a, &ret, out);
    json_object_put(a);
    if (rc == 0) {
        *out = ok_reply(ret);
        json_object_put(ret);
        return 0;
    }
    if (rc < 0)
        return rc;
    json_object_put(*out);
    *out = NULL;
    char uri[160];
    if (args && json_object_object_get_ex(args, "to", &to)) {
        snprintf(uri, sizeof(uri), "tcp:%s", json_object_get_string(to));
    } else {
        if ((rc = call(q, "query-migrate", NULL, &ret, out)))
            return rc > 0 ? 0 : rc;
        snprintf(uri, sizeof(uri), "tcp:%s", json_object_object_get_ex(ret, "peer", &peer)
                                                  ? json_object_get_string(peer) : "");
        json_object_put(ret);
    }
    a = json_object_new_object();
    json_object_object_add(a, "uri", json_object_new_string(uri));
    json_object_object_add(a, "resume", json_object_new_boolean(1));
    rc = call(q, "migrate", a, &ret, out);
    json_object_put(a);
    if (rc == 0) {
        json_object_put(ret);
        *out = ok_reply(NULL);
    }
    return rc > 0 ? 0 : rc;
}

/* dirty-rate [period_ms=MS]: calc-dirty-rate in milliseconds, then query-dirty-rate. */
static int legacy_dirty_rate(struct ctl_qmp *q, struct json_object *args,
                             struct json_object **out)
{
    struct json_object *a = json_object_new_object(), *ret, *period;
    json_object_object_add(a, "calc-time", args && json_object_object_get_ex(args, "period_ms",
                                                                             &period)
                                               ? json_object_get(period)
                                               : json_object_new_int(1000));
    json_object_object_add(a, "calc-time-unit", json_object_new_string("millisecond"));
    int rc = call(q, "calc-dirty-rate", a, &ret, out);
    json_object_put(a);
    if (rc)
        return rc > 0 ? 0 : rc;
    json_object_put(ret);
    /* The old command answered once the period was over: wait for "measured". */
    for (;;) {
        struct json_object *st;
        if ((rc = call(q, "query-dirty-rate", NULL, &ret, out)))
            return rc > 0 ? 0 : rc;
        if (!json_object_object_get_ex(ret, "status", &st) ||
            strcmp(json_object_get_string(st), "measuring") != 0)
            break;
        json_object_put(ret);
        vs_sleep_ns(20 * 1000000ull);
    }
    *out = ok_reply(ret);
    /* The old reply's vcpu-dirty-rate was the list of pages/s. */
    struct json_object *pages;
    if (json_object_object_get_ex(ret, "vcpu-dirty-pages-rate", &pages))
        json_object_object_add(*out, "vcpu-dirty-rate", json_object_get(pages));
    json_object_put(ret);
    return 0;
}

/* The old names whose QMP command takes the same fields. */
static const struct { const char *old, *qmp; } renamed[] = {
    { "status", "vmshift-status" },       { "quit", "quit" },
    { "set-rate", "vmshift-set-rate" },   { "digest", "vmshift-digest" },
    { "debug-poke", "vmshift-debug-poke" }, { "cancel", "migrate_cancel" },
    { "start-postcopy", "migrate-start-postcopy" },
    { "console-input", "vmshift-console-input" }, { "reclaim", "vmshift-reclaim" },
};

int ctl_legacy_run(struct ctl_qmp *q, const char *cmd, struct json_object *args,
                   struct json_object **out)
{
    *out = NULL;
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)
        return run_then_status(q, cmd[0] == 'p' ? "stop" : "cont", out);
    if (strcmp(cmd, "migrate-status") == 0)
        return migrate_status(q, out);
    if (strcmp(cmd, "migrate") == 0 && args && json_object_object_get_ex(args, "to", NULL))
        return legacy_migrate(q, args, out);
    if (strcmp(cmd, "resume-migration") == 0)
        return legacy_resume(q, args, out);
    if (strcmp(cmd, "dirty-rate") == 0)
        return legacy_dirty_rate(q, args, out);
    const char *name = cmd;
    for (size_t i = 0; i < sizeof(renamed) / sizeof(renamed[0]); i++)
        if (strcmp(cmd, renamed[i].old) == 0)
            name = renamed[i].qmp;
    struct json_object *r;
    int rc = ctl_qmp_execute(q, name, args, &r);
    if (rc)
        return rc;
    *out = ctl_qmp_to_legacy(r);
    json_object_put(r);
    return *out ? 0 : vs_fail(ENOMEM, "out of memory");
}
