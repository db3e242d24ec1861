/* Control-plane server: a unix stream socket speaking line-delimited JSON.
 *
 * Each request is one JSON object on one line: {"cmd": "status", ...args}. Each reply is
 * one line: {"ok": true, ...fields} or {"ok": false, "error": "message"}. A connection may
 * carry any number of requests; replies come back one per request, in order. Blank lines
 * are ignored. Malformed requests (invalid JSON, not an object, missing or non-string
 * "cmd") get an error reply and the connection stays usable; a line longer than
 * CTL_MAX_LINE bytes gets an error reply and the connection is closed. A final line
 * without '\n' before the client half-closes is still answered.
 *
 * Single-threaded and poll-based: the owner calls ctl_server_poll() from its own loop,
 * and handlers run inside that call. Sockets are non-blocking and replies are buffered,
 * so a slow or stuck client never blocks the caller. */
#ifndef VS_CTL_SERVER_H
#define VS_CTL_SERVER_H

#define CTL_MAX_LINE (64 * 1024)       /* longest request line, without the '\n' */
#define CTL_MAX_CLIENTS 64             /* simultaneous connections */
#define CTL_MAX_REPLY (16 * 1024 * 1024) /* longest reply line; larger replies become errors */

struct json_object;

/* Called for every well-formed request. `reply` is an empty JSON object the handler fills
 * with result fields (not "ok"; an "ok" field set by the handler is ignored). Return 0 for
 * success, or a negative errno after vs_fail() — the server then replies
 * {"ok":false,"error": vs_last_error()}. The handler must not keep `request` or `reply`
 * (take a json_object_get() reference if it must). */
typedef int (*ctl_handler_fn)(void *ctx, const char *cmd, struct json_object *request,
                              struct json_object *reply);

struct ctl_server;

/* Create the socket at socket_path (mode 0600) and start listening. Fails if the path is
 * too long, its directory is missing, it exists and is not a socket, or another live
 * server listens there; a stale socket file nobody listens on is replaced. */
int ctl_server_open(struct ctl_server **out, const char *socket_path, ctl_handler_fn fn,
                    void *ctx);
/* Wait up to timeout_ms (0: just check; negative: until something happens) for
 * connections and requests, serve whatever is ready, and return 0. Returns a negative
 * errno only if poll() itself fails. */
int ctl_server_poll(struct ctl_server *s, int timeout_ms);
/* Close all clients and the listener and unlink the socket path (only if it is still the
 * socket this server created). NULL is a no-op. */
void ctl_server_close(struct ctl_server *s);

#endif
