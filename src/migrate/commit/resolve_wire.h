/* The RESOLVE exchange (docs/state-machine.md, "The commit window"): when stream 0 is
 * lost between the source's DIGEST and the destination's RESUMED, either side opens a
 * fresh connection to the other and they swap states, tied to HELLO's session. */
#ifndef VS_RESOLVE_WIRE_H
#define VS_RESOLVE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "transport/channel.h"
#include "transport/dialer.h"
#include "wire/reader.h"
#include "wire/writer.h"

/* Read one RESOLVE record. *state is its state, or VS_OUTCOME_UNKNOWN when it names
 * another session than `session`. */
int vs_resolve_read(struct vs_wire_reader *r, const uint8_t *session, uint32_t *state);
/* The same, after its header h was read (a connection whose first record decides what it
 * is). */
int vs_resolve_read_payload(struct vs_wire_reader *r, const struct vs_wire_header *h,
                            const uint8_t *session, uint32_t *state);
int vs_resolve_send(struct vs_wire_writer *w, const uint8_t *session, uint32_t state);

/* One client exchange: connect to addr within timeout_ms and secure the connection with
 * dialer (the migration's: the caller is the TLS client), send my_state, read the peer's
 * state into *peer_state. On success *out is the open connection (caller closes; it may
 * send one more RESOLVE on it through the returned writer/reader pair's channel). Returns
 * -ECONNREFUSED only when nothing listens at addr (the process that did is gone); a
 * failed TLS handshake or a reset after connecting is another error. */
struct vs_resolve_conn {
    struct vs_channel *ch;
    struct vs_wire_reader r;
    struct vs_wire_writer w;
};
int vs_resolve_call(const char *addr, const struct vs_dialer *dialer, int timeout_ms,
                    const uint8_t *session, uint32_t my_state, uint32_t *peer_state,
                    struct vs_resolve_conn *c);
/* Take over an accepted, secured connection: reader, writer, read timeout. On failure
 * (here and in vs_resolve_accept) ch is closed. */
int vs_resolve_open(struct vs_channel *ch, int timeout_ms, struct vs_resolve_conn *c);
/* Start serving an accepted, secured connection: read the caller's state. */
int vs_resolve_accept(struct vs_channel *ch, int timeout_ms, const uint8_t *session,
                      uint32_t *caller_state, struct vs_resolve_conn *c);
void vs_resolve_close(struct vs_resolve_conn *c);

const char *vs_outcome_name(uint32_t state);
/* The source's RESOLVE endpoint: the host of stream 0's peer address ("HOST:PORT" or
 * "[V6]:PORT") with the port HELLO announced. */
void vs_resolve_endpoint(const char *peer, uint16_t port, char *out, size_t size);

#endif
