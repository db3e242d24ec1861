#include "transport/tls_stream.h"
#include "transport/tls_internal.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vs_tls_stream {
    struct vs_tls_hs hs;           /* hs.ssl is the session */
    struct vs_tls_result res;
    char peer[80];
    bool ready;                    /* the handshake is done */
    bool broken;                   /* a fatal error: no goodbye (OpenSSL forbids it) */
    short read_events, write_events;
    char failure[320];
};

int vs_tls_stream_new(const struct vs_tls *t, int fd, const char *peer,
                      struct vs_tls_stream **out)
{
    *out = NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return vs_fail(errno, "TLS: cannot set up the connection with %s: %s", peer,
                       strerror(errno));
    /* OpenSSL writes to the socket with write(2): a peer that went away must be an error
     * (EPIPE), not the death of this process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    struct vs_tls_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return vs_fail(ENOMEM, "TLS: out of memory for a session with %s", peer);
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    s->read_events = POLLIN;
    s->write_events = POLLOUT;
    vs_tls_hs_start(&s->hs, t, fd, s->peer, &s->res);
    if (s->hs.state == VS_HS_FAILED) {
        int rc = vs_fail(s->res.err, "%s", s->res.error);
        vs_tls_stream_free(s);
        return rc;
    }
    /* Replies are queued in a buffer that grows and moves: OpenSSL must take them from
     * wherever they are now, and report each record as it goes out. */
    SSL_set_mode(s->hs.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    *out = s;
    return 0;
}

int vs_tls_stream_handshake(struct vs_tls_stream *s)
{
    if (s->ready)
        return 0;
    if (s->hs.state != VS_HS_FAILED)
        vs_tls_hs_step(&s->hs);
    if (s->hs.state == VS_HS_FAILED)
        return vs_fail(s->res.err ? s->res.err : -EPROTO, "%s", s->res.error);
    if (s->hs.state != VS_HS_DONE)
        return -EAGAIN;
    vs_tls_ssl_detach_peer(s->hs.ssl);
    s->ready = true;
    return 0;
}

short vs_tls_stream_handshake_events(const struct vs_tls_stream *s)
{
    return s->hs.events ? s->hs.events : POLLIN;
}

/* An OpenSSL call did not complete: errno and the return of recv/send. */
static ssize_t io_failed(struct vs_tls_stream *s, int ret, int saved_errno, short *events,
                         bool reading)
{
    switch (SSL_get_error(s->hs.ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        ERR_clear_error();
        *events = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        *events = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        if (reading)
            return 0;
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        s->broken = true;
        if (saved_errno == 0 && reading)
            return 0;
        errno = saved_errno ? saved_errno : EPIPE;
        return -1;
    default: {
        s->broken = true;
        int reason = ERR_GET_REASON(ERR_peek_error());
        char why[160];
        vs_tls_error_string(why, sizeof(why));
        if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
            snprintf(s->failure, sizeof(s->failure), "TLS: %s sent the alert '%s'", s->peer,
                     SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET));
        else
            snprintf(s->failure, sizeof(s->failure), "TLS: %s (the data from %s was altered "
                     "in transit, or it is not a TLS peer)", why, s->peer);
        errno = EPROTO;
        return -1;
    }
    }
}

ssize_t vs_tls_stream_read(struct vs_tls_stream *s, void *buf, size_t len)
{
    if (!s->ready) {
        errno = ENOTCONN;
        return -1;
    }
    size_t got = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(s->hs.ssl, buf, len, &got);
    if (ret == 1) {
        s->read_events = POLLIN;
        return (ssize_t)got;
    }
    return io_failed(s, ret, errno, &s->read_events, true);
}

ssize_t vs_tls_stream_write(struct vs_tls_stream *s, const void *buf, size_t len)
{
    if (!s->ready) {
        errno = ENOTCONN;
        return -1;
    }
    if (len == 0)
        return 0;
    size_t written = 0;
    ERR_clear_error();
    int ret = SSL_write_ex(s->hs.ssl, buf, len, &written);
    if (ret == 1) {
        s->write_events = POLLOUT;
        return (ssize_t)written;
    }
    return io_failed(s, ret, errno, &s->write_events, false);
}

short vs_tls_stream_read_events(const struct vs_tls_stream *s)
{
    return s->read_events;
}

short vs_tls_stream_write_events(const struct vs_tls_stream *s)
{
    return s->write_events;
}

bool vs_tls_stream_pending(const struct vs_tls_stream *s)
{
    return s->ready && SSL_has_pending(s->hs.ssl);
}

const char *vs_tls_stream_failure(const struct vs_tls_stream *s)
{
    return s->failure[0] ? s->failure : "TLS: the session failed";
}

void vs_tls_stream_free(struct vs_tls_stream *s)
{
    if (!s)
        return;
    if (s->ready && !s->broken) {
        ERR_clear_error();
        SSL_shutdown(s->hs.ssl);   /* close_notify, if the socket takes it now */
        ERR_clear_error();
    }
    SSL_free(s->hs.ssl);           /* the socket BIO does not close the fd */
    free(s);
}
