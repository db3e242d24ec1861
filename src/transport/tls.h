/* TLS 1.3 (OpenSSL) on migration channels: every stream of a migration runs its own TLS
 * session over its TCP connection, authenticated by a pre-shared key or by certificates
 * both ways (transport/security.h). The source is the TLS client, the destination the
 * server. A peer is authenticated before a single record of the migration stream is
 * exchanged; a failed handshake says which peer failed which check and what to do. */
#ifndef VS_TLS_H
#define VS_TLS_H

#include <stdbool.h>
#include "transport/channel.h"
#include "transport/security.h"

enum vs_tls_role {
    VS_TLS_SOURCE,          /* TLS client */
    VS_TLS_DESTINATION,     /* TLS server */
};

/* What the connections carry: the words of the messages about a failed handshake. */
enum vs_tls_use {
    VS_TLS_FOR_MIGRATION,   /* the source and the destination of a migration */
    VS_TLS_FOR_CONTROL,     /* a control client and a host agent (vmshiftd --listen) */
};

/* A loaded TLS configuration (keys, certificates, CA), shared by all streams of one side.
 * Thread-safe once made. */
struct vs_tls;

/* Load what o names for role. Fails with a message naming the file and the fix (missing,
 * unreadable, not PEM, key not matching the certificate, PSK too short). Returns 0 with
 * *out NULL when o is --insecure. */
int vs_tls_new(const struct vs_security_opts *o, enum vs_tls_role role, struct vs_tls **out);
/* The same for control connections (VS_TLS_SOURCE: the client, VS_TLS_DESTINATION: the
 * server). */
int vs_tls_new_for(const struct vs_security_opts *o, enum vs_tls_role role,
                   enum vs_tls_use use, struct vs_tls **out);
void vs_tls_free(struct vs_tls *t);

/* The outcome of securing one connection. */
struct vs_tls_result {
    int err;                /* 0: secured; else a negative errno */
    char error[480];        /* why not: which peer, which check failed, what to do */
    bool plain_peer;        /* the peer spoke the vmshift stream without TLS (--insecure):
                               the caller may tell it why, unencrypted, before closing */
};

/* Run the TLS handshakes of n connected channels in parallel, within timeout_ms for all
 * of them (0: no limit). For every secured one chs[i] is replaced by its TLS channel (the
 * plain one is gone); a failed one stays in chs[i] as it was, res[i] says why, and the
 * caller closes it. With t NULL (--insecure) nothing happens. Returns how many are secured. */
unsigned vs_tls_secure(struct vs_tls *t, struct vs_channel **chs, unsigned n, int timeout_ms,
                       struct vs_tls_result *res);

#endif
