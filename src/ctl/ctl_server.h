/* Control-plane server: a unix stream socket speaking QMP, the QEMU Machine Protocol
 * (docs/control-protocol.md), and optionally a TCP address speaking the same over TLS 1.3
 * with mutual authentication (vmshiftd --listen): a TCP client is greeted only once its
 * handshake succeeded; one that fails a check, or does not finish within 10 s, is dropped
 * and the reason logged.
 *
 * On connect the server sends a greeting {"QMP": {"version": ..., "capabilities": []}}.
 * The client sends JSON objects (one after the other; newlines between them are optional)
 * {"execute": NAME, "arguments": {...}, "id": ANY}; the first must be qmp_capabilities,
 * anything else before it is refused with class CommandNotFound. Every command gets one
 * reply, in order: {"return": VALUE, "id": ...} or {"error": {"class": ..., "desc": ...},
 * "id": ...}. After negotiation the server also sends events
 * {"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": US}}.
 * Replies and events are one line each, ending in "\r\n" (as QEMU sends them).
 *
 * Commands come from a table given at open: name, handler and argument schema. The
 * server checks the arguments against the schema (missing, unexpected, wrong type) before
 * the handler runs, and answers query-commands itself.
 *
 * Malformed input (invalid JSON, not an object, bad members) gets a GenericError reply
 * and the connection stays usable (after invalid JSON the server skips to the next line);
 * an object longer than CTL_MAX_LINE bytes gets an error reply and the connection is
 * closed. Single-threaded and poll-based: the owner calls ctl_server_poll() from its own
 * loop, and handlers run inside that call. Sockets are non-blocking and replies are
 * buffered, so a slow or stuck client never blocks the caller. */
#ifndef VS_CTL_SERVER_H
#define VS_CTL_SERVER_H

#include <stdbool.h>
#include <time.h>

#define CTL_MAX_LINE (64 * 1024)       /* longest request object */
#define CTL_MAX_CLIENTS 64             /* simultaneous connections */
#define CTL_MAX_REPLY (16 * 1024 * 1024) /* longest reply line; larger replies become errors */
#define CTL_MAX_ARGS 24

struct json_object;
struct vs_tls;

/* What an argument's JSON value may be. CTL_ARG_SIZE: a non-negative integer or a string
 * with a size or number ("4M", "0x1000"), read with ctl_json_get_u64. */
enum ctl_arg_type { CTL_ARG_STR, CTL_ARG_INT, CTL_ARG_SIZE, CTL_ARG_BOOL, CTL_ARG_NUMBER,
                    CTL_ARG_OBJECT, CTL_ARG_ANY };

struct ctl_arg {
    const char *name;
    enum ctl_arg_type type;
    bool required;
};

/* A command's handler: `args` is the (checked) arguments object, never NULL; `*ret` is an
 * empty JSON object the handler fills with result fields, or replaces (json_object_put
 * the old one) with another value such as an array. Return 0, or a negative errno after
 * vs_fail(): the reply is then {"error": {"class": "GenericError", "desc":
 * vs_last_error()}}. The handler must not keep `args` or `*ret`. */
typedef int (*ctl_command_fn)(void *ctx, struct json_object *args, struct json_object **ret);

struct ctl_command {
    const char *name;            /* NULL ends a table */
    ctl_command_fn fn;
    struct ctl_arg args[CTL_MAX_ARGS]; /* ends at the first entry without a name */
    bool open_args;              /* also accept arguments not listed (passed on as given) */
    const char *help;            /* one line, for `query-commands` and `vmshift ctl --help` */
};

/* Find a command in a table (NULL when absent). */
const struct ctl_command *ctl_command_find(const struct ctl_command *table, const char *name);

struct ctl_server;

/* A server without listeners yet; commands from `table` (which must outlive the server)
 * get `ctx`. */
int ctl_server_create(struct ctl_server **out, const struct ctl_command *table, void *ctx);
/* Create the socket at socket_path (mode 0600) and start listening. Fails if the path is
 * too long, its directory is missing, it exists and is not a socket, or another live
 * server listens there; a stale socket file nobody listens on is replaced. */
int ctl_server_listen_unix(struct ctl_server *s, const char *socket_path);
/* Listen on HOST:PORT too (port 0: any free one, see ctl_server_tcp_port). Every
 * connection is secured with tls (vs_tls_new_for(..., VS_TLS_DESTINATION,
 * VS_TLS_FOR_CONTROL, ...); it must outlive the server), or is plain TCP with NULL (only
 * for --insecure). */
int ctl_server_listen_tcp(struct ctl_server *s, const char *addr, const struct vs_tls *tls);
/* The port of the TCP listener (0: none). */
int ctl_server_tcp_port(const struct ctl_server *s);
/* ctl_server_create and ctl_server_listen_unix in one. */
int ctl_server_open(struct ctl_server **out, const char *socket_path,
                    const struct ctl_command *table, void *ctx);
/* Wait up to timeout_ms (0: just check; negative: until something happens) for
 * connections and requests, serve whatever is ready, and return 0. Returns a negative
 * errno only if poll() itself fails. */
int ctl_server_poll(struct ctl_server *s, int timeout_ms);
/* Send an event to every client that has negotiated capabilities. `data` (a JSON object,
 * or NULL for none) is consumed. */
void ctl_server_event(struct ctl_server *s, const char *name, struct json_object *data);
/* The same, stamped with when it happened (NULL: now). */
void ctl_server_event_at(struct ctl_server *s, const char *name, struct json_object *data,
                         const struct timespec *when);
/* Close all clients and the listeners and unlink the socket path (only if it is still the
 * socket this server created). NULL is a no-op. */
void ctl_server_close(struct ctl_server *s);

#endif
