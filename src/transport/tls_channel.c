/* The TLS channel: the channel ops over an SSL whose handshake is done. Writes gather
 * small pieces (record headers, page lists) into full TLS records and hand large ones
 * (page data) to OpenSSL as they are; the encrypted records collect in a 256 KiB buffer
 * that goes to the socket when full and at the end of every write_all (one send per
 * 16 KiB record was measured to lose a third of the throughput on a rate-limited link).
 * Reads come from OpenSSL's read-ahead buffer. */
#include "transport/tls_internal.h"
#include "common/error.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STAGE_BYTES 16384           /* one full TLS record of plaintext */
#define SEND_BUFFER (256 * 1024)    /* encrypted records collected per send */
#define MAX_WRITE (1 << 30)

struct tls_channel {
    struct vs_channel base;         /* first: the channel helpers see only this */
    SSL *ssl;
    uint8_t stage[STAGE_BYTES];
};

static struct tls_channel *tls_of(struct vs_channel *ch)
{
    return (struct tls_channel *)ch;
}

/* Turn an OpenSSL failure into the channel contract: -1 with errno, EAGAIN for a
 * timeout, 0 for the peer's end of stream (reads); ch->failure says what TLS found. */
static ssize_t io_failed(struct tls_channel *tc, int ret, int saved_errno, bool reading)
{
    switch (SSL_get_error(tc->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        /* SO_RCVTIMEO / SO_SNDTIMEO ran out, or a signal interrupted the wait (the caller
         * retries the same call: not a timeout) */
        errno = saved_errno == EINTR ? EINTR : EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        if (reading)
            return 0;
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (saved_errno == 0 && reading)
            return 0;
        errno = saved_errno ? saved_errno : EPIPE;
        return -1;
    default: {
        unsigned long e = ERR_peek_error();
        int reason = ERR_GET_REASON(e);
        char why[160];
        vs_tls_error_string(why, sizeof(why));
        if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
            snprintf(tc->base.failure, sizeof(tc->base.failure), "TLS: %s sent the alert "
                     "'%s'", tc->base.peer,
                     SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET));
        else
            snprintf(tc->base.failure, sizeof(tc->base.failure), "TLS: %s (the data from %s "
                     "was altered in transit, or it is not a TLS peer)", why, tc->base.peer);
        errno = EPROTO;
        return -1;
    }
    }
}

static ssize_t tls_writev(struct vs_channel *ch, const struct iovec *iov, int iovcnt,
                          int flags)
{
    (void)flags;                    /* the buffer is flushed at the end of write_all */
    struct tls_channel *tc = tls_of(ch);
    const void *buf;
    size_t len;
    if (iov[0].iov_len >= STAGE_BYTES) {
        buf = iov[0].iov_base;      /* page data: encrypted straight from where it lies */
        len = iov[0].iov_len < MAX_WRITE ? iov[0].iov_len : MAX_WRITE;
    } else {
        len = 0;                    /* headers and lists: gathered into one record */
        for (int i = 0; i < iovcnt && len < STAGE_BYTES; i++) {
            size_t n = iov[i].iov_len < STAGE_BYTES - len ? iov[i].iov_len : STAGE_BYTES - len;
            if (n)                  /* an empty entry may have no base */
                memcpy(tc->stage + len, iov[i].iov_base, n);
            len += n;
        }
        buf = tc->stage;
    }
    size_t written = 0;
    ERR_clear_error();
    int ret = SSL_write_ex(tc->ssl, buf, len, &written);
    if (ret <= 0)
        return io_failed(tc, ret, errno, false);
    return (ssize_t)written;
}

static ssize_t tls_read(struct vs_channel *ch, void *buf, size_t len)
{
    struct tls_channel *tc = tls_of(ch);
    size_t got = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(tc->ssl, buf, len < MAX_WRITE ? len : MAX_WRITE, &got);
    if (ret <= 0)
        return io_failed(tc, ret, errno, true);
    return (ssize_t)got;
}

static int tls_flush(struct vs_channel *ch)
{
    struct tls_channel *tc = tls_of(ch);
    ERR_clear_error();
    if (BIO_flush(SSL_get_wbio(tc->ssl)) > 0)
        return 0;
    return (int)io_failed(tc, -1, errno, false);
}

static void tls_shutdown(struct vs_channel *ch)
{
    shutdown(ch->fd, SHUT_RDWR);    /* blocked OpenSSL calls see the socket fail */
}

static void tls_close(struct vs_channel *ch)
{
    struct tls_channel *tc = tls_of(ch);
    SSL_free(tc->ssl);              /* its socket BIO does not close the fd */
    if (ch->fd >= 0)
        close(ch->fd);
    free(tc);
}

static const char *tls_cipher(struct vs_channel *ch, bool *kernel)
{
    SSL *ssl = tls_of(ch)->ssl;
    *kernel = BIO_get_ktls_send(SSL_get_wbio(ssl)) > 0;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    return c ? SSL_CIPHER_get_name(c) : "?";
}

static const struct vs_channel_ops tls_ops = {
    .name = "tls",
    .writev = tls_writev,
    .read = tls_read,
    .flush = tls_flush,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .can_zerocopy = false,          /* the data is encrypted into OpenSSL's buffers */
    .cipher = tls_cipher,
};

int vs_tls_channel_new(struct vs_channel *plain, SSL *ssl, struct vs_channel **out)
{
    struct tls_channel *tc = calloc(1, sizeof(*tc));
    if (!tc)
        return vs_fail(ENOMEM, "out of memory for the TLS channel to %s", plain->peer);
    tc->base.ops = &tls_ops;
    tc->base.fd = plain->fd;
    snprintf(tc->base.peer, sizeof(tc->base.peer), "%s", plain->peer);
    /* Encrypted records go through a buffer in front of the socket (the handshake did
     * not: it is done). Not with kernel TLS: the kernel makes the records, and OpenSSL
     * must write to the socket itself. */
    BIO *sock = SSL_get_rbio(ssl);
    if (BIO_get_ktls_send(SSL_get_wbio(ssl)) <= 0) {
        BIO *buffer = BIO_new(BIO_f_buffer());
        if (!buffer || BIO_set_write_buffer_size(buffer, SEND_BUFFER) <= 0 ||
            !BIO_up_ref(sock)) {
            BIO_free(buffer);
            free(tc);
            return vs_fail(ENOMEM, "out of memory for the TLS channel to %s", plain->peer);
        }
        SSL_set0_wbio(ssl, BIO_push(buffer, sock));
    }
    tc->ssl = ssl;
    plain->fd = -1;                 /* the socket is the TLS channel's now */
    vs_channel_close(plain);
    *out = &tc->base;
    return 0;
}
