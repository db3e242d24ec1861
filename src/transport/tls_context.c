/* The TLS configuration of one side: TLS 1.3 only, the key or the certificates loaded from
 * the user's files, and the callbacks that note what the peer offered so that a failed
 * handshake can say which check failed. */
#include "transport/tls_internal.h"
#include "common/error.h"
#include "common/log.h"

#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Fastest first (measured with bench/tls_bench.py; AES-GCM wins where the CPU has AES
 * instructions). All three use SHA-256 except the last, which a PSK (SHA-256) excludes. */
#define DEFAULT_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

static int peer_index = -1;
static pthread_once_t peer_index_once = PTHREAD_ONCE_INIT;

static void make_peer_index(void)
{
    peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct vs_tls_peer *peer_of(SSL *ssl)
{
    return SSL_get_ex_data(ssl, peer_index);
}

void vs_tls_error_string(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();   /* the earliest entry: the root cause */
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown TLS error");
    ERR_clear_error();
}

/* A TLS 1.3 session standing for the pre-shared key (what OpenSSL's PSK callbacks trade). */
static SSL_SESSION *psk_session(const struct vs_tls *t, SSL *ssl)
{
    static const unsigned char aes128gcm_sha256[] = { 0x13, 0x01 };
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm_sha256);
    SSL_SESSION *s = SSL_SESSION_new();
    if (!s || !cipher || !SSL_SESSION_set1_master_key(s, t->psk, t->psk_len) ||
        !SSL_SESSION_set_cipher(s, cipher) ||
        !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return NULL;
    }
    return s;
}

/* Source: offer the key under its identity. */
static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                   SSL_SESSION **sess)
{
    const struct vs_tls *t = peer_of(ssl)->t;
    *sess = NULL;
    if (md && md != EVP_sha256())
        return 1;                 /* after a HelloRetryRequest with another hash: none */
    *sess = psk_session(t, ssl);
    if (!*sess)
        return 0;
    *id = (const unsigned char *)t->psk_identity;
    *idlen = strlen(t->psk_identity);
    return 1;
}

/* Destination: note what the source offered; accept our key only. */
static int find_psk(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    struct vs_tls_peer *p = peer_of(ssl);
    const struct vs_tls *t = p->t;
    *sess = NULL;
    p->psk_offered = true;
    size_t n = 0;
    for (size_t i = 0; i < idlen && n + 1 < sizeof(p->psk_offered_id); i++)
        p->psk_offered_id[n++] = isprint(id[i]) ? (char)id[i] : '?';
    p->psk_offered_id[n] = '\0';
    if (t->mode != VS_SEC_PSK || idlen != strlen(t->psk_identity) ||
        memcmp(id, t->psk_identity, idlen) != 0)
        return 1;                 /* no session: the handshake fails without a certificate */
    *sess = psk_session(t, ssl);
    p->psk_matched = *sess != NULL;
    return *sess ? 1 : 0;
}

