/* TLS handshakes of several connections at once (non-blocking, one poll loop, one
 * deadline for all), and what to tell the user when one fails: which peer, which check,
 * what to do. Before OpenSSL reads anything, the first byte from the peer is peeked at,
 * so a peer that speaks the vmshift stream without TLS, or no TLS at all, is named as
 * such rather than as a TLS parse error. */
#include "transport/tls_internal.h"
#include "common/error.h"
#include "common/stop_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define TLS_RECORD_HANDSHAKE 0x16
#define TLS_RECORD_ALERT 0x15
#define VMSHIFT_FIRST_BYTE 'V'     /* of the record magic "VSR1" */

enum hs_state { HS_PEEK, HS_RUN, HS_TICKET, HS_DONE, HS_FAILED };

struct hs {
    struct vs_channel *plain;
    SSL *ssl;
    struct vs_tls_peer peer;
    enum hs_state state;
    short events;                  /* what to poll for */
    int fl;                        /* the fd's flags before (blocking) */
    struct vs_tls_result *res;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void __attribute__((format(printf, 3, 4)))
fail(struct hs *h, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->res->error, sizeof(h->res->error), fmt, ap);
    va_end(ap);
    h->res->err = err < 0 ? err : -err;
    h->state = HS_FAILED;
}

static bool is_source(const struct hs *h)
{
    return h->peer.t->role == VS_TLS_SOURCE;
}

/* "the destination 1.2.3.4:5" / "the source 1.2.3.4:5" */
static const char *peer_name(const struct hs *h, char *buf, size_t len)
{
    snprintf(buf, len, "the %s %s", is_source(h) ? "destination" : "source", h->plain->peer);
    return buf;
}

/* The peer spoke the vmshift stream without TLS. */
static void plain_peer(struct hs *h, const char *who)
{
    h->res->plain_peer = true;
    fail(h, EPROTO, is_source(h) ?
         "TLS: %s answered without TLS: it runs `vmshift receive --insecure`, this source "
         "uses %s; give both sides the same security options" :
         "TLS: %s speaks vmshift without TLS (it was started with --insecure), but this "
         "destination requires %s; migrate with the same security options", who,
         vs_security_flags(h->peer.t->mode));
}

/* The peer's first byte says what it speaks. Returns true to go on with TLS. */
static bool check_first_byte(struct hs *h)
{
    unsigned char b;
    char who[112];
    ssize_t n = recv(h->plain->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        h->events = POLLIN;
        return false;
    }
    peer_name(h, who, sizeof(who));
    if (n < 0) {
        fail(h, errno, "TLS: %s failed before the handshake: %s", who, strerror(errno));
        return false;
    }
    if (n == 0) {
        fail(h, ECONNRESET, is_source(h) ?
             "TLS: %s closed the connection during the TLS handshake: it refused this source "
             "(its log says why)" : "TLS: %s closed the connection before starting TLS", who);
        return false;
    }
    if (b == TLS_RECORD_HANDSHAKE || b == TLS_RECORD_ALERT) {
        h->state = HS_RUN;
        return true;
    }
    if (b == VMSHIFT_FIRST_BYTE) {
        plain_peer(h, who);
        return false;
    }
    fail(h, EPROTO, "TLS: %s does not speak TLS (its first byte is 0x%02x); is it a vmshift "
         "%s?", who, b, is_source(h) ? "receiver" : "source");
    return false;
}

static bool cert_alert(int alert)
{
    switch (alert) {
    case SSL_AD_BAD_CERTIFICATE: case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED: case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN: case SSL_AD_UNKNOWN_CA: case SSL_AD_ACCESS_DENIED:
    case SSL_AD_DECRYPT_ERROR: case SSL_AD_CERTIFICATE_REQUIRED:
        return true;
    default:
        return false;
    }
}

/* Our check of the peer's certificate failed. */
static void explain_verify(struct hs *h, const char *who)
{
    const struct vs_tls_peer *p = &h->peer;
    const struct vs_security_opts *o = &p->t->opts;
    const char *subj = p->cert_subject[0] ? p->cert_subject : "?";
    int e = p->verify_err;
    if (p->t->mode == VS_SEC_PSK)
        fail(h, EACCES, "TLS: %s authenticated with a certificate, not with the pre-shared "
             "key: it runs with --tls-cert; give both sides --tls-psk with the same key file",
             who);
    else if (e == X509_V_ERR_CERT_HAS_EXPIRED)
        fail(h, EACCES, "TLS: %s's certificate (%s) expired on %s; give it a new one", who,
             subj, p->cert_time);
    else if (e == X509_V_ERR_CERT_NOT_YET_VALID)
        fail(h, EACCES, "TLS: %s's certificate (%s) is not valid before %s; check both "
             "hosts' clocks", who, subj, p->cert_time);
    else if (e == X509_V_ERR_HOSTNAME_MISMATCH || e == X509_V_ERR_IP_ADDRESS_MISMATCH)
        fail(h, EACCES, "TLS: %s's certificate (%s) is not issued to '%s', the name "
             "--tls-name asks for; give the right name or the right certificate", who, subj,
             o->name);
    else if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
             e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
             e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
             e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
             e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
             e == X509_V_ERR_CERT_SIGNATURE_FAILURE)
        fail(h, EACCES, "TLS: %s presented a certificate (%s) that the CA in --tls-ca %s did "
             "not sign (%s); both sides need certificates from the CA the other trusts", who,
             subj, o->ca, X509_verify_cert_error_string(e));
    else
        fail(h, EACCES, "TLS: %s's certificate (%s) failed the check: %s", who, subj,
             X509_verify_cert_error_string(e));
}

