#include "vmm/virtio/blk_nbd.h"
#include "common/error.h"

#include <errno.h>
#include <libnbd.h>
#include <string.h>

/* One NBD command carries at most this many bytes (servers refuse more than 32 MiB). */
#define NBD_CHUNK (4u << 20)
/* A trim or zero command: the protocol's length is 32 bits. */
#define NBD_RANGE_CHUNK (1u << 30)
/* The segments of one request sent before waiting for their replies. */
#define NBD_MAX_PENDING 256

bool vs_blk_nbd_is_uri(const char *target)
{
    return !strncmp(target, "nbd://", 6) || !strncmp(target, "nbd+unix://", 11) ||
           !strncmp(target, "nbds://", 7) || !strncmp(target, "nbds+unix://", 12);
}

static int nbd_err(void)
{
    int e = nbd_get_errno();
    return e ? e : EIO;
}

static int refuse(struct nbd_handle *h, int err, const char *fmt, const char *uri,
                  const char *what)
{
    nbd_close(h);
    return vs_fail(err, fmt, uri, what);
}

/* What the export is and offers, asked in the handshake (NBD_OPT_INFO) or learned when
 * it ends (NBD_OPT_GO). */
static int describe(struct nbd_handle *h, const char *uri, bool need_write, uint64_t *size,
                    struct vs_blk_nbd_caps *caps)
{
    int64_t bytes = nbd_get_size(h);
    if (bytes < 0)
        return refuse(h, nbd_err(), "disk %s: the NBD server gave no size: %s", uri,
                      nbd_get_error());
    if (bytes < 512)
        return refuse(h, EINVAL, "disk %s: the export has %s bytes, less than one 512-byte "
                      "sector; export a larger image", uri, bytes ? "a few" : "no");
    caps->read_only = nbd_is_read_only(h) == 1;
    caps->flush = nbd_can_flush(h) == 1;
    caps->trim = nbd_can_trim(h) == 1;
    caps->zero = nbd_can_zero(h) == 1;
    if (need_write && caps->read_only)
        return refuse(h, EROFS, "disk %s: the NBD server exports it read-only; %s", uri,
                      "give ro, or export it writable (qemu-nbd without -r)");
    *size = (uint64_t)bytes;
    return 0;
}

static int connect_failed(struct nbd_handle *h, const char *uri)
{
    return refuse(h, nbd_err(), "disk %s: cannot connect to the NBD export: %s; start the "
                  "NBD server (e.g. qemu-nbd -f raw -x EXPORT -t -e 2 FILE) or fix the URI "
                  "(nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH)", uri,
                  nbd_get_error());
}

int vs_blk_nbd_connect(const char *uri, bool need_write, struct nbd_handle **out,
                       uint64_t *size, struct vs_blk_nbd_caps *caps)
{
    *out = NULL;
    struct nbd_handle *h = nbd_create();
    if (!h)
        return vs_fail(nbd_err(), "disk %s: cannot make an NBD client: %s", uri, nbd_get_error());
    if (nbd_connect_uri(h, uri) < 0)
        return connect_failed(h, uri);
    int rc = describe(h, uri, need_write, size, caps);
    if (!rc)
        *out = h;
    return rc;
}

int vs_blk_nbd_probe(const char *uri, bool need_write, uint64_t *size,
                     struct vs_blk_nbd_caps *caps)
{
    struct nbd_handle *h = nbd_create();
    if (!h)
        return vs_fail(nbd_err(), "disk %s: cannot make an NBD client: %s", uri, nbd_get_error());
    if (nbd_set_opt_mode(h, true) < 0 || nbd_connect_uri(h, uri) < 0)
        return connect_failed(h, uri);
    if (nbd_opt_info(h) < 0) {
        /* A server without NBD_OPT_INFO: NBD_OPT_GO, then goodbye at once. */
        if (nbd_aio_is_negotiating(h) != 1 || nbd_opt_go(h) < 0)
            return connect_failed(h, uri);
        int rc = describe(h, uri, need_write, size, caps);
        if (!rc)
            vs_blk_nbd_disconnect(h);
        return rc;
    }
    int rc = describe(h, uri, need_write, size, caps);
    if (!rc) {
        nbd_opt_abort(h);
        nbd_close(h);
    }
    return rc;
}

