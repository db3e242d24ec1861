/* The client side of vmshiftd's control API, on its socket or its --listen HOST:PORT: one
 * request, and its reply only when it says ok (a failed command becomes an error naming
 * the host and the command). */
#ifndef VS_HOST_CLIENT_H
#define VS_HOST_CLIENT_H

struct json_object;
struct ctl_remote;

#define HOST_CALL_TIMEOUT_MS 30000

/* {"cmd": cmd, ...args} to the vmshiftd at `host` (a socket path, or a HOST:PORT reached
 * as `remote` says; remote may be NULL when no host is a HOST:PORT). On ok:true returns 0
 * and the reply (caller puts it; reply may be NULL to drop it); otherwise a negative errno
 * with "HOST: CMD: why" in vs_last_error(). -EIO when the host could not be reached. */
int host_call(const struct ctl_remote *remote, const char *host, const char *cmd,
              struct json_object *args, struct json_object **reply);

/* A field of a JSON object: string ("" if absent), number (0 if absent), object (NULL). */
const char *host_json_str(struct json_object *o, const char *key);
double host_json_num(struct json_object *o, const char *key);
struct json_object *host_json_obj(struct json_object *o, const char *key);

#endif
