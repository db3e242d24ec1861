#include "vmm/virtio/blk_backend.h"
#include "common/error.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZERO_CHUNK (64u << 10)

#define SPEC_FORM \
    "FILE[,shared][,ro][,reconnect=SECONDS] (FILE: a path or nbd://HOST:PORT/EXPORT)"
#define RECONNECT_MAX_S 3600

static int reconnect_option(struct vs_blk_spec *out, const char *v, size_t len, const char *spec)
{
    char num[16];
    char *end;
    if (len == 0 || len >= sizeof(num))
        return vs_fail(EINVAL, "--disk %s: reconnect= wants seconds, 0 to %d", spec,
                       RECONNECT_MAX_S);
    memcpy(num, v, len);
    num[len] = '\0';
    unsigned long s = strtoul(num, &end, 10);
    if (*end || num[0] == '-' || s > RECONNECT_MAX_S)
        return vs_fail(EINVAL, "--disk %s: reconnect=%s is not a number of seconds from 0 to "
                       "%d", spec, num, RECONNECT_MAX_S);
    out->reconnect_s = (unsigned)s;
    return 0;
}

static int spec_option(struct vs_blk_spec *out, const char *opt, size_t len, const char *spec)
{
    if (len == 6 && !memcmp(opt, "shared", 6))
        out->shared = true;
    else if (len == 2 && !memcmp(opt, "ro", 2))
        out->ro = true;
    else if (len >= 10 && !memcmp(opt, "reconnect=", 10))
        return reconnect_option(out, opt + 10, len - 10, spec);
    else
        return vs_fail(EINVAL, "--disk %s: unknown option '%.*s'; give " SPEC_FORM, spec,
                       (int)len, opt);
    return 0;
}

int vs_blk_spec_parse(const char *spec, struct vs_blk_spec *out)
{
    memset(out, 0, sizeof(*out));
    out->reconnect_s = VS_BLK_RECONNECT_DEFAULT_S;
    const char *comma = strchr(spec, ',');
    size_t path_len = comma ? (size_t)(comma - spec) : strlen(spec);
    if (path_len == 0)
        return vs_fail(EINVAL, "--disk %s: no file; give " SPEC_FORM, spec);
    if (path_len >= sizeof(out->path))
        return vs_fail(ENAMETOOLONG, "--disk %s: the file name is %zu bytes, more than %zu", spec,
                       path_len, sizeof(out->path) - 1);
    memcpy(out->path, spec, path_len);
    while (comma) {
        const char *opt = comma + 1;
        comma = strchr(opt, ',');
        size_t len = comma ? (size_t)(comma - opt) : strlen(opt);
        int rc = spec_option(out, opt, len, spec);
        if (rc)
            return rc;
    }
    return 0;
}

static int measure(struct vs_blk_backend *b, const struct stat *st)
{
    b->block_device = S_ISBLK(st->st_mode);
    if (b->block_device) {
        uint64_t bytes;
        if (ioctl(b->fd, BLKGETSIZE64, &bytes) < 0)
            return vs_fail(errno, "disk %s: cannot read the block device's size: %s",
                           b->spec.path, strerror(errno));
        b->size = bytes;
    } else if (S_ISREG(st->st_mode)) {
        b->size = (uint64_t)st->st_size;
    } else {
        return vs_fail(EINVAL, "disk %s is neither a regular file nor a block device",
                       b->spec.path);
    }
    if (b->size < 512)
        return vs_fail(EINVAL, "disk %s has %llu bytes, less than one 512-byte sector; make it "
                       "larger (e.g. truncate -s 1G %s)", b->spec.path,
                       (unsigned long long)b->size, b->spec.path);
    return 0;
}

/* An NBD export: connected to for good when it is to be written or is read-only; else
 * (a destination building the VM) only asked about in the handshake. */
