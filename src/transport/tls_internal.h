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
    enum vs_tls_use use;           /* migration streams or control connections: the words
                                      of the messages */
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

enum vs_tls_hs_state { VS_HS_PEEK, VS_HS_RUN, VS_HS_TICKET, VS_HS_DONE, VS_HS_FAILED };

/* One handshake on a non-blocking socket (tls_handshake.c), stepped by its owner's poll
 * loop: vs_tls_secure for migration streams, tls_stream.c for control connections. */
struct vs_tls_hs {
    int fd;
    const char *peer;              /* "198.18.0.2:4444", for messages (not owned) */
    SSL *ssl;
    struct vs_tls_peer info;
    enum vs_tls_hs_state state;
    short events;                  /* what to poll for while it waits */
    struct vs_tls_result *res;     /* why it failed */
};

/* Start a handshake on fd (already non-blocking) in t's role; h->state is VS_HS_FAILED
 * when it cannot start. */
void vs_tls_hs_start(struct vs_tls_hs *h, const struct vs_tls *t, int fd, const char *peer,
                     struct vs_tls_result *res);
/* Advance it as far as it goes without blocking. */
void vs_tls_hs_step(struct vs_tls_hs *h);
/* Give it up: the message goes into h->res. */
void vs_tls_hs_fail(struct vs_tls_hs *h, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "the destination 1.2.3.4:5", "the host agent 1.2.3.4:5", ... */
const char *vs_tls_hs_peer_name(const struct vs_tls_hs *h, char *buf, size_t len);

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
