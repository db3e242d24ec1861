/* Shared by the TLS configuration (tls_context.c), the handshakes (tls_handshake.c) and
 * the TLS channel (tls_channel.c). Not for other users. */
#ifndef VS_TLS_INTERNAL_H
#define VS_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include "transport/tls.h"

#define VS_TLS_PSK_MAX 64          /* bytes of a pre-shared key */

struct vs_tls {
    SSL_CTX *ctx;
    enum vs_tls_role role;
    enum vs_security_mode mode;
    struct vs_security_opts opts;  /* the file names, for messages */
    unsigned char psk[VS_TLS_PSK_MAX];
    size_t psk_len;
    char key_id[17];               /* first 8 bytes of SHA-256(psk), hex */
    char psk_identity[32];         /* "vmshift-psk-" + key_id: the TLS PSK identity */
};

/* What the callbacks learn about the peer during one handshake (the SSL's ex_data). */
struct vs_tls_peer {
    const struct vs_tls *t;
    bool psk_offered;              /* destination: the source offered a PSK identity ... */
    bool psk_matched;              /* ... and it is ours */
    char psk_offered_id[40];
    bool cert_seen;                /* the peer presented a certificate */
    int verify_err;                /* the first X509_V_ERR_* of its check, 0 if none */
    char cert_subject[160];        /* of the certificate that failed */
    char cert_time[40];            /* its notAfter (expired) or notBefore (not yet valid) */
    bool got_ticket;               /* source: the destination finished its checks */
    int first_rx;                  /* first byte of the first record header OpenSSL read
                                      from the peer (-1: none yet) */
};

/* A new SSL for one connection on fd, with peer attached (ex_data). */
SSL *vs_tls_ssl_new(const struct vs_tls *t, int fd, struct vs_tls_peer *peer);

/* The handshake is over: the SSL no longer refers to its peer record (it lives only as
 * long as the handshake; OpenSSL calls the message callback on every later record too). */
void vs_tls_ssl_detach_peer(SSL *ssl);

/* Wrap a connection whose handshake is done: the TLS channel takes over plain's fd and
 * ssl; plain is freed. */
int vs_tls_channel_new(struct vs_channel *plain, SSL *ssl, struct vs_channel **out);

/* One line for what OpenSSL's error queue holds (and clear it). */
void vs_tls_error_string(char *buf, size_t len);

#endif
