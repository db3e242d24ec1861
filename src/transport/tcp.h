/* TCP transport: "HOST:PORT" addresses (IPv4, or [IPv6]:PORT), connect and listen. */
#ifndef VS_TCP_H
#define VS_TCP_H

#include <sys/socket.h>
#include "transport/channel.h"

/* Parse "198.18.0.1:4444", "localhost:4444", "[::1]:4444" (numeric or resolvable;
 * port 0 allowed for listening). */
int vs_tcp_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/* Connect within timeout_ms; large socket buffers and TCP_NODELAY are set. */
int vs_tcp_connect(const char *addr, int timeout_ms, struct vs_channel **out);

struct vs_tcp_listener;
int vs_tcp_listen(const char *addr, struct vs_tcp_listener **out);
/* Listen on a free port of the local address of connection ch (a second endpoint its
 * peer can reach the same way). */
int vs_tcp_listen_beside(struct vs_channel *ch, struct vs_tcp_listener **out);
/* The local port (useful after listening on port 0). */
int vs_tcp_listener_port(struct vs_tcp_listener *l);
/* Wait up to timeout_ms (0 = forever) for one connection. */
int vs_tcp_accept(struct vs_tcp_listener *l, int timeout_ms, struct vs_channel **out);
/* From now on, vs_tcp_accept gives up with -EINTR as soon as stop_fd is readable (a stop
 * signal, common/stop_signal.h); -1: never (the default). */
void vs_tcp_listener_stop_on(struct vs_tcp_listener *l, int stop_fd);
void vs_tcp_listener_close(struct vs_tcp_listener *l);

#endif
