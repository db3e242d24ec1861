/* A TLS session on a non-blocking socket, for poll loops that must never block: the
 * control server, which serves all its clients in one thread, and its remote clients
 * (vmshiftd --listen, docs/control-protocol.md). The handshake goes in steps, with the
 * same checks and messages as a migration's (tls_handshake.c); then reads and writes
 * return at once and say what to poll for. Migration streams use TLS channels (tls.h). */
#ifndef VS_TLS_STREAM_H
#define VS_TLS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vs_tls;
struct vs_tls_stream;

/* Begin TLS on the connected socket fd in t's role (t made with vs_tls_new_for; it must
 * outlive the stream). The fd is made non-blocking and stays the caller's: close it after
 * vs_tls_stream_free. peer ("198.18.0.3:41234") names the other side in messages. */
int vs_tls_stream_new(const struct vs_tls *t, int fd, const char *peer,
                      struct vs_tls_stream **out);

/* Advance the handshake: 0 once it is done; -EAGAIN while it waits (poll the fd for
 * vs_tls_stream_handshake_events); another negative errno when it failed, with
 * vs_last_error() naming the peer, the check that failed and what to do. */
int vs_tls_stream_handshake(struct vs_tls_stream *s);
short vs_tls_stream_handshake_events(const struct vs_tls_stream *s);

/* Like recv(2) / send(2) on a non-blocking socket, after the handshake: the bytes moved;
 * 0 at the peer's end of the session (reads); -1 with errno EAGAIN (poll for
 * vs_tls_stream_read_events / _write_events), EPROTO (vs_tls_stream_failure says what TLS
 * found) or the socket's error. Writes may be partial; after EAGAIN a write is repeated
 * with at least the bytes it was given (they may have moved; more may follow them). */
ssize_t vs_tls_stream_read(struct vs_tls_stream *s, void *buf, size_t len);
ssize_t vs_tls_stream_write(struct vs_tls_stream *s, const void *buf, size_t len);
short vs_tls_stream_read_events(const struct vs_tls_stream *s);
short vs_tls_stream_write_events(const struct vs_tls_stream *s);

/* Received bytes wait inside the session: read before polling, the socket may stay
 * silent. */
bool vs_tls_stream_pending(const struct vs_tls_stream *s);
/* What TLS found when a call failed with EPROTO (an alert, a record that failed its check). */
const char *vs_tls_stream_failure(const struct vs_tls_stream *s);

/* Tell the peer the session ends (if the socket takes it at once) and free it. NULL is a
 * no-op. The fd is not closed. */
void vs_tls_stream_free(struct vs_tls_stream *s);

#endif