/* The handshake failed: find the most telling reason. */
static void explain(struct hs *h, int ssl_err, int saved_errno)
{
    const struct vs_tls_peer *p = &h->peer;
    const struct vs_tls *t = p->t;
    char who[112], lib_why[160];
    peer_name(h, who, sizeof(who));
    int reason = ERR_GET_REASON(ERR_peek_error());
    vs_tls_error_string(lib_why, sizeof(lib_why));
    int alert = reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256
                ? reason - SSL_AD_REASON_OFFSET : -1;
    const char *alert_text = alert >= 0 ? SSL_alert_desc_string_long(alert) : "";

    if (p->first_rx == VMSHIFT_FIRST_BYTE) {
        plain_peer(h, who);     /* it answered before we could peek */
    } else if (p->verify_err || (is_source(h) && t->mode == VS_SEC_PSK && p->cert_seen)) {
        explain_verify(h, who);
    } else if (!is_source(h) && t->mode == VS_SEC_PSK) {
        if (!p->psk_offered)
            fail(h, EACCES, "TLS: %s offered no pre-shared key (it uses certificates?); give "
                 "both sides --tls-psk with the same key file", who);
        else
            fail(h, EACCES, "TLS: %s holds a different pre-shared key (identity %s) than "
                 "this destination's --tls-psk %s (key id %s); give both sides the same key "
                 "file", who, p->psk_offered_id, t->opts.psk, t->key_id);
    } else if (!is_source(h) && p->psk_offered) {
        fail(h, EACCES, "TLS: %s offered a pre-shared key, but this destination uses "
             "certificates; give both sides the same security options", who);
    } else if (alert >= 0 && is_source(h) && t->mode == VS_SEC_PSK) {
        fail(h, EACCES, "TLS: %s refused the handshake (alert '%s'): it does not hold this "
             "source's pre-shared key (key id %s of --tls-psk %s), or it uses certificates; "
             "give both sides the same key file", who, alert_text, t->key_id, t->opts.psk);
    } else if (alert >= 0 && cert_alert(alert)) {
        const char *me = is_source(h) ? "source" : "destination";
        if (alert == SSL_AD_CERTIFICATE_EXPIRED)
            fail(h, EACCES, "TLS: %s refused this %s's certificate %s as expired (alert '%s'); "
                 "give this host a new certificate", who, me, t->opts.cert, alert_text);
        else if (alert == SSL_AD_UNKNOWN_CA)
            fail(h, EACCES, "TLS: %s rejected this %s's certificate %s (alert '%s'): the CA in "
                 "its --tls-ca did not sign it; use certificates from one CA", who, me,
                 t->opts.cert, alert_text);
        else
            fail(h, EACCES, "TLS: %s rejected this %s's certificate %s (alert '%s'): check "
                 "that the CA in its --tls-ca signed it and that its --tls-name, if any, "
                 "names it", who, me, t->opts.cert, alert_text);
    } else if (alert >= 0) {
        fail(h, EACCES, "TLS: %s refused the handshake (alert '%s'); does it use "
             "--tls-psk? Give both sides the same security options", who, alert_text);
    } else if (!is_source(h) && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        fail(h, EACCES, "TLS: %s sent no certificate: both sides need --tls-cert, --tls-key "
             "and --tls-ca", who);
    } else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN) {
        fail(h, saved_errno ? saved_errno : ECONNRESET, "TLS: %s closed the connection during "
             "the handshake%s%s: it refused this %s (its log says why)", who,
             saved_errno ? ": " : "", saved_errno ? strerror(saved_errno) : "",
             is_source(h) ? "source" : "destination");
    } else {
        fail(h, EPROTO, "TLS: the handshake with %s failed: %s", who, lib_why);
    }
}

/* Advance one handshake as far as it goes without blocking. */
static void step(struct hs *h)
{
    for (;;) {
        if (h->state == HS_PEEK && !check_first_byte(h))
            return;
        int ret, err, saved;
        ERR_clear_error();
        if (h->state == HS_RUN) {
            ret = SSL_do_handshake(h->ssl);
            saved = errno;
            if (ret == 1) {
                /* With certificates, wait for the destination's ticket: its verdict on
                 * ours. A key is checked before the destination answers at all. */
                h->state = is_source(h) && h->peer.t->mode == VS_SEC_CERT ? HS_TICKET : HS_DONE;
                continue;
            }
        } else if (h->state == HS_TICKET) {
            unsigned char b;
            size_t got = 0;
            if (h->peer.got_ticket) {
                h->state = HS_DONE;
                continue;
            }
            ret = SSL_read_ex(h->ssl, &b, 1, &got);
            saved = errno;
            if (ret == 1) {
                fail(h, EPROTO, "TLS: the destination %s sent data before the source spoke",
                     h->plain->peer);
                return;
            }
        } else {
            return;                /* done or failed */
        }
        err = SSL_get_error(h->ssl, ret);
        if (err == SSL_ERROR_WANT_READ) {
            h->events = POLLIN;
            if (h->state == HS_TICKET && h->peer.got_ticket)
                continue;
            return;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            h->events = POLLOUT;
            return;
        }
        explain(h, err, saved);
        return;
    }
}

