/* Control-plane client: QMP over a unix control socket (see ctl/ctl_server.h), or over
 * TCP to a host agent's HOST:PORT (vmshiftd --listen), secured with TLS unless --insecure.
 *
 * A session (ctl_qmp_connect) reads the greeting, negotiates capabilities, then executes
 * commands one at a time; events that arrive meanwhile are kept for ctl_qmp_next_event.
 *
 * ctl_command/ctl_request are the compatibility layer for the callers written for the
 * old {"cmd": ...} -> {"ok": ...} protocol: the old command names and fields are mapped
 * onto the QMP commands (ctl_legacy.c), any other name is executed as a QMP command with
 * the fields as its arguments, and the reply comes back in the old shape. */
#ifndef VS_CTL_CLIENT_H
#define VS_CTL_CLIENT_H

#include <stdbool.h>

struct json_object;
struct ctl_qmp;
struct vs_tls;
struct vs_security_opts;

/* How to reach control servers given as HOST:PORT (a socket path needs none of it). */
struct ctl_remote {
    struct vs_tls *tls;        /* the client's TLS (ctl_remote_init), or NULL ... */
    bool insecure;             /* ... for plain TCP (--insecure) */
};

/* The client's side from the user's security options (vs_security_set): checks the
 * combination (naming `what` is secured) and loads the certificates or key. */
int ctl_remote_init(struct ctl_remote *r, struct vs_security_opts *o, const char *what);
void ctl_remote_free(struct ctl_remote *r);

/* Connect, read the greeting and send qmp_capabilities, each step within timeout_ms
 * (<= 0: no limit). Errors name the socket and what to do ("cannot connect to control
 * socket PATH: No such file or directory; is the VM running (vmshift run --ctl PATH)?"). */
int ctl_qmp_connect(const char *socket_path, int timeout_ms, struct ctl_qmp **out);
/* The same where `where` may be a HOST:PORT (ctl_is_tcp_address), reached as remote says
 * (NULL: HOST:PORT is refused, naming the options it needs). */
int ctl_qmp_connect_to(const char *where, const struct ctl_remote *remote, int timeout_ms,
                       struct ctl_qmp **out);
/* Execute one command (args: a JSON object or NULL, not consumed) and wait for its reply:
 * *reply is {"return": ...} or {"error": {"class", "desc"}} (caller json_object_put()s).
 * Returns < 0 only when the exchange itself failed (connection, timeout, bad JSON). */
int ctl_qmp_execute(struct ctl_qmp *q, const char *name, struct json_object *args,
                    struct json_object **reply);
/* The next event (received earlier or within timeout_ms); -ETIMEDOUT when none came. */
int ctl_qmp_next_event(struct ctl_qmp *q, int timeout_ms, struct json_object **event);
void ctl_qmp_close(struct ctl_qmp *q);

/* A QMP reply in the old shape: {"ok": true, ...return fields} (a return that is not an
 * object goes under "return"), or {"ok": false, "error": desc, "class": class}. */
struct json_object *ctl_qmp_to_legacy(struct json_object *reply);

/* One command the old way: `cmd` with the fields of `args` (a JSON object or NULL, not
 * consumed, without "cmd"), on a new connection. On success *reply is the reply in the
 * old shape (see ctl_qmp_to_legacy) and the function returns 0 even if it says ok:false.
 * Failures (return < 0, *reply = NULL): connection, timeout, the server closing without
 * replying, or a reply that is not QMP. */
int ctl_command(const char *socket_path, const char *cmd, struct json_object *args,
                struct json_object **reply, int timeout_ms);
int ctl_command_to(const char *where, const struct ctl_remote *remote, const char *cmd,
                   struct json_object *args, struct json_object **reply, int timeout_ms);

/* The same with the command inside the request: {"cmd": cmd, ...args}. */
int ctl_request(const char *socket_path, struct json_object *request,
                struct json_object **reply, int timeout_ms);

#endif
