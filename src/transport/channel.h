/* A byte-stream channel between two migration peers, behind a small ops table so the
 * migration engine does not know whether it talks TCP, TLS or a local socket. */
#ifndef VS_CHANNEL_H
#define VS_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct vs_channel;

struct vs_channel_ops {
    const char *name;                                    /* "tcp", "fd", ... */
    /* Like writev(2)/read(2): may be partial; -1 with errno on error; read 0 = EOF. */
    ssize_t (*writev)(struct vs_channel *ch, const struct iovec *iov, int iovcnt);
    ssize_t (*read)(struct vs_channel *ch, void *buf, size_t len);
    /* Make blocked and future reads/writes on this channel fail at once (any thread). */
    void (*shutdown)(struct vs_channel *ch);
    /* Release everything; ch is freed. */
    void (*close)(struct vs_channel *ch);
};

struct vs_channel {
    const struct vs_channel_ops *ops;
    int fd;
    char peer[80];               /* "198.18.0.2:4444", for messages */
    uint64_t bytes_sent;
    uint64_t bytes_received;
};

/* Write every byte of iov (iov is modified). Errors name the peer: "sending to PEER
 * failed after N bytes: Connection reset by peer". */
int vs_channel_write_all(struct vs_channel *ch, struct iovec *iov, int iovcnt);
int vs_channel_write(struct vs_channel *ch, const void *buf, size_t len);
/* Read exactly len bytes. EOF before that is an error: "connection closed by PEER ...". */
int vs_channel_read_exact(struct vs_channel *ch, void *buf, size_t len);

/* Receive timeout for reads (a silent peer is an error after it); 0 = wait forever. */
int vs_channel_set_timeout(struct vs_channel *ch, int timeout_ms);

/* A channel over any connected stream socket fd (takes ownership). For tests
 * (socketpair) and local transports. */
int vs_channel_from_fd(int fd, const char *peer, struct vs_channel **out);

static inline void vs_channel_shutdown(struct vs_channel *ch) { ch->ops->shutdown(ch); }
static inline void vs_channel_close(struct vs_channel *ch) { if (ch) ch->ops->close(ch); }

#endif
