#include "transport/dialer.h"
#include "common/error.h"
#include "transport/tcp.h"

#include <errno.h>
#include <string.h>

static int tcp_connect(void *ctx, const char *addr, int timeout_ms, struct vs_channel **out)
{
    (void)ctx;
    return vs_tcp_connect(addr, timeout_ms, out);
}

static void tls_secure(void *ctx, struct vs_channel **chs, unsigned n, int timeout_ms,
                       struct vs_tls_result *res)
{
    vs_tls_secure(ctx, chs, n, timeout_ms, res);
}

/* A call-back connection's TLS handshake: as long as a RESOLVE exchange may take. */
#define CALLBACK_SECURE_MS 2000

static int tcp_tls_callback(void *ctx, struct vs_channel *beside, struct vs_callback **out)
{
    return vs_callback_tcp_tls(beside, ctx, CALLBACK_SECURE_MS, out);
}

void vs_dialer_tcp_tls(struct vs_dialer *d, struct vs_tls *tls,
                       const struct vs_security_opts *sec)
{
    d->connect = tcp_connect;
    d->secure = tls_secure;
    d->ctx = tls;
    d->callback = sec ? tcp_tls_callback : NULL;
    d->callback_ctx = (void *)sec;
}

int vs_dialer_open_callback(const struct vs_dialer *d, struct vs_channel *beside,
                            struct vs_callback **out)
{
    if (!d->callback)
        return vs_fail(ENOTSUP, "this migration's transport offers no call-back endpoint, "
                       "so an interrupted commit could not be settled; use the default "
                       "TCP transport");
    return d->callback(d->callback_ctx, beside, out);
}

int vs_dialer_connect(const struct vs_dialer *d, const char *addr, int timeout_ms,
                      struct vs_channel **out)
{
    return d->connect(d->ctx, addr, timeout_ms, out);
}

void vs_dialer_secure(const struct vs_dialer *d, struct vs_channel **chs, unsigned n,
                      int timeout_ms, struct vs_tls_result *res)
{
    if (d->secure) {
        d->secure(d->ctx, chs, n, timeout_ms, res);
        return;
    }
    memset(res, 0, n * sizeof(*res));   /* a transport that needs no securing */
}

int vs_dial_one(const struct vs_dialer *d, const char *addr, int timeout_ms,
                struct vs_channel **out, struct vs_tls_result *res)
{
    struct vs_tls_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof(*res));
    struct vs_channel *ch;
    int rc = vs_dialer_connect(d, addr, timeout_ms, &ch);
    if (rc)
        return rc;
    vs_dialer_secure(d, &ch, 1, timeout_ms, res);
    if (res->err) {
        vs_channel_close(ch);
        return vs_fail(res->err, "%s", res->error);
    }
    *out = ch;
    return 0;
}
