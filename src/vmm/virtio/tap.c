#include "vmm/virtio/tap.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define FRESH_NAME "vstap%d"   /* the kernel picks the number */

static int name_fits(const char *what, const char *name)
{
    if (!name || !name[0] || strlen(name) >= IFNAMSIZ)
        return vs_fail(EINVAL, "%s name '%s' must be 1 to %d characters", what, name ? name : "",
                       IFNAMSIZ - 1);
    return 0;
}

/* TUNSETIFF on fd: 0 with the name the kernel gave in out, or -errno. */
static int set_iff(int fd, const char *name, char out[IFNAMSIZ])
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        return -errno;
    snprintf(out, IFNAMSIZ, "%s", ifr.ifr_name);
    return 0;
}

/* The header and offloads every frame carries: 12 bytes, nothing offloaded (the kernel
 * checksums and segments before a frame reaches us, and takes only whole frames). */
static int configure(struct vs_tap *tap)
{
    int hdr = VS_TAP_VNET_HDR;
    if (ioctl(tap->fd, TUNSETVNETHDRSZ, &hdr) < 0)
        return vs_fail(errno, "TAP %s: setting its virtio-net header to %d bytes: %s",
                       tap->name, hdr, strerror(errno));
    if (ioctl(tap->fd, TUNSETOFFLOAD, 0UL) < 0)
        return vs_fail(errno, "TAP %s: turning its offloads off: %s", tap->name, strerror(errno));
    return 0;
}

/* Whether interface `dev` already is a port of `bridge` (from sysfs). */
static bool is_port_of(const char *dev, const char *bridge)
{
    char path[96], target[256];
    snprintf(path, sizeof(path), "/sys/class/net/%s/master", dev);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
        return false;
    target[n] = '\0';
    return strcmp(basename(target), bridge) == 0;
}

static int add_to_bridge(int sock, const struct vs_tap *tap, const char *bridge)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
    ifr.ifr_ifindex = (int)if_nametoindex(tap->name);
    if (ifr.ifr_ifindex == 0)
        return vs_fail(ENODEV, "TAP %s disappeared before it joined bridge %s", tap->name, bridge);
    if (ioctl(sock, SIOCBRADDIF, &ifr) == 0)
        return 0;
    int err = errno;
    if (err == EBUSY && is_port_of(tap->name, bridge))
        return 0;   /* an existing TAP that already was its port */
    if (err == ENODEV || err == ENXIO)
        return vs_fail(err, "bridge %s does not exist on this host (in this network namespace): "
                       "create it (ip link add %s type bridge; ip link set %s up) or name "
                       "another with bridge=", bridge, bridge, bridge);
    if (err == EOPNOTSUPP || err == EINVAL)
        return vs_fail(err, "%s is not a Linux bridge: name a bridge with bridge=", bridge);
    return vs_fail(err, "adding TAP %s to bridge %s: %s", tap->name, bridge, strerror(err));
}

static int bring_up(int sock, const struct vs_tap *tap)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap->name);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        return vs_fail(errno, "TAP %s: reading its flags: %s", tap->name, strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
        return vs_fail(errno, "TAP %s: bringing it up: %s", tap->name, strerror(errno));
    return 0;
}

static int plug_in(struct vs_tap *tap, const char *bridge)
{
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return vs_fail(errno, "TAP %s: a socket for its ioctls: %s", tap->name, strerror(errno));
    int rc = 0;
    if (bridge && bridge[0]) {
        rc = add_to_bridge(sock, tap, bridge);
        if (!rc)
            snprintf(tap->bridge, sizeof(tap->bridge), "%s", bridge);
    }
    if (!rc)
        rc = bring_up(sock, tap);
    close(sock);
    return rc;
}

static int explain_open(int err, const char *name)
{
    if (err == EPERM || err == EACCES)
        return vs_fail(err, "TAP %s: not allowed (%s): vmshift needs CAP_NET_ADMIN to create "
                       "TAPs, or a persistent TAP it may use (ip tuntap add %s mode tap "
                       "vnet_hdr user USER)", name, strerror(err), name);
    if (err == EBUSY)
        return vs_fail(err, "TAP %s is in use by another process: name another with tap=",
                       name);
    if (err == EINVAL)
        return vs_fail(err, "%s exists and is not a TAP with a virtio-net header: name another "
                       "with tap=", name);
    return vs_fail(err, "TAP %s: %s", name, strerror(err));
}

int vs_tap_open(struct vs_tap *tap, const char *name, const char *bridge, bool fresh_if_taken)
{
    memset(tap, 0, sizeof(*tap));
    tap->fd = -1;
    int rc = name_fits("TAP", name);
    if (!rc && bridge && bridge[0])
        rc = name_fits("bridge", bridge);
    if (rc)
        return rc;
    tap->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tap->fd < 0) {
        int err = errno;
        return vs_fail(err, "TAP %s: cannot open /dev/net/tun: %s (load the tun module, or "
                       "run where /dev/net/tun exists)", name, strerror(err));
    }
    rc = set_iff(tap->fd, name, tap->name);
    if (rc < 0 && fresh_if_taken && (rc == -EBUSY || rc == -EINVAL)) {
        vs_info("TAP %s is taken on this host: the NIC gets a fresh TAP", name);
        rc = set_iff(tap->fd, FRESH_NAME, tap->name);
    }
    if (rc < 0)
        rc = explain_open(-rc, name);
    if (!rc)
        rc = configure(tap);
    if (!rc)
        rc = plug_in(tap, bridge);
    if (rc) {
        vs_tap_close(tap);
        return rc;
    }
    return 0;
}

void vs_tap_close(struct vs_tap *tap)
{
    if (tap->fd >= 0)
        close(tap->fd);
    tap->fd = -1;
}

ssize_t vs_tap_read(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
}

int vs_tap_write(int fd, const void *hdr, size_t hdr_len, const void *frame, size_t len)
{
    struct iovec iov[2] = { { (void *)hdr, hdr_len }, { (void *)frame, len } };
    for (;;) {
        ssize_t n = writev(fd, iov, 2);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}
