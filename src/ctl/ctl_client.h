/* Control-plane client: one request, one reply, over the VM's unix control socket.
 * See ctl/ctl_server.h for the protocol. */
#ifndef VS_CTL_CLIENT_H
#define VS_CTL_CLIENT_H

struct json_object;

/* Connect, send one request object, wait up to timeout_ms (<= 0: no limit) for the reply
 * line and parse it. On success *reply is the parsed reply object (caller
 * json_object_put()s it) and the function returns 0 even if the reply says ok:false (the
 * caller looks at it). The request is not consumed. Failures (return < 0, *reply = NULL):
 * connection ("cannot connect to control socket PATH: No such file or directory; is the
 * VM running (vmshift run --ctl PATH)?"), request over CTL_MAX_LINE, timeout, the server
 * closing without replying, or a reply that is not a JSON object with a boolean "ok". */
int ctl_request(const char *socket_path, struct json_object *request,
                struct json_object **reply, int timeout_ms);

/* Convenience: request {"cmd": cmd} plus the fields of `args` (a JSON object, or NULL).
 * `args` is not consumed and must not contain "cmd". */
int ctl_command(const char *socket_path, const char *cmd, struct json_object *args,
                struct json_object **reply, int timeout_ms);

#endif