static int nbd_open(struct vs_blk_backend *b)
{
    if (!b->writable && !b->spec.ro)
        return vs_blk_nbd_probe(b->spec.path, true, &b->size, &b->nbd_caps);
    return vs_blk_nbd_connect(b->spec.path, !b->spec.ro, &b->nbd, &b->size, &b->nbd_caps);
}

int vs_blk_backend_open(struct vs_blk_backend *b, const struct vs_blk_spec *spec, bool writable)
{
    memset(b, 0, sizeof(*b));
    b->spec = *spec;
    b->writable = writable && !spec->ro;
    b->is_nbd = vs_blk_nbd_is_uri(spec->path);
    b->fd = -1;
    if (b->is_nbd) {
        int rc = nbd_open(b);
        if (rc)
            b->writable = false;
        return rc;
    }
    b->fd = open(spec->path, (b->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (b->fd < 0)
        return vs_fail(errno, "disk %s: cannot open it for %s: %s%s", spec->path,
                       b->writable ? "reading and writing" : "reading", strerror(errno),
                       errno == ENOENT ? "; create it first (e.g. truncate -s 1G FILE)" : "");
    struct stat st;
    int rc = fstat(b->fd, &st) < 0 ? vs_fail(errno, "disk %s: %s", spec->path, strerror(errno))
                                   : measure(b, &st);
    if (!rc && !b->writable && !spec->ro && access(spec->path, W_OK) < 0)
        rc = vs_fail(errno, "disk %s: this process will have to write it once the VM is its "
                     "own, and cannot (%s); give ro or fix the permissions", spec->path,
                     strerror(errno));
    if (rc) {
        vs_blk_backend_close(b);
        return rc;
    }
    b->dev = st.st_dev;
    b->ino = st.st_ino;
    return 0;
}

/* Connect again to an export: the same size, writable unless the disk is read-only. */
static int nbd_reconnect(struct vs_blk_backend *b)
{
    if (b->nbd && (b->writable || b->spec.ro))
        return 0;
    struct nbd_handle *h;
    uint64_t size;
    struct vs_blk_nbd_caps caps;
    int rc = vs_blk_nbd_connect(b->spec.path, !b->spec.ro, &h, &size, &caps);
    if (rc)
        return rc;
    if (size != b->size) {
        vs_blk_nbd_disconnect(h);
        return vs_fail(ESTALE, "disk %s was resized (now %llu bytes, was %llu) since the VM "
                       "opened it; the guest's disk must stay the same export", b->spec.path,
                       (unsigned long long)size, (unsigned long long)b->size);
    }
    vs_blk_nbd_disconnect(b->nbd);
    b->nbd = h;
    b->nbd_caps = caps;
    b->writable = !b->spec.ro;
    return 0;
}

int vs_blk_backend_open_for_writing(struct vs_blk_backend *b)
{
    if (b->is_nbd)
        return nbd_reconnect(b);
    if (b->fd >= 0 && (b->writable || b->spec.ro))
        return 0;
    int fd = open(b->spec.path, (b->spec.ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return vs_fail(errno, "disk %s: cannot open it for %s: %s", b->spec.path,
                       b->spec.ro ? "reading" : "writing", strerror(errno));
    struct stat st;
    struct vs_blk_backend now = *b;
    now.fd = fd;
    int rc = fstat(fd, &st) < 0 ? vs_fail(errno, "disk %s: %s", b->spec.path, strerror(errno))
                                : measure(&now, &st);
    if (!rc && (st.st_dev != b->dev || st.st_ino != b->ino || now.size != b->size))
        rc = vs_fail(ESTALE, "disk %s was replaced or resized (now %llu bytes, was %llu) since "
                     "the VM opened it; the guest's disk must stay the same file",
                     b->spec.path, (unsigned long long)now.size, (unsigned long long)b->size);
    if (rc) {
        close(fd);
        return rc;
    }
    if (b->fd >= 0)
        close(b->fd);
    b->fd = fd;
    b->writable = !b->spec.ro;
    return 0;
}

void vs_blk_backend_close(struct vs_blk_backend *b)
{
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    vs_blk_nbd_disconnect(b->nbd);
    b->nbd = NULL;
    b->writable = false;
}

bool vs_blk_backend_is_open(const struct vs_blk_backend *b)
{
    return b->fd >= 0 || b->nbd;
}

/* Advance an I/O vector past `done` bytes (in place). */
static unsigned advance(struct iovec **iov, unsigned n, size_t done)
{
    while (n && done >= (*iov)->iov_len) {
        done -= (*iov)->iov_len;
        (*iov)++;
        n--;
    }
    if (n) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + done;
        (*iov)->iov_len -= done;
    }
    return n;
}

/* preadv/pwritev until all of it is done (iov is consumed). */
static int transfer(struct vs_blk_backend *b, struct iovec *iov, unsigned n, uint64_t off,
                    bool write)
{
    if (b->fd < 0 || (write && !b->writable))
        return -EBADF;
    while (n) {
        ssize_t done = write ? pwritev(b->fd, iov, (int)n, (off_t)off)
                             : preadv(b->fd, iov, (int)n, (off_t)off);
        if (done < 0 && errno == EINTR)
            continue;
        if (done < 0)
            return -errno;
        if (done == 0) {
            if (write)
                return -EIO;
            for (unsigned i = 0; i < n; i++)   /* past the end of the file: zeros */
                memset(iov[i].iov_base, 0, iov[i].iov_len);
            return 0;
        }
        off += (uint64_t)done;
        n = advance(&iov, n, (size_t)done);
    }
    return 0;
}

/* ---- NBD requests, connected again when the connection is lost ---- */

enum nbd_op_kind { NBD_OP_READ, NBD_OP_WRITE, NBD_OP_FLUSH, NBD_OP_DISCARD, NBD_OP_ZERO };

struct nbd_op {
    enum nbd_op_kind kind;
    const struct iovec *iov;   /* read, write: not consumed, so the op can be sent again */
    unsigned n;
    uint64_t off, len;
    bool unmap;
};

static int nbd_op_send(struct vs_blk_backend *b, const struct nbd_op *op)
{
    switch (op->kind) {
    case NBD_OP_READ:
        return vs_blk_nbd_read(b->nbd, op->iov, op->n, op->off);
    case NBD_OP_WRITE:
        return vs_blk_nbd_write(b->nbd, op->iov, op->n, op->off);
    case NBD_OP_FLUSH:
        return vs_blk_nbd_flush(b->nbd, &b->nbd_caps);
    case NBD_OP_DISCARD:
        return vs_blk_nbd_discard(b->nbd, &b->nbd_caps, op->off, op->len);
    case NBD_OP_ZERO:
        return vs_blk_nbd_write_zeroes(b->nbd, &b->nbd_caps, op->off, op->len, op->unmap);
    }
    return -EINVAL;
}

/* Connect again to an export whose connection was lost, trying every 50 ms to 1 s for up
 * to spec.reconnect_s: the same export (same size), in the same mode. */
static int nbd_reconnect_lost(struct vs_blk_backend *b)
{
    vs_warn("disk %s: the connection to the NBD server was lost; connecting again for up to "
            "%u s (reconnect=)", b->spec.path, b->spec.reconnect_s);
    uint64_t deadline_ms = vs_clock_ns() / 1000000 + (uint64_t)b->spec.reconnect_s * 1000;
    uint64_t wait_ms = 50;
    for (;;) {
        struct nbd_handle *h;
        uint64_t size;
        struct vs_blk_nbd_caps caps;
        int rc = vs_blk_nbd_connect(b->spec.path, b->writable, &h, &size, &caps);
        if (!rc && size != b->size) {
            vs_blk_nbd_disconnect(h);
            return vs_fail(ESTALE, "disk %s: the export has %llu bytes since the server came "
                           "back, not %llu: not the guest's disk", b->spec.path,
                           (unsigned long long)size, (unsigned long long)b->size);
        }
        if (!rc) {
            vs_blk_nbd_disconnect(b->nbd);
            b->nbd = h;
            b->nbd_caps = caps;
            __atomic_add_fetch(&b->nbd_reconnects, 1, __ATOMIC_RELAXED);
            vs_info("disk %s: connected to the NBD server again", b->spec.path);
            return 0;
        }
        if (vs_clock_ns() / 1000000 + wait_ms > deadline_ms) {
            char why[256];
            snprintf(why, sizeof(why), "%s", vs_last_error());
            return vs_fail(rc, "disk %s: the connection to the NBD server was lost and could "
                           "not be made again in %u s (%s); its requests fail (IOERR) until "
                           "the server is back", b->spec.path, b->spec.reconnect_s, why);
        }
        usleep((useconds_t)wait_ms * 1000);
        wait_ms = wait_ms * 2 > 1000 ? 1000 : wait_ms * 2;
    }
}

static int nbd_request(struct vs_blk_backend *b, const struct nbd_op *op)
{
    if (!b->nbd)
        return -EBADF;
    if (op->kind != NBD_OP_READ && !b->writable)
        return op->kind == NBD_OP_FLUSH ? 0 : -EBADF;
    int rc = nbd_op_send(b, op);
    while (rc && vs_blk_nbd_lost(b->nbd) && b->spec.reconnect_s) {
        if (nbd_reconnect_lost(b))
            return rc;
        rc = nbd_op_send(b, op);
    }
    return rc;
}

/* ---- Requests ---- */

int vs_blk_backend_read(struct vs_blk_backend *b, struct iovec *iov, unsigned n, uint64_t off)
{
    if (b->is_nbd)
        return nbd_request(b, &(struct nbd_op){ .kind = NBD_OP_READ, .iov = iov, .n = n,
                                                .off = off });
    return transfer(b, iov, n, off, false);
}

int vs_blk_backend_write(struct vs_blk_backend *b, struct iovec *iov, unsigned n, uint64_t off)
{
    if (b->is_nbd)
        return nbd_request(b, &(struct nbd_op){ .kind = NBD_OP_WRITE, .iov = iov, .n = n,
                                                .off = off });
    return transfer(b, iov, n, off, true);
}

int vs_blk_backend_flush(struct vs_blk_backend *b)
{
    if (b->is_nbd)
        return nbd_request(b, &(struct nbd_op){ .kind = NBD_OP_FLUSH });
    if (b->fd < 0)
        return -EBADF;
    if (!b->writable)
        return 0;
    return fdatasync(b->fd) < 0 ? -errno : 0;
}

static bool unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL;
}

int vs_blk_backend_discard(struct vs_blk_backend *b, uint64_t off, uint64_t len)
{
    if (b->is_nbd)
        return nbd_request(b, &(struct nbd_op){ .kind = NBD_OP_DISCARD, .off = off,
                                                .len = len });
    if (b->fd < 0 || !b->writable)
        return -EBADF;
    if (len == 0 ||
        fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    return unsupported(errno) ? 0 : -errno;
}

static int write_zero_bytes(struct vs_blk_backend *b, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[ZERO_CHUNK];
    while (len) {
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        struct iovec iov = { .iov_base = (void *)zeros, .iov_len = n };
        int rc = transfer(b, &iov, 1, off, true);
        if (rc)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

int vs_blk_backend_write_zeroes(struct vs_blk_backend *b, uint64_t off, uint64_t len, bool unmap)
{
    if (b->is_nbd)
        return nbd_request(b, &(struct nbd_op){ .kind = NBD_OP_ZERO, .off = off, .len = len,
                                                .unmap = unmap });
    if (b->fd < 0 || !b->writable)
        return -EBADF;
    if (len == 0)
        return 0;
    int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                     : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    if (fallocate(b->fd, mode, (off_t)off, (off_t)len) == 0)
        return 0;
    if (!unsupported(errno))
        return -errno;
    if (unmap && fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                           (off_t)len) == 0)
        return 0;
    return write_zero_bytes(b, off, len);
}
