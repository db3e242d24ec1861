/* How fast the link drains a TCP channel: the kernel's delivery-rate estimate (the one
 * BBR uses), trusted only when the sample was not limited by the application; and how
 * much is still queued in this host (SIOCOUTQ: unsent and unacknowledged bytes). */
#include "transport/channel.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

double vs_channel_link_rate(struct vs_channel *ch)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (!ch || ch->fd < 0 || getsockopt(ch->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;
    if (len < offsetof(struct tcp_info, tcpi_delivery_rate) + sizeof(ti.tcpi_delivery_rate))
        return 0;               /* an old kernel: no estimate */
    if (ti.tcpi_delivery_rate_app_limited)
        return 0;               /* we were the limit, not the link */
    return (double)ti.tcpi_delivery_rate;
}

uint64_t vs_channel_queued(struct vs_channel *ch)
{
    int n = 0;
    if (!ch || ch->fd < 0 || ioctl(ch->fd, SIOCOUTQ, &n) < 0 || n < 0)
        return 0;
    return (uint64_t)n;
}
