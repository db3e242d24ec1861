#include "transport/dialer.h"
#include "common/error.h"
#include "transport/tcp.h"

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

void vs_dialer_tcp_tls(struct vs_dialer *d, struct vs_tls *tls)
{
    d->connect = tcp_connect;
    d->secure = tls_secure;
    d->ctx = tls;
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
