/* A byte-stream channel between two migration peers, behind a small ops table so the
 * migration engine does not know whether it talks TCP, TLS or a local socket. */
#ifndef VS_CHANNEL_H
#define VS_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct vs_channel;

/* Write flags. */
#define VS_CH_MORE      1   /* more data follows at once: the transport may hold this back */
#define VS_CH_ZEROCOPY  2   /* the buffers stay unchanged and mapped until the transfer is
                               done (guest RAM): the transport may send them without copying */

struct vs_channel_ops {
    const char *name;                                    /* "tcp", "fd", ... */
    /* Like writev(2)/read(2): may be partial; -1 with errno on error; read 0 = EOF. */
    ssize_t (*writev)(struct vs_channel *ch, const struct iovec *iov, int iovcnt, int flags);
    ssize_t (*read)(struct vs_channel *ch, void *buf, size_t len);
    /* Push out what writev held back (NULL: it holds nothing back). Called at the end of
     * every vs_channel_write_all without VS_CH_MORE. 0, or -1 with errno. */
    int (*flush)(struct vs_channel *ch);
    /* Make blocked and future reads/writes on this channel fail at once (any thread). */
    void (*shutdown)(struct vs_channel *ch);
    /* Release everything; ch is freed. */
    void (*close)(struct vs_channel *ch);
    bool can_zerocopy;          /* VS_CH_ZEROCOPY writes can go out with MSG_ZEROCOPY */
    /* The cipher suite protecting the channel, and whether the kernel encrypts its sends
     * (NULL: none, plain). */
    const char *(*cipher)(struct vs_channel *ch, bool *kernel);
};

struct vs_channel {
    const struct vs_channel_ops *ops;
    int fd;
    char peer[80];               /* "198.18.0.2:4444", for messages */
    char failure[320];           /* what the transport found when it failed with EPROTO
                                    (TLS: an alert, a record that failed its check) */
    int timeout_ms;              /* of vs_channel_set_timeout */
    uint64_t deadline_ns;        /* of vs_channel_set_deadline (0: none) */
    const char *deadline_what;
    uint64_t bytes_sent;         /* updated atomically: other threads may sample them */
    uint64_t bytes_received;
    bool zerocopy;               /* MSG_ZEROCOPY is on (vs_channel_enable_zerocopy) */
    uint64_t zc_sends;           /* zero-copy sends issued ... */
    uint64_t zc_done;            /* ... and completed by the kernel ... */
    uint64_t zc_copied;          /* ... of which the kernel copied after all (loopback, veth) */
    int record_fd;               /* > 0: every byte received is also appended here */
    bool cut;                    /* vs_channel_cut: reads fail, even of bytes queued */
};

/* Write every byte of iov (iov is modified). Errors name the peer: "sending to PEER
 * failed after N bytes: Connection reset by peer". */
int vs_channel_write_all(struct vs_channel *ch, struct iovec *iov, int iovcnt);
int vs_channel_write_all_flags(struct vs_channel *ch, struct iovec *iov, int iovcnt,
                               int flags);
int vs_channel_write(struct vs_channel *ch, const void *buf, size_t len);
/* Read exactly len bytes. EOF before that is an error: "connection closed by PEER ...". */
int vs_channel_read_exact(struct vs_channel *ch, void *buf, size_t len);

/* Receive timeout for reads (a silent peer is an error after it); 0 = wait forever. */
int vs_channel_set_timeout(struct vs_channel *ch, int timeout_ms);

/* For a connection that may stay silent for long (post-copy): reads and writes wait
 * forever, but a peer that is gone (link down, host dead) is detected by TCP keepalive
 * and TCP_USER_TIMEOUT within about dead_ms, and then they fail. */
int vs_channel_set_liveness(struct vs_channel *ch, int dead_ms);
/* Until cleared (ms 0), reads must complete within ms from now, however the peer spaces
 * its bytes: a peer that trickles them fails like a silent one. `what` names what is
 * being waited for ("the handshake"), for the message. */
int vs_channel_set_deadline(struct vs_channel *ch, int ms, const char *what);

/* Close a connection the peer may still be writing to: stop sending, then read and
 * discard what it sends for up to ms, so that what we wrote last (a refusal) reaches it
 * instead of a reset. ch is freed. */
void vs_channel_linger_close(struct vs_channel *ch, int ms);

/* The rate at which the peer is receiving this channel's data, in bytes/s, as measured
 * by the transport (TCP's delivery rate), when the sender kept the link busy during the
 * measurement; 0 when unknown or when the sender (not the link) was the limit. */
double vs_channel_link_rate(struct vs_channel *ch);
/* Bytes written to the channel that the peer has not acknowledged yet (still in this
 * host's send queue); 0 when unknown. */
uint64_t vs_channel_queued(struct vs_channel *ch);

/* Send VS_CH_ZEROCOPY writes with MSG_ZEROCOPY from now on. Fails if the socket cannot;
 * does nothing (and says so once) on a channel that copies anyway (TLS). */
int vs_channel_enable_zerocopy(struct vs_channel *ch);
/* Wait up to timeout_ms until the kernel has finished with every zero-copy send. */
int vs_channel_zerocopy_drain(struct vs_channel *ch, int timeout_ms);

static inline uint64_t vs_channel_sent(const struct vs_channel *ch)
{
    return __atomic_load_n(&ch->bytes_sent, __ATOMIC_RELAXED);
}
static inline uint64_t vs_channel_received(const struct vs_channel *ch)
{
    return __atomic_load_n(&ch->bytes_received, __ATOMIC_RELAXED);
}

/* A channel over any connected stream socket fd (takes ownership). For tests
 * (socketpair) and local transports. */
int vs_channel_from_fd(int fd, const char *peer, struct vs_channel **out);

/* With VMSHIFT_RECORD_DIR set in the environment, append every byte this channel
 * receives to a new file DIR/PID-N-ROLE.bin (the fuzz harness's seed corpus is made of
 * such recordings of real migrations). No-op otherwise. */
void vs_channel_record_from_env(struct vs_channel *ch, const char *role);

/* Make blocked and future reads fail (EOF) while writes still work. */
void vs_channel_shutdown_read(struct vs_channel *ch);
/* The channel's cipher suite ("" when it is not encrypted); *kernel: kernel TLS sends. */
static inline const char *vs_channel_cipher(struct vs_channel *ch, bool *kernel)
{
    *kernel = false;
    return ch && ch->ops->cipher ? ch->ops->cipher(ch, kernel) : "";
}
static inline void vs_channel_shutdown(struct vs_channel *ch) { ch->ops->shutdown(ch); }
/* A cut link (fault injection): like vs_channel_shutdown, and what the peer sent that this
 * side has not read yet is lost too, however late this thread got here after the point
 * that cut (a shutdown leaves bytes already queued readable). */
static inline void vs_channel_cut(struct vs_channel *ch)
{
    __atomic_store_n(&ch->cut, true, __ATOMIC_SEQ_CST);
    ch->ops->shutdown(ch);
}
static inline void vs_channel_close(struct vs_channel *ch) { if (ch) ch->ops->close(ch); }

#endif
