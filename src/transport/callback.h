/* A call-back endpoint: where a peer we dialled can call us back (the migration source's
 * RESOLVE endpoint, which its destination asks when the commit window was cut). It is
 * opened beside a channel we dialled, so the peer reaches it the way it reaches us, and
 * every connection it yields is secured as that channel was. The migration engine sees
 * only this interface; the dialer (transport/dialer.h) says how one is opened. */
#ifndef VS_CALLBACK_H
#define VS_CALLBACK_H

#include <stdint.h>
#include "transport/channel.h"
#include "transport/security.h"

struct vs_callback {
    /* One secured connection within timeout_ms. -ETIMEDOUT: none came; another error:
     * one came and failed the security step (closed; vs_last_error() says why). */
    int (*accept)(struct vs_callback *cb, int timeout_ms, struct vs_channel **out);
    void (*close)(struct vs_callback *cb);
    uint16_t port;      /* where the peer calls, on the address it dialled us from */
};

int vs_callback_accept(struct vs_callback *cb, int timeout_ms, struct vs_channel **out);
/* NULL is allowed. */
void vs_callback_close(struct vs_callback *cb);

/* The default: a TCP listener on a free port of beside's local address; each connection
 * gets the TLS server side of sec (plain with --insecure) within secure_timeout_ms. */
int vs_callback_tcp_tls(struct vs_channel *beside, const struct vs_security_opts *sec,
                        int secure_timeout_ms, struct vs_callback **out);

#endif