static void start(struct hs *h, const struct vs_tls *t)
{
    h->fl = fcntl(h->plain->fd, F_GETFL);
    if (h->fl < 0 || fcntl(h->plain->fd, F_SETFL, h->fl | O_NONBLOCK) < 0) {
        fail(h, errno, "TLS: cannot set up the connection to %s: %s", h->plain->peer,
             strerror(errno));
        return;
    }
    h->ssl = vs_tls_ssl_new(t, h->plain->fd, &h->peer);
    if (!h->ssl) {
        char why[160];
        vs_tls_error_string(why, sizeof(why));
        fail(h, ENOMEM, "TLS: cannot start a session with %s: %s", h->plain->peer, why);
        return;
    }
    /* The destination looks at the source's first byte before TLS reads it; the source
     * sends its hello first and looks at the answer's first byte. */
    h->state = t->role == VS_TLS_DESTINATION ? HS_PEEK : HS_RUN;
    h->events = POLLIN;
    if (h->state == HS_RUN) {
        step(h);
        if (h->state == HS_RUN && h->events == POLLIN)
            h->state = HS_PEEK;
    }
}

static void finish(struct hs *h, struct vs_channel **ch)
{
    if (h->fl >= 0)
        fcntl(h->plain->fd, F_SETFL, h->fl);
    if (h->state == HS_DONE) {
        vs_tls_ssl_detach_peer(h->ssl);
        int rc = vs_tls_channel_new(h->plain, h->ssl, ch);
        if (rc == 0)
            return;
        fail(h, rc, "%s", vs_last_error());
    }
    SSL_free(h->ssl);              /* the fd stays with the plain channel */
    h->ssl = NULL;
}

unsigned vs_tls_secure(struct vs_tls *t, struct vs_channel **chs, unsigned n, int timeout_ms,
                       struct vs_tls_result *res)
{
    for (unsigned i = 0; i < n; i++)
        memset(&res[i], 0, sizeof(res[i]));
    if (!t || n == 0)
        return n;
    struct hs hs[n];
    struct pollfd pfd[n + 1];
    memset(hs, 0, sizeof(hs));
    for (unsigned i = 0; i < n; i++) {
        hs[i].plain = chs[i];
        hs[i].res = &res[i];
        hs[i].fl = -1;
        start(&hs[i], t);
    }
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        unsigned waiting = 0;
        for (unsigned i = 0; i < n; i++)
            if (hs[i].state != HS_DONE && hs[i].state != HS_FAILED)
                pfd[waiting++] = (struct pollfd){ .fd = hs[i].plain->fd, .events = hs[i].events };
        if (!waiting)
            break;
        /* A stop signal (SIGTERM, SIGINT) ends the wait: the process is going away. */
        pfd[waiting] = (struct pollfd){ .fd = vs_stop_signal_fd(), .events = POLLIN };
        int wait = -1;
        if (timeout_ms > 0) {
            uint64_t now = now_ms();
            wait = now >= deadline ? 0 : (int)(deadline - now);
        }
        int ready = poll(pfd, waiting + 1, wait);
        if (ready < 0 && errno == EINTR)
            continue;
        bool stopped = ready > 0 && pfd[waiting].revents;
        if (ready <= 0 || stopped) {
            for (unsigned i = 0; i < n; i++) {
                char who[112];
                if (hs[i].state == HS_DONE || hs[i].state == HS_FAILED)
                    continue;
                if (stopped)
                    fail(&hs[i], EINTR, "TLS: stopped (%s) during the handshake with %s",
                         vs_stop_signal_name(vs_stop_signal()),
                         peer_name(&hs[i], who, sizeof(who)));
                else if (ready < 0)
                    fail(&hs[i], errno, "TLS: waiting for %s failed: %s",
                         peer_name(&hs[i], who, sizeof(who)), strerror(errno));
                else
                    fail(&hs[i], ETIMEDOUT, "TLS: %s did not complete the TLS handshake "
                         "within %.1f s: a silent or trickling peer", peer_name(&hs[i], who,
                         sizeof(who)), timeout_ms / 1000.0);
            }
            break;
        }
        for (unsigned i = 0, k = 0; i < n; i++) {
            if (hs[i].state == HS_DONE || hs[i].state == HS_FAILED)
                continue;
            if (pfd[k++].revents)
                step(&hs[i]);
        }
    }
    unsigned secured = 0;
    for (unsigned i = 0; i < n; i++) {
        finish(&hs[i], &chs[i]);
        secured += hs[i].state == HS_DONE;
    }
    return secured;
}
