/* How the channels of a migration are secured, as the user chose it: TLS 1.3 with a
 * pre-shared key (--tls-psk FILE), TLS 1.3 with certificates both ways (--tls-cert,
 * --tls-key, --tls-ca, optionally --tls-name), or plain TCP (--insecure). There is no
 * default: a command that migrates refuses to start until one is chosen. Both ends must
 * choose the same kind. */
#ifndef VS_SECURITY_H
#define VS_SECURITY_H

#include <stdbool.h>

enum vs_security_mode {
    VS_SEC_UNSET = 0,
    VS_SEC_INSECURE,        /* plain TCP */
    VS_SEC_PSK,             /* TLS 1.3, external pre-shared key */
    VS_SEC_CERT,            /* TLS 1.3, X.509 certificates, verified both ways */
};

#define VS_SEC_PATH_MAX 256

struct vs_security_opts {
    enum vs_security_mode mode;   /* set by vs_security_finish */
    bool insecure;
    char psk[VS_SEC_PATH_MAX];    /* key file: hex digits */
    char cert[VS_SEC_PATH_MAX];   /* this side's certificate (PEM, chain allowed) */
    char key[VS_SEC_PATH_MAX];    /* its private key (PEM) */
    char ca[VS_SEC_PATH_MAX];     /* the CA the peer's certificate must chain to (PEM) */
    char name[128];               /* the name the peer's certificate must carry ("": any
                                     certificate the CA signed) */
    bool ktls;                    /* ask OpenSSL for kernel TLS (used when the kernel can) */
};

/* The options, without their "--" (the control protocol spells them with '_'). */
#define VS_SEC_OPTION_NAMES "tls-psk, tls-cert, tls-key, tls-ca, tls-name, insecure, ktls"

/* Set the option called name ("tls-psk", "tls-cert", "tls-key", "tls-ca", "tls-name",
 * "insecure", "ktls"; '_' may stand for '-') to value (NULL for the flags). Returns
 * -ENOENT if name is not a security option. */
int vs_security_set(struct vs_security_opts *o, const char *name, const char *value);

/* Check the combination and set o->mode: exactly one of --insecure, --tls-psk, or the
 * three certificate options. cli: name the options as command-line flags ("--tls-psk
 * FILE"), otherwise as control-protocol fields ("tls_psk=FILE"). The message of a missing
 * choice says what to pass. */
int vs_security_finish(struct vs_security_opts *o, bool cli);
/* The same for what is secured, named in the messages ("the control connections"). */
int vs_security_finish_for(struct vs_security_opts *o, bool cli, const char *what);

/* "insecure", "tls-psk", "tls-cert" ("unset" before vs_security_finish). */
const char *vs_security_mode_name(enum vs_security_mode m);

/* What the user passed, as the options to give the other side, for messages:
 * "--tls-psk FILE", "--tls-cert/--tls-key/--tls-ca", "--insecure". */
const char *vs_security_flags(enum vs_security_mode m);

#endif
