/* The QMP messages of the control server (see ctl_server.h): greeting, capabilities
 * negotiation, checking a request and its arguments, dispatch through the command table,
 * replies, errors and events. */
#include "common/error.h"
#include "ctl/ctl_conn.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#ifndef VMSHIFT_VERSION
#define VMSHIFT_VERSION "0.0.0"
#endif

const struct ctl_command *ctl_command_find(const struct ctl_command *table, const char *name)
{
    for (const struct ctl_command *c = table; c && c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

void ctl_qmp_greet(struct ctl_conn *c)
{
    unsigned major = 0, minor = 0, micro = 0;
    sscanf(VMSHIFT_VERSION, "%u.%u.%u", &major, &minor, &micro);
    struct json_object *ver = json_object_new_object();
    json_object_object_add(ver, "major", json_object_new_int((int)major));
    json_object_object_add(ver, "minor", json_object_new_int((int)minor));
    json_object_object_add(ver, "micro", json_object_new_int((int)micro));
    struct json_object *version = json_object_new_object();
    json_object_object_add(version, "qemu", ver);
    json_object_object_add(version, "package", json_object_new_string("vmshift " VMSHIFT_VERSION));
    struct json_object *qmp = json_object_new_object();
    json_object_object_add(qmp, "version", version);
    json_object_object_add(qmp, "capabilities", json_object_new_array());
    struct json_object *g = json_object_new_object();
    json_object_object_add(g, "QMP", qmp);
    ctl_conn_queue(c, g);
    json_object_put(g);
}

/* Copy a possibly truncated message without leaving half a UTF-8 sequence at its end,
 * so that the reply stays valid JSON text. */
static void utf8_copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src);
    size_t n = strlen(dst);
    size_t i = n;
    while (i > 0 && ((unsigned char)dst[i - 1] & 0xC0) == 0x80)
        i--; /* continuation bytes */
    if (i > 0 && ((unsigned char)dst[i - 1] & 0x80)) {
        unsigned char lead = (unsigned char)dst[i - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - (i - 1) < need)
            dst[i - 1] = '\0';
    }
}

static void add_id(struct json_object *r, struct json_object *id)
{
    if (id)
        json_object_object_add(r, "id", json_object_get(id));
}

void ctl_qmp_error(struct ctl_conn *c, const char *cls, const char *desc, struct json_object *id)
{
    struct json_object *e = json_object_new_object(), *r = json_object_new_object();
    if (!e || !r) {
        json_object_put(e);
        json_object_put(r);
        c->dead = true;
        return;
    }
    json_object_object_add(e, "class", json_object_new_string(cls));
    json_object_object_add(e, "desc", json_object_new_string(desc));
    json_object_object_add(r, "error", e);
    add_id(r, id);
    ctl_conn_queue(c, r);
    json_object_put(r);
}

static void reply_return(struct ctl_conn *c, struct json_object *ret, struct json_object *id)
{
    struct json_object *r = json_object_new_object();
    if (!r) {
        json_object_put(ret);
        c->dead = true;
        return;
    }
    json_object_object_add(r, "return", ret);
    add_id(r, id);
    ctl_conn_queue(c, r);
    json_object_put(r);
}

struct json_object *ctl_qmp_event(const char *name, struct json_object *data)
{
    return ctl_qmp_event_at(name, data, NULL);
}

struct json_object *ctl_qmp_event_at(const char *name, struct json_object *data,
                                     const struct timespec *when)
{
    struct timeval tv;
    if (when && when->tv_sec) {
        tv.tv_sec = when->tv_sec;
        tv.tv_usec = when->tv_nsec / 1000;
    } else {
        gettimeofday(&tv, NULL);
    }
    struct json_object *ts = json_object_new_object(), *ev = json_object_new_object();
    if (!ts || !ev) {
        json_object_put(ts);
        json_object_put(ev);
        json_object_put(data);
        return NULL;
    }
    json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
    json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
    json_object_object_add(ev, "event", json_object_new_string(name));
    if (data)
        json_object_object_add(ev, "data", data);
    json_object_object_add(ev, "timestamp", ts);
    return ev;
}

static const char *type_expected(enum ctl_arg_type t)
{
    static const char *const names[] = { "string", "integer", "size (integer or string)",
                                         "boolean", "number", "object", "any" };
    return names[t];
}

static bool type_fits(enum ctl_arg_type t, struct json_object *v)
{
    switch (t) {
    case CTL_ARG_STR: return json_object_is_type(v, json_type_string);
    case CTL_ARG_INT: return json_object_is_type(v, json_type_int);
    case CTL_ARG_SIZE:
        return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_string);
    case CTL_ARG_BOOL: return json_object_is_type(v, json_type_boolean);
    case CTL_ARG_NUMBER:
        return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
    case CTL_ARG_OBJECT: return json_object_is_type(v, json_type_object);
    case CTL_ARG_ANY: return true;
    }
    return false;
}

/* Check args against the command's schema; 0, or -EINVAL with msg filled in. */
static int check_args(const struct ctl_command *cmd, struct json_object *args, char *msg,
                      size_t len)
{
    json_object_object_foreach(args, key, val) {
        const struct ctl_arg *a = NULL;
        for (int i = 0; i < CTL_MAX_ARGS && cmd->args[i].name; i++)
            if (strcmp(cmd->args[i].name, key) == 0)
                a = &cmd->args[i];
        if (!a && !cmd->open_args) {
            snprintf(msg, len, "Parameter '%s' is unexpected", key);
            return -EINVAL;
        }
        if (a && !type_fits(a->type, val)) {
            snprintf(msg, len, "Invalid parameter type for '%s', expected: %s", key,
                     type_expected(a->type));
            return -EINVAL;
        }
    }
    for (int i = 0; i < CTL_MAX_ARGS && cmd->args[i].name; i++) {
        if (cmd->args[i].required && !json_object_object_get_ex(args, cmd->args[i].name, NULL)) {
            snprintf(msg, len, "Parameter '%s' is missing", cmd->args[i].name);
            return -EINVAL;
        }
    }
    return 0;
}