bool vs_blk_nbd_lost(struct nbd_handle *h)
{
    return h && (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1);
}

void vs_blk_nbd_disconnect(struct nbd_handle *h)
{
    if (!h)
        return;
    if (!vs_blk_nbd_lost(h))
        nbd_shutdown(h, 0);   /* waits for the replies of commands in flight */
    nbd_close(h);
}

/* Wait for the replies of `cookies`; the first error wins. */
static int wait_all(struct nbd_handle *h, const int64_t *cookies, unsigned n)
{
    int rc = 0;
    for (unsigned i = 0; i < n; i++) {
        int done;
        while ((done = nbd_aio_command_completed(h, cookies[i])) == 0)
            if (nbd_poll(h, -1) < 0)
                return -nbd_err();
        if (done < 0 && !rc)
            rc = -nbd_err();
    }
    return rc;
}

/* Every segment as commands of at most NBD_CHUNK bytes, all sent before the first reply
 * is awaited (one round trip for a request of several segments). */
static int transfer(struct nbd_handle *h, const struct iovec *iov, unsigned n, uint64_t off,
                    bool write)
{
    int64_t cookies[NBD_MAX_PENDING] = { 0 };
    unsigned pending = 0;
    int rc = 0;
    for (unsigned i = 0; i < n && !rc; i++) {
        char *p = iov[i].iov_base;
        for (size_t left = iov[i].iov_len; left && !rc;) {
            size_t len = left < NBD_CHUNK ? left : NBD_CHUNK;
            if (pending == NBD_MAX_PENDING) {
                rc = wait_all(h, cookies, pending);
                pending = 0;
                if (rc)
                    break;
            }
            int64_t c = write ? nbd_aio_pwrite(h, p, len, off, NBD_NULL_COMPLETION, 0)
                              : nbd_aio_pread(h, p, len, off, NBD_NULL_COMPLETION, 0);
            if (c < 0) {
                rc = -nbd_err();
                break;
            }
            cookies[pending++] = c;
            p += len;
            off += len;
            left -= len;
        }
    }
    int w = wait_all(h, cookies, pending);
    return rc ? rc : w;
}

int vs_blk_nbd_read(struct nbd_handle *h, const struct iovec *iov, unsigned n, uint64_t off)
{
    return h ? transfer(h, iov, n, off, false) : -EBADF;
}

int vs_blk_nbd_write(struct nbd_handle *h, const struct iovec *iov, unsigned n, uint64_t off)
{
    return h ? transfer(h, iov, n, off, true) : -EBADF;
}

int vs_blk_nbd_flush(struct nbd_handle *h, const struct vs_blk_nbd_caps *caps)
{
    if (!h)
        return -EBADF;
    if (!caps->flush)
        return 0;   /* the server writes through: nothing to flush */
    return nbd_flush(h, 0) < 0 ? -nbd_err() : 0;
}

int vs_blk_nbd_discard(struct nbd_handle *h, const struct vs_blk_nbd_caps *caps, uint64_t off,
                       uint64_t len)
{
    if (!h)
        return -EBADF;
    while (caps->trim && len) {   /* a hint: nothing to do when the server cannot */
        uint64_t n = len < NBD_RANGE_CHUNK ? len : NBD_RANGE_CHUNK;
        if (nbd_trim(h, n, off, 0) < 0)
            return -nbd_err();
        off += n;
        len -= n;
    }
    return 0;
}

static int write_zero_bytes(struct nbd_handle *h, uint64_t off, uint64_t len)
{
    static const char zeros[64u << 10];
    while (len) {
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        if (nbd_pwrite(h, zeros, n, off, 0) < 0)
            return -nbd_err();
        off += n;
        len -= n;
    }
    return 0;
}

int vs_blk_nbd_write_zeroes(struct nbd_handle *h, const struct vs_blk_nbd_caps *caps,
                            uint64_t off, uint64_t len, bool unmap)
{
    if (!h)
        return -EBADF;
    if (!caps->zero)
        return write_zero_bytes(h, off, len);
    while (len) {
        uint64_t n = len < NBD_RANGE_CHUNK ? len : NBD_RANGE_CHUNK;
        if (nbd_zero(h, n, off, unmap ? 0 : LIBNBD_CMD_FLAG_NO_HOLE) < 0)
            return -nbd_err();
        off += n;
        len -= n;
    }
    return 0;
}
