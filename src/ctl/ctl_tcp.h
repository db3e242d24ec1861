/* The control protocol over TCP (docs/control-protocol.md, "Remote hosts"): telling a
 * HOST:PORT from a socket path, the server's listener and the names of its clients, and
 * the client's connection, secured with TLS (transport/tls_stream.h) unless --insecure. */
#ifndef VS_CTL_TCP_H
#define VS_CTL_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_tls;
struct vs_tls_stream;

/* Is `where` a HOST:PORT ("198.18.0.1:7000", "[::1]:7000", "host-b:7000") rather than a
 * unix socket path? A path has a '/' or no ":PORT" at its end ("./a:1" is a path). */
bool ctl_is_tcp_address(const char *where);

/* Listen on HOST:PORT (port 0: any free one): a non-blocking listener in *fd; *port is
 * the port it took. Errors say what to do (address in use, not an address of this host). */
int ctl_tcp_listen(const char *addr, int *fd, int *port);

/* A new connection from the listener: TCP_NODELAY (a request and its reply are small),
 * and the client's address into peer ("198.18.0.3:41234"). */
void ctl_tcp_accepted(int fd, char *peer, size_t len);

/* Connect to addr before deadline_ns (0: no limit) and, with tls, run the client's side
 * of the handshake (*stream; NULL without tls: plain TCP, --insecure). *fd is the
 * non-blocking socket. Errors name the address, what failed and what to do. */
int ctl_tcp_connect(const char *addr, const struct vs_tls *tls, uint64_t deadline_ns,
                    int *fd, struct vs_tls_stream **stream);

#endif