static struct json_object *query_commands(const struct ctl_command *table)
{
    struct json_object *list = json_object_new_array();
    static const char *const builtin[] = { "qmp_capabilities", "query-commands" };
    for (size_t i = 0; i < 2; i++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(builtin[i]));
        json_object_array_add(list, o);
    }
    for (const struct ctl_command *c = table; c->name; c++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(c->name));
        json_object_array_add(list, o);
    }
    return list;
}

static void run_command(const struct ctl_command *cmd, void *ctx, struct ctl_conn *c,
                        struct json_object *args, struct json_object *id)
{
    char msg[600];
    if (check_args(cmd, args, msg, sizeof(msg))) {
        ctl_qmp_error(c, "GenericError", msg, id);
        return;
    }
    struct json_object *ret = json_object_new_object();
    if (!ret) {
        ctl_qmp_error(c, "GenericError", "out of memory handling the request", id);
        return;
    }
    vs_clear_error();
    int rc = cmd->fn(ctx, args, &ret);
    if (rc < 0) {
        if (vs_last_error()[0])
            utf8_copy(msg, sizeof(msg), vs_last_error());
        else
            snprintf(msg, sizeof(msg), "command \"%s\" failed: %s", cmd->name, strerror(-rc));
        json_object_put(ret);
        ctl_qmp_error(c, "GenericError", msg, id);
        return;
    }
    reply_return(c, ret ? ret : json_object_new_object(), id);
}

/* The envelope: an object with a string "execute", optional object "arguments" and any
 * "id"; nothing else. Returns the command name, or NULL after answering an error. */
static const char *check_envelope(struct ctl_conn *c, struct json_object *msg,
                                  struct json_object **args, struct json_object **id)
{
    char text[300];
    *args = NULL;
    *id = NULL;
    if (!json_object_is_type(msg, json_type_object)) {
        ctl_qmp_error(c, "GenericError", "QMP input must be a JSON object", NULL);
        return NULL;
    }
    json_object_object_get_ex(msg, "id", id);
    struct json_object *exec = NULL;
    json_object_object_foreach(msg, key, val) {
        if (strcmp(key, "execute") == 0) {
            exec = val;
        } else if (strcmp(key, "arguments") == 0) {
            *args = val;
        } else if (strcmp(key, "id") != 0) {
            snprintf(text, sizeof(text), "QMP input member '%s' is unexpected%s", key,
                     strcmp(key, "cmd") == 0 ? " (this is QMP: send {\"execute\": NAME, "
                                              "\"arguments\": {...}})" : "");
            ctl_qmp_error(c, "GenericError", text, *id);
            return NULL;
        }
    }
    if (!exec) {
        ctl_qmp_error(c, "GenericError", "QMP input lacks member 'execute'", *id);
        return NULL;
    }
    if (!json_object_is_type(exec, json_type_string)) {
        ctl_qmp_error(c, "GenericError", "QMP input member 'execute' must be a string", *id);
        return NULL;
    }
    if (*args && !json_object_is_type(*args, json_type_object)) {
        ctl_qmp_error(c, "GenericError", "QMP input member 'arguments' must be an object", *id);
        return NULL;
    }
    return json_object_get_string(exec);
}

/* qmp_capabilities [enable: []]: no capabilities are offered, so none can be enabled. */
static void negotiate(struct ctl_conn *c, struct json_object *args, struct json_object *id)
{
    struct json_object *enable = NULL;
    json_object_object_get_ex(args, "enable", &enable);
    bool other = json_object_object_length(args) > (enable ? 1 : 0);
    if (c->negotiated) {
        ctl_qmp_error(c, "CommandNotFound",
                      "Capabilities negotiation is already complete, command ignored", id);
    } else if (other || (enable && (!json_object_is_type(enable, json_type_array) ||
                                    json_object_array_length(enable) > 0))) {
        ctl_qmp_error(c, "GenericError", "qmp_capabilities: this server offers no "
                      "capabilities to enable; send it without arguments", id);
    } else {
        c->negotiated = true;
        reply_return(c, json_object_new_object(), id);
    }
}

void ctl_qmp_handle(const struct ctl_command *table, void *ctx, struct ctl_conn *c,
                    struct json_object *msg)
{
    struct json_object *args, *id;
    const char *name = check_envelope(c, msg, &args, &id);
    char text[300];
    if (!name) {
        json_object_put(msg);
        return;
    }
    struct json_object *empty = args ? NULL : json_object_new_object();
    if (!args)
        args = empty;
    if (strcmp(name, "qmp_capabilities") == 0) {
        negotiate(c, args, id);
    } else if (!c->negotiated) {
        ctl_qmp_error(c, "CommandNotFound", "Expecting capabilities negotiation with "
                      "'qmp_capabilities'", id);
    } else if (strcmp(name, "query-commands") == 0) {
        reply_return(c, query_commands(table), id);
    } else {
        const struct ctl_command *cmd = ctl_command_find(table, name);
        if (cmd) {
            run_command(cmd, ctx, c, args, id);
        } else {
            snprintf(text, sizeof(text), "The command %s has not been found", name);
            ctl_qmp_error(c, "CommandNotFound", text, id);
        }
    }
    json_object_put(empty);
    json_object_put(msg);
}
