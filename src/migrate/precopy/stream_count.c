#include "migrate/precopy/stream_count.h"
#include "wire/format.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdbool.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

uint32_t vs_stream_count_choose(long cpus, uint64_t link_bps)
{
    uint64_t n = cpus < 1 ? 1 : (uint64_t)cpus;
    if (n > VS_WIRE_MAX_STREAMS)
        n = VS_WIRE_MAX_STREAMS;
    if (link_bps) {
        uint64_t by_link = link_bps / VS_STREAM_LINK_SHARE_BPS;
        if (by_link < n)
            n = by_link;
    }
    return n < 1 ? 1 : (uint32_t)n;
}

/* The local address a connection to host would leave from (a UDP "connect" sends
 * nothing). */
static int local_address(const char *host, struct sockaddr_storage *local)
{
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai = NULL;
    if (getaddrinfo(host, "9", &hints, &ai) || !ai)
        return -1;
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof(*local);
    int rc = fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) ||
             getsockname(fd, (struct sockaddr *)local, &len) ? -1 : 0;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}

static bool same_address(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return a->sa_family == AF_INET6 &&
           !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

static uint64_t interface_speed(const char *ifname)
{
    char path[96];
    long mbit = -1;
    snprintf(path, sizeof(path), "/sys/class/net/%s/speed", ifname);
    FILE *f = fopen(path, "re");
    if (f) {
        if (fscanf(f, "%ld", &mbit) != 1)
            mbit = -1;
        fclose(f);
    }
    return mbit > 0 ? (uint64_t)mbit * 1000000 : 0;
}

uint64_t vs_link_speed_towards(const char *host)
{
    struct sockaddr_storage local;
    struct ifaddrs *ifs = NULL;
    if (local_address(host, &local) || getifaddrs(&ifs))
        return 0;
    uint64_t bps = 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && same_address(i->ifa_addr, &local) && !(i->ifa_flags & IFF_LOOPBACK)) {
            bps = interface_speed(i->ifa_name);
            break;
        }
    freeifaddrs(ifs);
    return bps;
}

uint32_t vs_stream_count_default(const char *to)
{
    char host[128] = "";
    const char *colon = to ? strrchr(to, ':') : NULL;
    if (colon && colon > to) {
        size_t len = (size_t)(colon - to);
        if (to[0] == '[' && len >= 2 && to[len - 1] == ']') {
            to++;
            len -= 2;
        }
        snprintf(host, sizeof(host), "%.*s", (int)len, to);
    }
    uint64_t link = host[0] ? vs_link_speed_towards(host) : 0;
    return vs_stream_count_choose(sysconf(_SC_NPROCESSORS_ONLN), link);
}
