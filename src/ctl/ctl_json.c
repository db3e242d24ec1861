#include "ctl/ctl_json.h"

#include "common/error.h"
#include "common/size.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A short, printable rendering of a JSON value for error messages. */
static const char *describe(struct json_object *v, char *buf, size_t len)
{
    const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!s)
        s = "?";
    size_t n = strlen(s);
    if (n < len) {
        memcpy(buf, s, n + 1);
    } else {
        memcpy(buf, s, len - 4);
        memcpy(buf + len - 4, "...", 4);
    }
    return buf;
}

static int lookup(struct json_object *o, const char *key, struct json_object **v)
{
    if (!o || !json_object_is_type(o, json_type_object))
        return vs_fail(EINVAL, "cannot read field \"%s\": the request is not a JSON object", key);
    if (!json_object_object_get_ex(o, key, v))
        return vs_fail(ENOENT, "missing field \"%s\"", key);
    return 0;
}

int ctl_json_get_u64(struct json_object *o, const char *key, uint64_t *out)
{
    struct json_object *v;
    char shown[80];
    int rc = lookup(o, key, &v);
    if (rc)
        return rc;
    if (json_object_is_type(v, json_type_int)) {
        if (json_object_get_int64(v) < 0)
            return vs_fail(EINVAL, "field \"%s\" must not be negative (got %s)", key,
                           describe(v, shown, sizeof(shown)));
        *out = json_object_get_uint64(v);
        return 0;
    }
    if (json_object_is_type(v, json_type_string)) {
        uint64_t val;
        rc = vs_parse_size(json_object_get_string(v), &val);
        if (rc)
            return vs_fail_context(rc, "field \"%s\"", key);
        *out = val;
        return 0;
    }
    return vs_fail(EINVAL,
                   "field \"%s\" must be a non-negative integer or a size string like \"4G\" "
                   "(got %s)",
                   key, describe(v, shown, sizeof(shown)));
}

int ctl_json_get_string(struct json_object *o, const char *key, const char **out)
{
    struct json_object *v;
    char shown[80];
    int rc = lookup(o, key, &v);
    if (rc)
        return rc;
    if (!json_object_is_type(v, json_type_string))
        return vs_fail(EINVAL, "field \"%s\" must be a string (got %s)", key,
                       describe(v, shown, sizeof(shown)));
    *out = json_object_get_string(v);
    return 0;
}

int ctl_json_get_bool(struct json_object *o, const char *key, bool *out)
{
    struct json_object *v;
    char shown[80];
    int rc = lookup(o, key, &v);
    if (rc)
        return rc;
    if (!json_object_is_type(v, json_type_boolean))
        return vs_fail(EINVAL, "field \"%s\" must be true or false (got %s)", key,
                       describe(v, shown, sizeof(shown)));
    *out = json_object_get_boolean(v);
    return 0;
}

/* "42", "-7": optional '-', then 1..20 digits, nothing else. */
static bool is_plain_decimal(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static struct json_object *convert_value(const char *val)
{
    if (strcmp(val, "true") == 0)
        return json_object_new_boolean(1);
    if (strcmp(val, "false") == 0)
        return json_object_new_boolean(0);
    if (is_plain_decimal(val)) {
        char *end;
        errno = 0;
        if (val[0] == '-') {
            long long v = strtoll(val, &end, 10);
            if (errno == 0 && *end == '\0')
                return json_object_new_int64(v);
        } else {
            unsigned long long v = strtoull(val, &end, 10);
            if (errno == 0 && *end == '\0')
                return v <= INT64_MAX ? json_object_new_int64((int64_t)v)
                                      : json_object_new_uint64(v);
        }
        /* Out of range: keep the text so the receiver can report it precisely. */
    }
    return json_object_new_string(val);
}

int ctl_json_parse_args(int argc, char **argv, struct json_object **out)
{
    *out = NULL;
    struct json_object *obj = json_object_new_object();
    if (!obj)
        return vs_fail(ENOMEM, "out of memory building the request");
    for (int i = 0; i < argc; i++) {
        const char *tok = argv[i];
        const char *eq = strchr(tok, '=');
        if (!eq) {
            json_object_put(obj);
            return vs_fail(EINVAL, "argument '%s' is not of the form key=value", tok);
        }
        if (eq == tok) {
            json_object_put(obj);
            return vs_fail(EINVAL, "argument '%s' has an empty key; write key=value", tok);
        }
        size_t klen = (size_t)(eq - tok);
        char *key = strndup(tok, klen);
        if (!key) {
            json_object_put(obj);
            return vs_fail(ENOMEM, "out of memory building the request");
        }
        if (json_object_object_get_ex(obj, key, NULL)) {
            int rc = vs_fail(EINVAL, "argument '%s' repeats the key '%s'; give each key once",
                             tok, key);
            free(key);
            json_object_put(obj);
            return rc;
        }
        struct json_object *v = convert_value(eq + 1);
        if (!v || json_object_object_add(obj, key, v) != 0) {
            json_object_put(v);
            free(key);
            json_object_put(obj);
            return vs_fail(ENOMEM, "out of memory building the request");
        }
        free(key);
    }
    *out = obj;
    return 0;
}

const char *ctl_json_line(struct json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
}
