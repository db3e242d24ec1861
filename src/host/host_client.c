#include "host/host_client.h"
#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_legacy.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void host_links_init(struct host_links *l, const struct ctl_remote *remote)
{
    memset(l, 0, sizeof(*l));
    l->remote = remote;
}

void host_links_close(struct host_links *l)
{
    for (unsigned i = 0; i < l->n; i++) {
        ctl_qmp_close(l->link[i].q);
        free(l->link[i].host);
    }
    l->n = 0;
}

/* The link of a host (a new one on first use); NULL when there are too many hosts or no
 * memory: the request then gets a session of its own. */
static struct host_link *link_of(struct host_links *l, const char *host)
{
    for (unsigned i = 0; i < l->n; i++)
        if (!strcmp(l->link[i].host, host))
            return &l->link[i];
    if (l->n >= HOST_MAX_LINKS)
        return NULL;
    struct host_link *k = &l->link[l->n];
    k->q = NULL;
    if (!(k->host = strdup(host)))
        return NULL;
    l->n++;
    return k;
}

/* One exchange on the host's session. A session the host closed since the last request
 * (a restarted daemon) never saw this one: it is opened again and the request sent once
 * more. A timeout is not retried: the host may still be at work on it. */
static int exchange(struct host_links *l, struct host_link *k, const char *host,
                    const char *cmd, struct json_object *args, struct json_object **r)
{
    struct ctl_qmp *own = NULL, **q = k ? &k->q : &own;
    bool reused = *q != NULL;
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!*q && (rc = ctl_qmp_connect_to(host, l->remote, HOST_CALL_TIMEOUT_MS, q)))
            break;
        rc = ctl_legacy_run(*q, cmd, args, r);
        if (rc >= 0)
            break;
        ctl_qmp_close(*q);
        *q = NULL;
        if (!reused || (rc != -ECONNRESET && rc != -EPIPE))
            break;
        reused = false;
    }
    ctl_qmp_close(own);
    return rc;
}

int host_call(struct host_links *l, const char *host, const char *cmd,
              struct json_object *args, struct json_object **reply)
{
    struct json_object *r = NULL, *ok;
    if (reply)
        *reply = NULL;
    if (!cmd || !*cmd)
        return vs_fail(EINVAL, "host %s: no command given", host);
    if (exchange(l, link_of(l, host), host, cmd, args, &r)) {
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
