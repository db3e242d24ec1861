/* Shared by the wire unit tests: two channels joined by a socketpair with large buffers
 * (a whole record fits), the sender and the receiver of a test stream. */
#ifndef VS_TEST_WIRE_PAIR_H
#define VS_TEST_WIRE_PAIR_H

#include <sys/socket.h>
#include "transport/channel.h"

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

#endif
