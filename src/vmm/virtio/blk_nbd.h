/* A virtio-blk disk whose sectors are an NBD export: `--disk nbd://HOST[:PORT]/EXPORT` or
 * `--disk nbd+unix:///EXPORT?socket=PATH` (libnbd, a userspace client: no kernel nbd
 * module). The shared storage of a migration when both hosts reach one NBD server.
 *
 * The same two-step opening as a file (blk_backend.h): a destination asks the server
 * when it builds the VM, in the handshake only, the export's size and whether it may
 * write it, and hangs up; it connects for good once the VM is its own. A source that
 * handed the VM over hangs up.
 *
 * The calls block: a server that stops answering stalls the disk's I/O thread (and a
 * pause, which waits for the requests in flight), as a hung file system would. A lost
 * connection is connected again by the backend (blk_backend.h). */
#ifndef VS_BLK_NBD_H
#define VS_BLK_NBD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct nbd_handle;

/* Whether a --disk spec's target names an NBD export rather than a file. */
bool vs_blk_nbd_is_uri(const char *target);

/* What the server offers on one connection. */
struct vs_blk_nbd_caps {
    bool read_only, flush, trim, zero;
};

/* Connect to `uri`, read the export's size and what it offers. `need_write`: refuse an
 * export the server offers read-only. The handle is returned in *out (NULL on failure). */
int vs_blk_nbd_connect(const char *uri, bool need_write, struct nbd_handle **out,
                       uint64_t *size, struct vs_blk_nbd_caps *caps);
/* The same questions asked in the handshake only (NBD_OPT_INFO, then NBD_OPT_ABORT): the
 * connection never enters the phase where commands are sent, so it cannot write. For a
 * destination that must not touch the export before the VM is its own. */
int vs_blk_nbd_probe(const char *uri, bool need_write, uint64_t *size,
                     struct vs_blk_nbd_caps *caps);
/* Whether the connection is gone (the server hung up, died or reset it): its commands
 * fail until the backend connects again (blk_backend.h, reconnect=). */
bool vs_blk_nbd_lost(struct nbd_handle *h);
/* Tell the server goodbye (once the replies of commands in flight are in) and free the
 * handle (NULL: nothing). */
void vs_blk_nbd_disconnect(struct nbd_handle *h);

/* The backend's operations on a connected handle: 0 or -errno. */
int vs_blk_nbd_read(struct nbd_handle *h, const struct iovec *iov, unsigned n, uint64_t off);
int vs_blk_nbd_write(struct nbd_handle *h, const struct iovec *iov, unsigned n, uint64_t off);
int vs_blk_nbd_flush(struct nbd_handle *h, const struct vs_blk_nbd_caps *caps);
int vs_blk_nbd_discard(struct nbd_handle *h, const struct vs_blk_nbd_caps *caps, uint64_t off,
                       uint64_t len);
int vs_blk_nbd_write_zeroes(struct nbd_handle *h, const struct vs_blk_nbd_caps *caps,
                            uint64_t off, uint64_t len, bool unmap);

#endif
