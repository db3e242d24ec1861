/* Shared by the wire unit tests: two channels joined by a socketpair with large buffers
 * (a whole record fits), the sender and the receiver of a test stream; and a record
 * writer on one end and a reader on the other. */
#ifndef VS_TEST_WIRE_PAIR_H
#define VS_TEST_WIRE_PAIR_H

#include <sys/socket.h>
#include "transport/channel.h"
#include "wire/reader.h"
#include "wire/writer.h"

static inline int wire_pair_open(struct vs_channel **tx, struct vs_channel **rx)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    int big = 8 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (vs_channel_from_fd(sv[0], "the-peer", tx) < 0 ||
        vs_channel_from_fd(sv[1], "the-source", rx) < 0)
        return -1;
    return 0;
}

/* The pair, a writer on tx and a reader on rx. */
static inline int wire_stream_open(struct vs_channel **tx, struct vs_channel **rx,
                                   struct vs_wire_writer *w, struct vs_wire_reader *r)
{
    if (wire_pair_open(tx, rx) < 0 || vs_wire_writer_init(w, *tx) < 0)
        return -1;
    vs_wire_reader_init(r, *rx);
    return 0;
}

static inline void wire_stream_close(struct vs_channel *tx, struct vs_channel *rx,
                                     struct vs_wire_writer *w, struct vs_wire_reader *r)
{
    vs_wire_writer_destroy(w);
    vs_wire_reader_destroy(r);
    vs_channel_close(tx);
    vs_channel_close(rx);
}

#endif
