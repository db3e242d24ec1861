/* TLS handshakes: one, stepped by its owner's poll loop (vs_tls_hs_*), or several
 * connections at once (vs_tls_secure: one poll loop, one deadline for all); and what to
 * tell the user when one fails: which peer, which check, what to do. Before OpenSSL
 * reads anything, the first byte from the peer is peeked at, so a peer that speaks
 * vmshift without TLS (a migration stream, or a control greeting), or no TLS at all, is
 * named as such rather than as a TLS parse error. */
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
#define QMP_FIRST_BYTE '{'         /* of a control server's greeting, a client's request */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void vs_tls_hs_fail(struct vs_tls_hs *h, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->res->error, sizeof(h->res->error), fmt, ap);
    va_end(ap);
    h->res->err = err < 0 ? err : -err;
    h->state = VS_HS_FAILED;
}
#define fail vs_tls_hs_fail

static bool is_source(const struct vs_tls_hs *h)
{
    return h->info.t->role == VS_TLS_SOURCE;
}

static bool for_control(const struct vs_tls_hs *h)
{
    return h->info.t->use == VS_TLS_FOR_CONTROL;
}

/* What this side and the peer are called in messages. */
static const char *me(const struct vs_tls_hs *h)
{
    if (for_control(h))
        return is_source(h) ? "client" : "host agent";
    return is_source(h) ? "source" : "destination";
}

static const char *them(const struct vs_tls_hs *h)
{
    if (for_control(h))
        return is_source(h) ? "host agent" : "control client";
    return is_source(h) ? "destination" : "source";
}

/* "the destination 1.2.3.4:5" / "the source 1.2.3.4:5" / "the host agent 1.2.3.4:5" */
const char *vs_tls_hs_peer_name(const struct vs_tls_hs *h, char *buf, size_t len)
{
    snprintf(buf, len, "the %s %s", them(h), h->peer);
    return buf;
}
#define peer_name vs_tls_hs_peer_name

/* The peer spoke the vmshift stream without TLS. */
static void plain_peer(struct vs_tls_hs *h, const char *who)
{
    h->res->plain_peer = true;
    if (for_control(h)) {
        fail(h, EPROTO, is_source(h) ?
             "TLS: %s answered without TLS: it serves control connections with --insecure, "
             "this client uses %s; give both sides the same security options" :
             "TLS: %s speaks the control protocol without TLS (--insecure), but this host "
             "agent requires %s; give the client the same security options", who,
             vs_security_flags(h->info.t->mode));
        return;
    }
    fail(h, EPROTO, is_source(h) ?
         "TLS: %s answered without TLS: it runs `vmshift receive --insecure`, this source "
         "uses %s; give both sides the same security options" :
         "TLS: %s speaks vmshift without TLS (it was started with --insecure), but this "
         "destination requires %s; migrate with the same security options", who,
         vs_security_flags(h->info.t->mode));
}

/* The peer's first byte says what it speaks. Returns true to go on with TLS. */
static int plain_first_byte(const struct vs_tls_hs *h)
{
    return for_control(h) ? QMP_FIRST_BYTE : VMSHIFT_FIRST_BYTE;
}

