/* The client side of vmshiftd's control API, on its socket or its --listen HOST:PORT: one
 * request, and its reply only when it says ok (a failed command becomes an error naming
 * the host and the command). A caller keeps one session per host open between requests
 * (struct host_links): a new TLS session per request would cost both sides a handshake
 * at every look at a migration. */
#ifndef VS_HOST_CLIENT_H
#define VS_HOST_CLIENT_H

struct json_object;
struct ctl_qmp;
struct ctl_remote;

#define HOST_CALL_TIMEOUT_MS 30000
#define HOST_MAX_LINKS 17           /* a source and 16 destinations */

struct host_link {
    char *host;                     /* as given: a socket path or HOST:PORT */
    struct ctl_qmp *q;              /* its session, NULL until the first request */
};

/* The sessions of one caller, and how hosts given as HOST:PORT are reached (remote may
 * be NULL when no host is one). */
struct host_links {
    const struct ctl_remote *remote;
    struct host_link link[HOST_MAX_LINKS];
    unsigned n;
};

void host_links_init(struct host_links *l, const struct ctl_remote *remote);
void host_links_close(struct host_links *l);

/* {"cmd": cmd, ...args} to the vmshiftd at `host`, on its session (opened on first use; a
 * session the host closed meanwhile is opened again once). On ok:true returns 0 and the
 * reply (caller puts it; reply may be NULL to drop it); otherwise a negative errno with
 * "HOST: CMD: why" in vs_last_error(). -EIO when the host could not be reached. */
int host_call(struct host_links *l, const char *host, const char *cmd,
              struct json_object *args, struct json_object **reply);

/* A field of a JSON object: string ("" if absent), number (0 if absent), object (NULL). */
const char *host_json_str(struct json_object *o, const char *key);
double host_json_num(struct json_object *o, const char *key);
struct json_object *host_json_obj(struct json_object *o, const char *key);

#endif
