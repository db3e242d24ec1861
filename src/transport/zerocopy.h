/* MSG_ZEROCOPY for socket channels: the kernel sends guest pages without copying them
 * into socket buffers, and reports on the socket's error queue when it is done with
 * them (or that it copied after all, as it does over loopback and veth). */
#ifndef VS_ZEROCOPY_H
#define VS_ZEROCOPY_H

#include <sys/socket.h>
#include "transport/channel.h"

/* sendmsg with MSG_ZEROCOPY; reaps completions, and waits for some when the kernel runs
 * out of notification memory (ENOBUFS). Same contract as sendmsg. */
ssize_t vs_zerocopy_sendmsg(struct vs_channel *ch, struct msghdr *msg, int flags);

#endif
