#include "transport/callback.h"
#include "common/error.h"
#include "transport/tcp.h"
#include "transport/tls.h"

#include <errno.h>
#include <stdlib.h>

struct tcp_tls_callback {
    struct vs_callback cb;          /* first: the interface */
    struct vs_tcp_listener *listener;
    struct vs_tls *tls;             /* NULL: --insecure */
    int secure_timeout_ms;
};

int vs_callback_accept(struct vs_callback *cb, int timeout_ms, struct vs_channel **out)
{
    return cb->accept(cb, timeout_ms, out);
}

void vs_callback_close(struct vs_callback *cb)
{
    if (cb)
        cb->close(cb);
}

static int tcp_tls_accept(struct vs_callback *cb, int timeout_ms, struct vs_channel **out)
{
    struct tcp_tls_callback *t = (struct tcp_tls_callback *)cb;
    struct vs_channel *ch;
    int rc = vs_tcp_accept(t->listener, timeout_ms, &ch);
    if (rc)
        return rc;
    struct vs_tls_result res;
    vs_tls_secure(t->tls, &ch, 1, t->secure_timeout_ms, &res);
    if (res.err) {
        vs_channel_linger_close(ch, 200);
        return vs_fail(res.err == -ETIMEDOUT ? -EPROTO : res.err, "%s", res.error);
    }
    *out = ch;
    return 0;
}

static void tcp_tls_close(struct vs_callback *cb)
{
    struct tcp_tls_callback *t = (struct tcp_tls_callback *)cb;
    vs_tcp_listener_close(t->listener);
    vs_tls_free(t->tls);
    free(t);
}

int vs_callback_tcp_tls(struct vs_channel *beside, const struct vs_security_opts *sec,
                        int secure_timeout_ms, struct vs_callback **out)
{
    struct tcp_tls_callback *t = calloc(1, sizeof(*t));
    if (!t)
        return vs_fail(ENOMEM, "out of memory for a call-back endpoint");
    int rc = vs_tls_new(sec, VS_TLS_DESTINATION, &t->tls);
    if (!rc)
        rc = vs_tcp_listen_beside(beside, &t->listener);
    int port = rc ? rc : vs_tcp_listener_port(t->listener);
    if (port < 0) {
        vs_tcp_listener_close(t->listener);
        vs_tls_free(t->tls);
        free(t);
        return port;
    }
    t->cb.accept = tcp_tls_accept;
    t->cb.close = tcp_tls_close;
    t->cb.port = (uint16_t)port;
    t->secure_timeout_ms = secure_timeout_ms;
    *out = &t->cb;
    return 0;
}
