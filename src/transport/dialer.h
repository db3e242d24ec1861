/* How a migration opens connections to its peer: the engine (src/migrate/) calls a dialer
 * and never a socket, as the destination takes its connections from an injected accept
 * (vs_incoming_opts.accept_stream). A dialer connects one channel to an address, then
 * secures a batch of freshly connected channels in place (their handshakes in parallel).
 * The default dials TCP and secures with TLS 1.3 (or leaves the channels plain with
 * --insecure); tests and other transports give their own. */
#ifndef VS_DIALER_H
#define VS_DIALER_H

#include "transport/channel.h"
#include "transport/callback.h"
#include "transport/tls.h"

struct vs_dialer {
    /* Open one channel to addr within timeout_ms (0: no limit). */
    int (*connect)(void *ctx, const char *addr, int timeout_ms, struct vs_channel **out);
    /* Secure chs[0..n) in place; res[i] says how each went (as vs_tls_secure). */
    void (*secure)(void *ctx, struct vs_channel **chs, unsigned n, int timeout_ms,
                   struct vs_tls_result *res);
    void *ctx;
    /* Open the endpoint where the peer we dialled on `beside` can call back (the source's
     * RESOLVE endpoint); NULL: this transport offers none. */
    int (*callback)(void *ctx, struct vs_channel *beside, struct vs_callback **out);
    void *callback_ctx;
};

/* The default dialer: TCP (vs_tcp_connect), then TLS with tls; tls NULL: --insecure.
 * Its call-back endpoints are TCP listeners beside the dialled connection, the TLS server
 * side of sec (which must outlive the dialer; NULL: no call-back endpoints). */
void vs_dialer_tcp_tls(struct vs_dialer *d, struct vs_tls *tls,
                       const struct vs_security_opts *sec);

/* The dialer's call-back endpoint beside channel `beside` (see transport/callback.h). */
int vs_dialer_open_callback(const struct vs_dialer *d, struct vs_channel *beside,
                            struct vs_callback **out);

int vs_dialer_connect(const struct vs_dialer *d, const char *addr, int timeout_ms,
                      struct vs_channel **out);
void vs_dialer_secure(const struct vs_dialer *d, struct vs_channel **chs, unsigned n,
                      int timeout_ms, struct vs_tls_result *res);

/* Connect and secure one channel. A failure of the security step closes the channel and
 * is returned with res->error as its message; res may be NULL. */
int vs_dial_one(const struct vs_dialer *d, const char *addr, int timeout_ms,
                struct vs_channel **out, struct vs_tls_result *res);

#endif
