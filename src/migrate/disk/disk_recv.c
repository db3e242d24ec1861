#include "migrate/disk/disk_recv.h"
#include "migrate/disk/disk_wire.h"
#include "common/clock.h"
#include "common/error.h"
#include "vmm/virtio/virtio_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

typedef unsigned long long ull;

struct disk_in {
    const char *path;
    int fd;                     /* O_RDWR, OFD write lock */
    uint64_t nblocks;
    uint64_t *hash;             /* of every block as written (holes: zeros) */
    uint64_t unflushed;         /* bytes written since writeback was last started */
    bool digest_seen;
    char mismatch[200];
};

struct vs_disk_recv {
    unsigned nr;                        /* the VM's disks */
    uint64_t size[VS_WIRE_MAX_DISKS];   /* 0: not copied */
    struct disk_in d[VS_WIRE_MAX_DISKS];
    uint8_t *buf;                       /* one DISK_BLOCKS payload */
};

#define MAX_PAYLOAD (sizeof(struct vs_wire_disk_blocks) + \
                     (size_t)VS_WIRE_MAX_DISK_BLOCKS * (8 + VS_WIRE_DISK_BLOCK))

/* Every block reads as zero: the source sends no zero block in its bulk pass. */
static int empty_file(struct disk_in *in, uint64_t size)
{
    if (fallocate(in->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0 ||
        fallocate(in->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0)
        return 0;
    return vs_fail(errno, "--disk %s: cannot empty it to receive the disk (%s): use a "
                   "file on a file system that can punch holes", in->path, strerror(errno));
}

static int open_target(struct disk_in *in, uint64_t *size)
{
    if (vs_blk_nbd_is_uri(in->path))
        return vs_fail(EOPNOTSUPP, "--disk %s is an NBD export, and a disk copied with the VM "
                       "(--with-disks) is received only into a file or a block device: give "
                       "`vmshift receive` --disk DEST_FILE, pre-created with the source disk's "
                       "size", in->path);
    in->fd = open(in->path, O_RDWR | O_CLOEXEC);
    if (in->fd < 0)
        return vs_fail(errno, "--disk %s: cannot open it for writing to receive the disk: %s "
                       "(pre-create it with the source disk's size)", in->path,
                       strerror(errno));
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(in->fd, F_OFD_SETLK, &fl) < 0)
        return vs_fail(errno, "--disk %s is in use by another process (%s): a disk copied "
                       "with the VM needs a file of its own on the destination, not the "
                       "source's", in->path, strerror(errno));
    off_t end = lseek(in->fd, 0, SEEK_END);
    if (end <= 0)
        return vs_fail(end < 0 ? errno : EINVAL, "--disk %s: cannot size it", in->path);
    *size = (uint64_t)end;
    in->nblocks = vs_disk_nblocks(*size);
    in->hash = malloc(in->nblocks * sizeof(uint64_t));
    if (!in->hash)
        return vs_fail(ENOMEM, "out of memory for the digest of disk %s", in->path);
    uint64_t zero_full = vs_disk_zero_hash(VS_WIRE_DISK_BLOCK);
    for (uint64_t b = 0; b < in->nblocks; b++) {
        uint32_t len = vs_disk_block_len(*size, b);
        in->hash[b] = len == VS_WIRE_DISK_BLOCK ? zero_full : vs_disk_zero_hash(len);
    }
    return empty_file(in, *size);
}

int vs_disk_recv_new(struct vs_disk_recv **out, struct vs_vm *vm, uint32_t mask,
                     bool local_disks)
{
    *out = NULL;
    if (mask >> vm->nr_disks)
        return vs_fail(EPROTO, "HELLO disks_copied 0x%x names disks the VM does not have "
                       "(it has %u)", mask, vm->nr_disks);
    if (!local_disks)
        return vs_fail(EPERM, "the VM's disks are copied with it (--with-disks): give "
                       "`vmshift receive` --disk DEST_FILE for each, a pre-created file of "
                       "the source disk's size (never the source's own file)");
    struct vs_disk_recv *d = calloc(1, sizeof(*d));
    if (!d || !(d->buf = malloc(MAX_PAYLOAD))) {
        free(d);
        return vs_fail(ENOMEM, "out of memory for receiving disks");
    }
    d->nr = vm->nr_disks;
    for (unsigned i = 0; i < vm->nr_disks; i++) {
        d->d[i].fd = -1;
        if (!(mask & (1u << i)))
            continue;
        d->d[i].path = vs_virtio_blk_spec(vm->disks[i])->path;
        int rc = open_target(&d->d[i], &d->size[i]);
        if (rc) {
            vs_disk_recv_free(d);
            return rc;
        }
    }
    *out = d;
    return 0;
}

void vs_disk_recv_free(struct vs_disk_recv *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < d->nr; i++) {
        if (d->d[i].fd >= 0)
            close(d->d[i].fd);
        free(d->d[i].hash);
    }
    free(d->buf);
    free(d);
}

