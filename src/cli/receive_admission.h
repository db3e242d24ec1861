/* Which connections `vmshift receive` admits: it accepts them on its listener, secures
 * them (TLS handshakes of the connections that arrive together run in parallel, within
 * --handshake-timeout), and hands out the secured ones one by one. A connection that fails
 * is closed with a reason for the log; a peer that spoke vmshift without TLS is first told
 * why, in its own protocol, so both sides say the same thing. */
#ifndef VS_RECEIVE_ADMISSION_H
#define VS_RECEIVE_ADMISSION_H

#include "transport/tcp.h"
#include "transport/tls.h"
#include "wire/format.h"

#define VS_ADMISSION_QUEUE VS_WIRE_MAX_STREAMS

struct vs_admission_entry {
    struct vs_channel *ch;        /* secured; NULL: refused ... */
    int err;
    char error[480];              /* ... for this reason */
};

struct vs_admission {
    struct vs_tcp_listener *listener;
    struct vs_tls *tls;           /* NULL: --insecure */
    int handshake_timeout_ms;
    struct vs_admission_entry queue[VS_ADMISSION_QUEUE];
    unsigned head, count;
};

/* The next connection: one already secured, or accept up to `want` that arrive together
 * (waiting up to timeout_ms for the first, 0 = forever) and secure them. Returns 0 with
 * *out a secured channel; 1 when the connection was refused (logged when it happened;
 * vs_last_error() says who and why; the caller may ask again); a negative errno when
 * nothing arrived or the listener failed. */
int vs_admission_next(struct vs_admission *a, unsigned want, int timeout_ms,
                      struct vs_channel **out);

/* Close the connections still queued. */
void vs_admission_drain(struct vs_admission *a);

#endif
