#include "host/host_client.h"
#include "common/error.h"
#include "ctl/ctl_client.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int host_call(const struct ctl_remote *remote, const char *host, const char *cmd,
              struct json_object *args, struct json_object **reply)
{
    struct json_object *r = NULL, *ok;
    if (reply)
        *reply = NULL;
    if (ctl_command_to(host, remote, cmd, args, &r, HOST_CALL_TIMEOUT_MS)) {
        /* The client's hint speaks of a VM; here a host agent is missing. */
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", vs_last_error());
        char *hint = strstr(msg, "; is the VM running");
        if (hint)
            *hint = '\0';
        return vs_fail(EIO, "host %s: %s%s%s%s", host, msg, hint ? "; is vmshiftd running there "
                       "(vmshiftd --ctl " : "", hint ? host : "", hint ? ")?" : "");
    }
    if (!json_object_object_get_ex(r, "ok", &ok) || !json_object_get_boolean(ok)) {
        int rc = vs_fail(EINVAL, "host %s: %s: %s", host, cmd, host_json_str(r, "error"));
        json_object_put(r);
        return rc;
    }
    if (reply)
        *reply = r;
    else
        json_object_put(r);
    return 0;
}

const char *host_json_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

double host_json_num(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

struct json_object *host_json_obj(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) &&
           json_object_is_type(v, json_type_object) ? v : NULL;
}