static void asn1_time_text(const ASN1_TIME *tm, char *buf, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    buf[0] = '\0';
    if (b && ASN1_TIME_print(b, tm)) {
        int n = BIO_read(b, buf, (int)len - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

/* Note the first failure of the check of the peer's certificate chain. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct vs_tls_peer *p = ssl ? peer_of(ssl) : NULL;
    if (!p)
        return ok;
    p->cert_seen = true;
    if (ok || p->verify_err)
        return ok;
    p->verify_err = X509_STORE_CTX_get_error(xs);
    X509 *leaf = X509_STORE_CTX_get0_cert(xs), *cert = X509_STORE_CTX_get_current_cert(xs);
    if (leaf)
        X509_NAME_oneline(X509_get_subject_name(leaf), p->cert_subject,
                          (int)sizeof(p->cert_subject));
    if (cert) {
        if (p->verify_err == X509_V_ERR_CERT_HAS_EXPIRED)
            asn1_time_text(X509_get0_notAfter(cert), p->cert_time, sizeof(p->cert_time));
        else if (p->verify_err == X509_V_ERR_CERT_NOT_YET_VALID)
            asn1_time_text(X509_get0_notBefore(cert), p->cert_time, sizeof(p->cert_time));
    }
    return ok;
}

/* Source: a session ticket means the destination has checked our certificate too. */
static int got_ticket(SSL *ssl, SSL_SESSION *sess)
{
    (void)sess;
    struct vs_tls_peer *p = peer_of(ssl);
    if (p)
        p->got_ticket = true;
    return 0;                     /* not kept: every migration authenticates afresh */
}

static int load_psk(struct vs_tls *t, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return vs_fail(errno, "--tls-psk %s: %s; make a key with `openssl rand -hex 32 > %s` "
                       "and copy it to both hosts", path, strerror(errno), path);
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        vs_warn("--tls-psk %s can be read by other users (mode %03o): whoever reads it can "
                "pose as a migration peer; chmod 600 %s", path, st.st_mode & 0777, path);
    char text[4 * VS_TLS_PSK_MAX];
    size_t n = 0;
    int c, bad = 0;
    while ((c = fgetc(f)) != EOF) {
        if (isspace(c))
            continue;
        if (!isxdigit(c)) {
            bad = c;
            break;
        }
        if (n == sizeof(text)) {
            n++;
            break;
        }
        text[n++] = (char)c;
    }
    fclose(f);
    if (bad)
        return vs_fail(EINVAL, "--tls-psk %s holds '%c', which is not a hex digit; the file "
                       "must hold only the key in hex (`openssl rand -hex 32`)", path, bad);
    if (n % 2 || n / 2 < 16 || n / 2 > VS_TLS_PSK_MAX)
        return vs_fail(EINVAL, "--tls-psk %s holds %zu hex digits; a key is 32 to %d digits "
                       "(16 to %d bytes), in pairs; make one with `openssl rand -hex 32`",
                       path, n, 2 * VS_TLS_PSK_MAX, VS_TLS_PSK_MAX);
    for (size_t i = 0; i < n / 2; i++) {
        char pair[3] = { text[2 * i], text[2 * i + 1], 0 };
        t->psk[i] = (unsigned char)strtoul(pair, NULL, 16);
    }
    t->psk_len = n / 2;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(t->psk, t->psk_len, md, &mdlen, EVP_sha256(), NULL))
        return vs_fail(EIO, "--tls-psk %s: cannot hash the key", path);
    for (int i = 0; i < 8; i++)
        snprintf(t->key_id + 2 * i, 3, "%02x", md[i]);
    snprintf(t->psk_identity, sizeof(t->psk_identity), "vmshift-psk-%s", t->key_id);
    return 0;
}

static int load_failed(const char *opt, const char *path, const char *what)
{
    char why[160];
    vs_tls_error_string(why, sizeof(why));
    FILE *f = fopen(path, "re");
    if (!f)
        return vs_fail(errno, "%s %s: %s", opt, path, strerror(errno));
    fclose(f);
    return vs_fail(EINVAL, "%s %s: cannot load %s (%s)", opt, path, what, why);
}

static void warn_if_not_valid_now(const struct vs_tls *t)
{
    X509 *cert = SSL_CTX_get0_certificate(t->ctx);
    if (!cert)
        return;
    char when[40];
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
        asn1_time_text(X509_get0_notAfter(cert), when, sizeof(when));
        vs_warn("--tls-cert %s expired on %s: peers will refuse it; make a new one",
                t->opts.cert, when);
    } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
        asn1_time_text(X509_get0_notBefore(cert), when, sizeof(when));
        vs_warn("--tls-cert %s is valid only from %s: peers will refuse it until then",
                t->opts.cert, when);
    }
}

static int load_certs(struct vs_tls *t)
{
    const struct vs_security_opts *o = &t->opts;
    if (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert) != 1)
        return load_failed("--tls-cert", o->cert, "a PEM certificate");
    bool loaded = SSL_CTX_use_PrivateKey_file(t->ctx, o->key, SSL_FILETYPE_PEM) == 1;
    if (!loaded && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
        return load_failed("--tls-key", o->key, "a PEM private key");
    if (!loaded || SSL_CTX_check_private_key(t->ctx) != 1) {
        ERR_clear_error();
        return vs_fail(EINVAL, "--tls-key %s is not the key of the certificate in --tls-cert "
                       "%s; give the matching pair", o->key, o->cert);
    }
    if (SSL_CTX_load_verify_locations(t->ctx, o->ca, NULL) != 1)
        return load_failed("--tls-ca", o->ca, "a PEM CA certificate");
    warn_if_not_valid_now(t);
    return 0;
}