static int write_block(struct disk_in *in, uint64_t size, uint64_t b, const uint8_t *data)
{
    uint32_t len = vs_disk_block_len(size, b);
    off_t off = (off_t)(b * VS_WIRE_DISK_BLOCK);
    if (data) {
        ssize_t n = pwrite(in->fd, data, len, off);
        if (n != (ssize_t)len)
            return vs_fail(n < 0 ? errno : EIO, "--disk %s: writing block %llu failed: %s",
                           in->path, (ull)b, n < 0 ? strerror(errno) : "short write");
        in->hash[b] = XXH3_64bits(data, len);
        return 0;
    }
    if (fallocate(in->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) &&
        fallocate(in->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len))
        return vs_fail(errno, "--disk %s: zeroing block %llu failed: %s", in->path, (ull)b,
                       strerror(errno));
    in->hash[b] = vs_disk_zero_hash(len);
    return 0;
}

/* Written data goes to the device as it comes, at most WRITEBACK_CHUNK or two behind:
 * otherwise gigabytes of dirty page cache wait for the blackout's fdatasync (a second of
 * downtime for a 4 GiB disk), and the guest's first writes after the resume are throttled
 * by the kernel's dirty limits (seconds of I/O stall). */
#define WRITEBACK_CHUNK (64ull << 20)

static void write_behind(struct disk_in *in, uint64_t bytes)
{
    in->unflushed += bytes;
    if (in->unflushed < WRITEBACK_CHUNK)
        return;
    in->unflushed = 0;
    /* Wait for the writeback started last time, start it for what is dirty now (where the
     * file system cannot, the final fdatasync does it all). */
    (void)sync_file_range(in->fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE);
}

int vs_disk_recv_blocks(struct vs_disk_recv *d, struct vs_wire_reader *r,
                        const struct vs_wire_header *h, struct vs_disk_report *rep)
{
    int rc = vs_wire_read_payload(r, h, d->buf, MAX_PAYLOAD);
    if (rc)
        return rc;
    struct vs_disk_blocks_view v;
    if ((rc = vs_disk_blocks_parse(d->buf, h->length, d->size, d->nr, &v)))
        return vs_fail_context(rc, "migration stream: record #%llu (DISK_BLOCKS) at offset "
                               "%llu", (ull)h->seq, (ull)r->record_offset);
    struct disk_in *in = &d->d[v.head.disk];
    uint32_t ndata = v.head.count - v.head.zero;
    for (uint32_t i = 0; i < v.head.count && !rc; i++)
        rc = write_block(in, d->size[v.head.disk], v.block[i],
                         i < ndata ? v.data + (size_t)i * VS_WIRE_DISK_BLOCK : NULL);
    if (!rc)
        write_behind(in, (uint64_t)ndata * VS_WIRE_DISK_BLOCK);
    rep->blocks += ndata;
    rep->zero_blocks += v.head.zero;
    rep->bytes += sizeof(*h) + h->length;
    return rc;
}

int vs_disk_recv_digest(struct vs_disk_recv *d, struct vs_wire_reader *r,
                        const struct vs_wire_header *h, struct vs_disk_report *rep)
{
    struct vs_wire_disk_digest dg;
    int rc = vs_wire_read_fixed(r, h, VS_REC_DISK_DIGEST, &dg, sizeof(dg));
    if (!rc && (rc = vs_disk_digest_check(&dg, d->size, d->nr)))
        return vs_fail_context(rc, "migration stream: record #%llu (DISK_DIGEST)",
                               (ull)h->seq);
    if (rc)
        return rc;
    struct disk_in *in = &d->d[dg.disk];
    if (in->digest_seen)
        return vs_fail(EPROTO, "migration stream: record #%llu (DISK_DIGEST): disk %u's "
                       "digest arrived twice", (ull)h->seq, dg.disk);
    in->digest_seen = true;
    uint64_t t0 = vs_clock_ns();
    if (fdatasync(in->fd))   /* on disk before this side says verified */
        return vs_fail(errno, "--disk %s: flushing the received disk failed: %s", in->path,
                       strerror(errno));
    uint64_t ours = vs_disk_digest(in->hash, in->nblocks);
    rep->digest_ns += vs_clock_ns() - t0;
    if (dg.disk == 0 || !rep->digest)
        rep->digest = ours;
    rep->disks++;
    rep->size_bytes += dg.size;
    if (ours != dg.xxh3)
        snprintf(in->mismatch, sizeof(in->mismatch), "disk %u (%s): digest %016llx differs "
                 "from the source's %016llx", dg.disk, in->path, (ull)ours, (ull)dg.xxh3);
    return 0;
}

void vs_disk_recv_verdict(struct vs_disk_recv *d, char *reason, size_t len)
{
    for (unsigned i = 0; d && i < d->nr; i++) {
        struct disk_in *in = &d->d[i];
        if (!d->size[i])
            continue;
        if (!in->digest_seen) {
            snprintf(reason, len, "disk %u (%s): the source sent no DISK_DIGEST", i, in->path);
            return;
        }
        if (in->mismatch[0]) {
            snprintf(reason, len, "%s", in->mismatch);
            return;
        }
    }
}
