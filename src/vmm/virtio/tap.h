/* A TAP device as a NIC's backend: one file descriptor of /dev/net/tun in TAP mode with
 * the virtio-net header in front of every frame (IFF_VNET_HDR, 12 bytes: the virtio 1.x
 * struct virtio_net_hdr with num_buffers), no offloads, non-blocking, a port of a Linux
 * bridge and up.
 *
 * The TAP is not persistent: it goes away when the descriptor is closed (the VM ends).
 * It lives in the network namespace of the process that opens it. */
#ifndef VS_TAP_H
#define VS_TAP_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define VS_TAP_VNET_HDR 12   /* bytes of virtio-net header before each frame */

struct vs_tap {
    int fd;                      /* -1: closed */
    char name[IFNAMSIZ];         /* the interface's name as the kernel gave it */
    char bridge[IFNAMSIZ];       /* the bridge it is a port of ("" none) */
};

/* Open TAP `name` (attaching to an existing, unused TAP of that name too), give it the
 * 12-byte header, no offloads, and make it a port of `bridge` (may be NULL or "") that is
 * up. With `fresh_if_taken`, a name already used by another interface or process gives a
 * new TAP named "vstapN" instead (an incoming VM on a host where its source's TAP name is
 * in use). Errors name the TAP or bridge, the cause and what to do. */
int vs_tap_open(struct vs_tap *tap, const char *name, const char *bridge, bool fresh_if_taken);
void vs_tap_close(struct vs_tap *tap);

/* One frame with its header: the bytes read (0 < n), 0 when none is queued (EAGAIN), or
 * -errno. */
ssize_t vs_tap_read(int fd, void *buf, size_t len);
/* Send header + frame as one datagram; 0, or -errno (EAGAIN: the kernel's queue is full). */
int vs_tap_write(int fd, const void *hdr, size_t hdr_len, const void *frame, size_t len);

#endif