static bool check_first_byte(struct vs_tls_hs *h)
{
    unsigned char b;
    char who[112];
    ssize_t n = recv(h->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        h->events = POLLIN;
        return false;
    }
    peer_name(h, who, sizeof(who));
    if (n < 0 && !(errno == ECONNRESET && is_source(h))) {
        fail(h, errno, "TLS: %s failed before the handshake: %s", who, strerror(errno));
        return false;
    }
    if (n <= 0) {     /* closed, or reset with our hello unread */
        if (is_source(h))
            fail(h, ECONNRESET, "TLS: %s closed the connection during the TLS handshake: it "
                 "refused this %s (its log says why)", who, me(h));
        else
            fail(h, ECONNRESET, "TLS: %s closed the connection before starting TLS", who);
        return false;
    }
    if (b == TLS_RECORD_HANDSHAKE || b == TLS_RECORD_ALERT) {
        h->state = VS_HS_RUN;
        return true;
    }
    if (b == plain_first_byte(h)) {
        plain_peer(h, who);
        return false;
    }
    const char *expected = for_control(h) ? (is_source(h) ? "host agent (vmshiftd --listen)"
                                                          : "control client")
                                          : (is_source(h) ? "receiver" : "source");
    fail(h, EPROTO, "TLS: %s does not speak TLS (its first byte is 0x%02x); is it a vmshift "
         "%s?", who, b, expected);
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
static void explain_verify(struct vs_tls_hs *h, const char *who)
{
    const struct vs_tls_peer *p = &h->info;
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
static void explain(struct vs_tls_hs *h, int ssl_err, int saved_errno)
{
    const struct vs_tls_peer *p = &h->info;
    const struct vs_tls *t = p->t;
    char who[112], lib_why[160];
    peer_name(h, who, sizeof(who));
    int reason = ERR_GET_REASON(ERR_peek_error());
    vs_tls_error_string(lib_why, sizeof(lib_why));
    int alert = reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256
                ? reason - SSL_AD_REASON_OFFSET : -1;
    const char *alert_text = alert >= 0 ? SSL_alert_desc_string_long(alert) : "";

    if (p->first_rx == plain_first_byte(h)) {
        plain_peer(h, who);     /* it answered before we could peek */
    } else if (p->verify_err || (is_source(h) && t->mode == VS_SEC_PSK && p->cert_seen)) {
        explain_verify(h, who);
    } else if (!is_source(h) && t->mode == VS_SEC_PSK) {
        if (!p->psk_offered)
            fail(h, EACCES, "TLS: %s offered no pre-shared key (it uses certificates?); give "
                 "both sides --tls-psk with the same key file", who);
        else
            fail(h, EACCES, "TLS: %s holds a different pre-shared key (identity %s) than "
                 "this %s's --tls-psk %s (key id %s); give both sides the same key file", who,
                 p->psk_offered_id, me(h), t->opts.psk, t->key_id);
    } else if (!is_source(h) && p->psk_offered) {
        fail(h, EACCES, "TLS: %s offered a pre-shared key, but this %s uses certificates; "
             "give both sides the same security options", who, me(h));
    } else if (alert >= 0 && is_source(h) && t->mode == VS_SEC_PSK) {
        fail(h, EACCES, "TLS: %s refused the handshake (alert '%s'): it does not hold this "
             "%s's pre-shared key (key id %s of --tls-psk %s), or it uses certificates; "
             "give both sides the same key file", who, alert_text, me(h), t->key_id,
             t->opts.psk);
    } else if (alert >= 0 && cert_alert(alert)) {
        const char *self = me(h);
        if (alert == SSL_AD_CERTIFICATE_EXPIRED)
            fail(h, EACCES, "TLS: %s refused this %s's certificate %s as expired (alert '%s'); "
                 "give this host a new certificate", who, self, t->opts.cert, alert_text);
        else if (alert == SSL_AD_UNKNOWN_CA)
            fail(h, EACCES, "TLS: %s rejected this %s's certificate %s (alert '%s'): the CA in "
                 "its --tls-ca did not sign it; use certificates from one CA", who, self,
                 t->opts.cert, alert_text);
        else
            fail(h, EACCES, "TLS: %s rejected this %s's certificate %s (alert '%s'): check "
                 "that the CA in its --tls-ca signed it and that its --tls-name, if any, "
                 "names it", who, self, t->opts.cert, alert_text);
    } else if (alert >= 0) {
        fail(h, EACCES, "TLS: %s refused the handshake (alert '%s'); does it use "
             "--tls-psk? Give both sides the same security options", who, alert_text);
    } else if (!is_source(h) && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        fail(h, EACCES, "TLS: %s sent no certificate: both sides need --tls-cert, --tls-key "
             "and --tls-ca", who);
    } else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN) {
        fail(h, saved_errno ? saved_errno : ECONNRESET, "TLS: %s closed the connection during "
             "the handshake%s%s: it refused this %s (its log says why)", who,
             saved_errno ? ": " : "", saved_errno ? strerror(saved_errno) : "", me(h));
    } else {
        fail(h, EPROTO, "TLS: the handshake with %s failed: %s", who, lib_why);
    }
}

void vs_tls_hs_step(struct vs_tls_hs *h)
{
    for (;;) {
        if (h->state == VS_HS_PEEK && !check_first_byte(h))
            return;
        int ret, err, saved;
        ERR_clear_error();
        if (h->state == VS_HS_RUN) {
            ret = SSL_do_handshake(h->ssl);
            saved = errno;
            if (ret == 1) {
                /* With certificates, wait for the destination's ticket: its verdict on
                 * ours. A key is checked before the destination answers at all. */
                h->state = is_source(h) && h->info.t->mode == VS_SEC_CERT ? VS_HS_TICKET
                                                                            : VS_HS_DONE;
                continue;
            }
        } else if (h->state == VS_HS_TICKET) {
            unsigned char b;
            size_t got = 0;
            if (h->info.got_ticket) {
                h->state = VS_HS_DONE;
                continue;
            }
            /* Peeked, not read: a host agent greets its client right after its ticket. */
            ret = SSL_peek_ex(h->ssl, &b, 1, &got);
            saved = errno;
            if (ret == 1 && for_control(h) && h->info.got_ticket) {
                h->state = VS_HS_DONE;
                continue;
            }
            if (ret == 1) {
                fail(h, EPROTO, "TLS: the %s %s sent data before the %s spoke", them(h),
                     h->peer, me(h));
                return;
            }
        } else {
            return;                /* done or failed */
        }
        err = SSL_get_error(h->ssl, ret);
        if (err == SSL_ERROR_WANT_READ) {
            h->events = POLLIN;
            if (h->state == VS_HS_TICKET && h->info.got_ticket)
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

void vs_tls_hs_start(struct vs_tls_hs *h, const struct vs_tls *t, int fd, const char *peer,
                     struct vs_tls_result *res)
{
    memset(h, 0, sizeof(*h));
    h->fd = fd;
    h->peer = peer;
    h->res = res;
    h->info.t = t;                 /* for messages, before vs_tls_ssl_new sets it too */
    h->ssl = vs_tls_ssl_new(t, fd, &h->info);
    if (!h->ssl) {
        char why[160];
        vs_tls_error_string(why, sizeof(why));
        fail(h, ENOMEM, "TLS: cannot start a session with %s: %s", peer, why);
        return;
    }
    /* The destination looks at the source's first byte before TLS reads it; the source
     * sends its hello first and looks at the answer's first byte. */
    h->state = t->role == VS_TLS_DESTINATION ? VS_HS_PEEK : VS_HS_RUN;
    h->events = POLLIN;
    if (h->state == VS_HS_RUN) {
        vs_tls_hs_step(h);
        if (h->state == VS_HS_RUN && h->events == POLLIN)
            h->state = VS_HS_PEEK;
    }
}

/* One migration stream's handshake: the plain channel and its fd's flags before. */
struct stream_hs {
    struct vs_tls_hs hs;
    struct vs_channel *plain;
    int fl;
};

static void start(struct stream_hs *s, const struct vs_tls *t, struct vs_tls_result *res)
{
    s->fl = fcntl(s->plain->fd, F_GETFL);
    if (s->fl < 0 || fcntl(s->plain->fd, F_SETFL, s->fl | O_NONBLOCK) < 0) {
        s->hs.res = res;
        s->hs.peer = s->plain->peer;
        fail(&s->hs, errno, "TLS: cannot set up the connection to %s: %s", s->plain->peer,
             strerror(errno));
        return;
    }
    vs_tls_hs_start(&s->hs, t, s->plain->fd, s->plain->peer, res);
}

static void finish(struct stream_hs *s, struct vs_channel **ch)
{
    struct vs_tls_hs *h = &s->hs;
    if (s->fl >= 0)
        fcntl(s->plain->fd, F_SETFL, s->fl);
    if (h->state == VS_HS_DONE) {
        vs_tls_ssl_detach_peer(h->ssl);
        int rc = vs_tls_channel_new(s->plain, h->ssl, ch);
        if (rc == 0)
            return;
        fail(h, rc, "%s", vs_last_error());
    }
    SSL_free(h->ssl);              /* the fd stays with the plain channel */
    h->ssl = NULL;
}

static bool waiting(const struct vs_tls_hs *h)
{
    return h->state != VS_HS_DONE && h->state != VS_HS_FAILED;
}

/* Every handshake still waiting fails: stopped, poll failed, or timed out. */
static void give_up(struct stream_hs *hs, unsigned n, bool stopped, int ready, int timeout_ms)
{
    for (unsigned i = 0; i < n; i++) {
        struct vs_tls_hs *h = &hs[i].hs;
        char who[112];
        if (!waiting(h))
            continue;
        peer_name(h, who, sizeof(who));
        if (stopped)
            fail(h, EINTR, "TLS: stopped (%s) during the handshake with %s",
                 vs_stop_signal_name(vs_stop_signal()), who);
        else if (ready < 0)
            fail(h, errno, "TLS: waiting for %s failed: %s", who, strerror(errno));
        else
            fail(h, ETIMEDOUT, "TLS: %s did not complete the TLS handshake within %.1f s: a "
                 "silent or trickling peer", who, timeout_ms / 1000.0);
    }
}

unsigned vs_tls_secure(struct vs_tls *t, struct vs_channel **chs, unsigned n, int timeout_ms,
                       struct vs_tls_result *res)
{
    for (unsigned i = 0; i < n; i++)
        memset(&res[i], 0, sizeof(res[i]));
    if (!t || n == 0)
        return n;
    struct stream_hs hs[n];
    struct pollfd pfd[n + 1];
    memset(hs, 0, sizeof(hs));
    for (unsigned i = 0; i < n; i++) {
        hs[i].plain = chs[i];
        start(&hs[i], t, &res[i]);
    }
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        unsigned nwait = 0;
        for (unsigned i = 0; i < n; i++)
            if (waiting(&hs[i].hs))
                pfd[nwait++] = (struct pollfd){ .fd = hs[i].hs.fd, .events = hs[i].hs.events };
        if (!nwait)
            break;
        /* A stop signal (SIGTERM, SIGINT) ends the wait: the process is going away. */
        pfd[nwait] = (struct pollfd){ .fd = vs_stop_signal_fd(), .events = POLLIN };
        int wait = -1;
        if (timeout_ms > 0) {
            uint64_t now = now_ms();
            wait = now >= deadline ? 0 : (int)(deadline - now);
        }
        int ready = poll(pfd, nwait + 1, wait);
        if (ready < 0 && errno == EINTR)
            continue;
        bool stopped = ready > 0 && pfd[nwait].revents;
        if (ready <= 0 || stopped) {
            give_up(hs, n, stopped, ready, timeout_ms);
            break;
        }
        for (unsigned i = 0, k = 0; i < n; i++) {
            if (!waiting(&hs[i].hs))
                continue;
            if (pfd[k++].revents)
                vs_tls_hs_step(&hs[i].hs);
        }
    }
    unsigned secured = 0;
    for (unsigned i = 0; i < n; i++) {
        finish(&hs[i], &chs[i]);
        secured += hs[i].hs.state == VS_HS_DONE;
    }
    return secured;
}