static int configure(struct vs_tls *t)
{
    SSL_CTX *ctx = t->ctx;
    const char *suites = getenv("VMSHIFT_TLS_CIPHERSUITES");   /* for measurements */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(ctx, suites && *suites ? suites : DEFAULT_SUITES))
        return vs_fail(EINVAL, "cannot configure TLS 1.3%s%s", suites ? " with suites " : "",
                       suites ? suites : "");
    uint64_t opts = SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE |
                    SSL_OP_NO_RENEGOTIATION;
    if (t->opts.ktls)
        opts |= SSL_OP_ENABLE_KTLS;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    /* Fewer, larger reads from the socket. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);

    bool dst = t->role == VS_TLS_DESTINATION;
    if (t->mode == VS_SEC_PSK) {
        /* The key authenticates both sides; a certificate from the peer means a mismatch
         * (the empty trust store refuses it, and the callback notes it). */
        SSL_CTX_set_verify(ctx, dst ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, verify_cb);
        SSL_CTX_set_num_tickets(ctx, 0);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (dst ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           verify_cb);
        /* The destination's one ticket tells the source its certificate was accepted. */
        SSL_CTX_set_num_tickets(ctx, dst ? 1 : 0);
        if (!dst) {
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE);
            SSL_CTX_sess_set_new_cb(ctx, got_ticket);
        }
    }
    if (dst)
        SSL_CTX_set_psk_find_session_callback(ctx, find_psk);   /* also notes offers */
    else if (t->mode == VS_SEC_PSK)
        SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
    return 0;
}

int vs_tls_new(const struct vs_security_opts *o, enum vs_tls_role role, struct vs_tls **out)
{
    return vs_tls_new_for(o, role, VS_TLS_FOR_MIGRATION, out);
}

int vs_tls_new_for(const struct vs_security_opts *o, enum vs_tls_role role,
                   enum vs_tls_use use, struct vs_tls **out)
{
    *out = NULL;
    if (o->mode == VS_SEC_INSECURE)
        return 0;
    if (o->mode != VS_SEC_PSK && o->mode != VS_SEC_CERT)
        return vs_fail(EINVAL, "no security chosen for the migration");
    pthread_once(&peer_index_once, make_peer_index);
    struct vs_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return vs_fail(ENOMEM, "out of memory for the TLS configuration");
    t->role = role;
    t->use = use;
    t->mode = o->mode;
    t->opts = *o;
    t->ctx = SSL_CTX_new(role == VS_TLS_SOURCE ? TLS_client_method() : TLS_server_method());
    int rc = t->ctx ? 0 : vs_fail(ENOMEM, "cannot create a TLS context");
    if (!rc)
        rc = configure(t);
    if (!rc)
        rc = t->mode == VS_SEC_PSK ? load_psk(t, o->psk) : load_certs(t);
    if (rc) {
        vs_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void vs_tls_free(struct vs_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    OPENSSL_cleanse(t->psk, sizeof(t->psk));
    free(t);
}

/* Note the first byte the peer sent, even when OpenSSL read it before we could peek
 * (a plain vmshift peer answers "VSR1..."). */
static void note_record(int write_p, int version, int content_type, const void *buf,
                        size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    struct vs_tls_peer *p = arg;
    if (!write_p && content_type == SSL3_RT_HEADER && len > 0 && p->first_rx < 0)
        p->first_rx = ((const unsigned char *)buf)[0];
}

void vs_tls_ssl_detach_peer(SSL *ssl)
{
    SSL_set_msg_callback(ssl, NULL);
    SSL_set_msg_callback_arg(ssl, NULL);
    SSL_set_ex_data(ssl, peer_index, NULL);
}

SSL *vs_tls_ssl_new(const struct vs_tls *t, int fd, struct vs_tls_peer *peer)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    memset(peer, 0, sizeof(*peer));
    peer->t = t;
    peer->first_rx = -1;
    SSL_set_msg_callback(ssl, note_record);
    SSL_set_msg_callback_arg(ssl, peer);
    if (!SSL_set_fd(ssl, fd) || !SSL_set_ex_data(ssl, peer_index, peer)) {
        SSL_free(ssl);
        return NULL;
    }
    if (t->mode == VS_SEC_CERT && t->opts.name[0]) {
        /* The peer's certificate must name this host or address. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (!X509_VERIFY_PARAM_set1_ip_asc(vp, t->opts.name)) {
            ERR_clear_error();
            if (!SSL_set1_host(ssl, t->opts.name)) {
                SSL_free(ssl);
                return NULL;
            }
        }
    }
    if (t->role == VS_TLS_SOURCE)
        SSL_set_connect_state(ssl);
    else
        SSL_set_accept_state(ssl);
    return ssl;
}
