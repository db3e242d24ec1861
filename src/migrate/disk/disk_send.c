#include "migrate/disk/disk_send.h"
#include "migrate/disk/disk_wire.h"
#include "common/clock.h"
#include "common/error.h"
#include "vmm/virtio/virtio_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

typedef unsigned long long ull;

struct disk_out {
    unsigned index;                 /* among the VM's disks (VM_CONFIG order) */
    struct vs_virtio_blk *dev;
    const char *path;
    int fd;                         /* O_RDONLY, OFD read lock */
    uint64_t size, nblocks;
    struct vs_blk_dirty dirty;      /* the device marks; we take */
    uint64_t *pending;              /* the next pass's blocks */
    uint64_t *sent_hash;            /* each block's hash as last sent (zeros: not sent) */
    uint64_t blocks_sent;
    bool tracking;
};

struct vs_disk_send {
    unsigned n;
    struct disk_out d[VS_WIRE_MAX_DISKS];
    bool bulk;                      /* the next pass is the first: zero blocks are skipped */
    uint8_t *data;                  /* VS_WIRE_MAX_DISK_BLOCKS blocks */
};

/* Every block's hash as all zeros (holes, blocks never sent). */
static void zero_hashes(uint64_t *hash, uint64_t size, uint64_t nblocks)
{
    uint64_t zero_full = vs_disk_zero_hash(VS_WIRE_DISK_BLOCK);
    for (uint64_t b = 0; b < nblocks; b++)
        hash[b] = vs_disk_block_len(size, b) == VS_WIRE_DISK_BLOCK
                      ? zero_full : vs_disk_zero_hash(vs_disk_block_len(size, b));
}

static int open_disk(struct disk_out *o)
{
    o->fd = open(o->path, O_RDONLY | O_CLOEXEC);
    if (o->fd < 0)
        return vs_fail(errno, "--with-disks: cannot open disk %s to copy it: %s", o->path,
                       strerror(errno));
    struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
    if (fcntl(o->fd, F_OFD_SETLK, &fl) < 0)
        return vs_fail(errno, "--with-disks: disk %s is locked for writing by another "
                       "process (%s): is a migration already copying it?", o->path,
                       strerror(errno));
    off_t end = lseek(o->fd, 0, SEEK_END);
    if (end <= 0)
        return vs_fail(end < 0 ? errno : EINVAL, "--with-disks: cannot size disk %s",
                       o->path);
    o->size = (uint64_t)end;
    o->nblocks = vs_disk_nblocks(o->size);
    int rc = vs_blk_dirty_init(&o->dirty, o->size);
    if (rc)
        return rc;
    o->pending = calloc(o->dirty.nwords ? o->dirty.nwords : 1, sizeof(uint64_t));
    o->sent_hash = malloc(o->nblocks * sizeof(uint64_t));
    if (!o->pending || !o->sent_hash)
        return vs_fail(ENOMEM, "out of memory for disk %s's pass map", o->path);
    zero_hashes(o->sent_hash, o->size, o->nblocks);   /* the destination starts all zero */
    return 0;
}

int vs_disk_send_new(struct vs_disk_send **out, struct vs_vm *vm, uint32_t *mask)
{
    *out = NULL;
    *mask = 0;
    struct vs_disk_send *s = calloc(1, sizeof(*s));
    if (!s)
        return vs_fail(ENOMEM, "out of memory for copying disks");
    for (unsigned i = 0; i < vm->nr_disks && i < VS_WIRE_MAX_DISKS; i++) {
        if (vs_virtio_blk_spec(vm->disks[i])->shared)
            continue;
        struct disk_out *o = &s->d[s->n++];
        o->index = i;
        o->fd = -1;
        o->dev = vm->disks[i];
        o->path = vs_virtio_blk_spec(vm->disks[i])->path;
        int rc = open_disk(o);
        if (rc) {
            vs_disk_send_free(s);
            return rc;
        }
        *mask |= 1u << i;
    }
    if (!s->n) {
        vs_disk_send_free(s);
        return 0;
    }
    s->data = malloc((size_t)VS_WIRE_MAX_DISK_BLOCKS * VS_WIRE_DISK_BLOCK);
    if (!s->data) {
        vs_disk_send_free(s);
        return vs_fail(ENOMEM, "out of memory for copying disks");
    }
    *out = s;
    return 0;
}

void vs_disk_send_stop(struct vs_disk_send *s)
{
    for (unsigned i = 0; s && i < s->n; i++) {
        if (s->d[i].tracking) {
            vs_virtio_blk_track_writes(s->d[i].dev, NULL);
            s->d[i].tracking = false;
        }
        if (s->d[i].fd >= 0)
            close(s->d[i].fd);   /* and its lock: the disk may be a destination's next */
        s->d[i].fd = -1;
    }
}

void vs_disk_send_free(struct vs_disk_send *s)
{
    if (!s)
        return;
    vs_disk_send_stop(s);
    for (unsigned i = 0; i < s->n; i++) {
        vs_blk_dirty_destroy(&s->d[i].dirty);
        free(s->d[i].pending);
        free(s->d[i].sent_hash);
    }
    free(s->data);
    free(s);
}

static void mark_pending(struct disk_out *o, uint64_t off, uint64_t end)
{
    for (uint64_t b = off / VS_WIRE_DISK_BLOCK; b * VS_WIRE_DISK_BLOCK < end && b < o->nblocks; b++)
        o->pending[b / 64] |= 1ull << (b % 64);
}

/* The allocated extents of the file (all of it where SEEK_DATA is not supported). */
static uint64_t mark_allocated(struct disk_out *o)
{
    uint64_t allocated = 0;
    off_t pos = 0;
    while ((uint64_t)pos < o->size) {
        off_t data = lseek(o->fd, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break;                          /* a hole to the end */
        if (data < 0) {                     /* no SEEK_DATA here: everything */
            mark_pending(o, 0, o->size);
            return o->size;
        }
        off_t hole = lseek(o->fd, data, SEEK_HOLE);
        if (hole < 0 || (uint64_t)hole > o->size)
            hole = (off_t)o->size;
        mark_pending(o, (uint64_t)data, (uint64_t)hole);
        allocated += (uint64_t)(hole - data);
        pos = hole;
    }
    return allocated;
}

int vs_disk_send_start(struct vs_disk_send *s, struct vs_disk_report *rep)
{
    rep->disks = s->n;
    for (unsigned i = 0; i < s->n; i++) {
        struct disk_out *o = &s->d[i];
        /* Tracking first: a write that lands after the extents were read is marked. */
        vs_virtio_blk_track_writes(o->dev, &o->dirty);
        o->tracking = true;
        rep->size_bytes += o->size;
        rep->allocated_bytes += mark_allocated(o);
    }
    s->bulk = true;
    return 0;
}

uint64_t vs_disk_send_sync(struct vs_disk_send *s)
{
    uint64_t blocks = 0;
    for (unsigned i = 0; s && i < s->n; i++) {
        struct disk_out *o = &s->d[i];
        for (uint64_t w = 0; w < o->dirty.nwords; w++) {
            o->pending[w] |= vs_blk_dirty_take_word(&o->dirty, w);
            blocks += (uint64_t)__builtin_popcountll(o->pending[w]);
        }
    }
    return blocks;
}

static bool all_zero(const uint8_t *p, size_t len)
{
    static const uint8_t zeros[4096];
    for (size_t off = 0; off < len; off += sizeof(zeros)) {
        size_t n = len - off < sizeof(zeros) ? len - off : sizeof(zeros);
        if (memcmp(p + off, zeros, n))
            return false;
    }
    return true;
}

/* One record's worth: data blocks at s->data, then zero blocks. */
struct batch {
    uint64_t list[VS_WIRE_MAX_DISK_BLOCKS];   /* data first ... */
    uint64_t zero[VS_WIRE_MAX_DISK_BLOCKS];   /* ... then these */
    uint32_t ndata, nzero;
};

static int flush_batch(struct vs_disk_send *s, struct disk_out *o, struct vs_wire_writer *w,
                       uint32_t pass, struct batch *b, struct vs_pass_stats *ps,
                       struct vs_disk_report *rep)
{
    uint32_t count = b->ndata + b->nzero;
    if (!count)
        return 0;
    uint8_t head[sizeof(struct vs_wire_disk_blocks) + VS_WIRE_MAX_DISK_BLOCKS * 8];
    struct vs_wire_disk_blocks h = { .disk = o->index, .pass = pass, .count = count,
                                     .zero = b->nzero };
    memcpy(head, &h, sizeof(h));
    memcpy(head + sizeof(h), b->list, b->ndata * 8ull);
    memcpy(head + sizeof(h) + b->ndata * 8ull, b->zero, b->nzero * 8ull);
    uint32_t head_len = (uint32_t)(sizeof(h) + count * 8ull);
    uint64_t data_len = (uint64_t)b->ndata * VS_WIRE_DISK_BLOCK;
    int rc = vs_wire_send_parts(w, VS_REC_DISK_BLOCKS, head, head_len, s->data, data_len);
    if (rc)
        return vs_fail_context(rc, "sending blocks of disk %s", o->path);
    uint64_t bytes = sizeof(struct vs_wire_header) + head_len + data_len;
    ps->disk_blocks += count;
    ps->disk_bytes += bytes;
    ps->bytes += bytes;
    rep->blocks += b->ndata;
    rep->zero_blocks += b->nzero;
    rep->bytes += bytes;
    o->blocks_sent += count;
    b->ndata = b->nzero = 0;
    return 0;
}

/* Read block bn into the batch's next data slot; file it as data or zero. */
static int add_block(struct vs_disk_send *s, struct disk_out *o, uint64_t bn, struct batch *b)
{
    uint8_t *dst = s->data + (size_t)b->ndata * VS_WIRE_DISK_BLOCK;
    uint32_t len = vs_disk_block_len(o->size, bn);
    ssize_t got = pread(o->fd, dst, len, (off_t)(bn * VS_WIRE_DISK_BLOCK));
    if (got != (ssize_t)len)
        return vs_fail(got < 0 ? errno : EIO, "--with-disks: reading block %llu of disk %s "
                       "failed: %s", (ull)bn, o->path, got < 0 ? strerror(errno) : "short read");
    if (len < VS_WIRE_DISK_BLOCK)
        memset(dst + len, 0, VS_WIRE_DISK_BLOCK - len);
    if (!all_zero(dst, len)) {
        b->list[b->ndata++] = bn;
        o->sent_hash[bn] = XXH3_64bits(dst, len);
        return 0;
    }
    if (!s->bulk)
        b->zero[b->nzero++] = bn;   /* the destination starts all zero: nothing to say */
    o->sent_hash[bn] = vs_disk_zero_hash(len);
    return 0;
}

static int send_disk(struct vs_disk_send *s, struct disk_out *o, struct vs_wire_writer *w,
                     uint32_t pass, vs_disk_pace_fn pace, void *pace_ctx,
                     struct vs_pass_stats *ps, struct vs_disk_report *rep)
{
    struct batch b = { .ndata = 0 };
    for (uint64_t wd = 0; wd < o->dirty.nwords; wd++) {
        while (o->pending[wd]) {
            uint64_t bit = (uint64_t)__builtin_ctzll(o->pending[wd]);
            o->pending[wd] &= ~(1ull << bit);
            int rc = add_block(s, o, wd * 64 + bit, &b);
            if (!rc && b.ndata + b.nzero == VS_WIRE_MAX_DISK_BLOCKS) {
                uint64_t before = ps->disk_bytes;
                rc = flush_batch(s, o, w, pass, &b, ps, rep);
                if (!rc && pace)
                    rc = pace(pace_ctx, ps->disk_bytes - before);
            }
            if (rc)
                return rc;
        }
    }
    return flush_batch(s, o, w, pass, &b, ps, rep);
}

int vs_disk_send_pass(struct vs_disk_send *s, struct vs_wire_writer *w, uint32_t pass,
                      vs_disk_pace_fn pace, void *pace_ctx, struct vs_pass_stats *ps,
                      struct vs_disk_report *rep)
{
    uint64_t t0 = vs_clock_ns(), before = ps->disk_blocks;
    for (unsigned i = 0; i < s->n; i++) {
        int rc = send_disk(s, &s->d[i], w, pass, pace, pace_ctx, ps, rep);
        if (rc)
            return rc;
    }
    uint64_t ns = vs_clock_ns() - t0;
    ps->duration_ns += ns;
    if (s->bulk)
        rep->bulk_ns = ns;
    if (ps->final)
        rep->final_blocks += ps->disk_blocks - before;
    if (ps->disk_blocks > before)
        rep->passes++;
    s->bulk = false;
    return 0;
}

/* The disk as it is now: per-block hashes (holes hash as zeros without reading) into
 * hash (nblocks entries). */
static int hash_disk(struct vs_disk_send *s, struct disk_out *o, uint64_t *hash)
{
    zero_hashes(hash, o->size, o->nblocks);
    struct disk_out copy = *o;
    copy.pending = calloc(o->dirty.nwords ? o->dirty.nwords : 1, sizeof(uint64_t));
    if (!copy.pending) {
        free(hash);
        return vs_fail(ENOMEM, "out of memory for the digest of disk %s", o->path);
    }
    mark_allocated(&copy);
    /* Hashed where the page cache holds it when the file can be mapped (no copy: this is
     * downtime), else read block by block. */
    const uint8_t *map = mmap(NULL, o->size, PROT_READ, MAP_SHARED, o->fd, 0);
    if (map == MAP_FAILED)
        map = NULL;
    else
        madvise((void *)map, o->size, MADV_SEQUENTIAL);
    int rc = 0;
    for (uint64_t b = 0; b < o->nblocks && !rc; b++) {
        if (!(copy.pending[b / 64] & (1ull << (b % 64))))
            continue;
        uint32_t len = vs_disk_block_len(o->size, b);
        if (map) {
            hash[b] = XXH3_64bits(map + b * VS_WIRE_DISK_BLOCK, len);
            continue;
        }
        ssize_t got = pread(o->fd, s->data, len, (off_t)(b * VS_WIRE_DISK_BLOCK));
        if (got != (ssize_t)len)
            rc = vs_fail(got < 0 ? errno : EIO, "--with-disks: reading disk %s for its "
                         "digest failed at block %llu", o->path, (ull)b);
        else
            hash[b] = XXH3_64bits(s->data, len);
    }
    if (map)
        munmap((void *)map, o->size);
    free(copy.pending);
    return rc;
}

/* The disk's digest as it is now (read again). */
static int digest_disk(struct vs_disk_send *s, struct disk_out *o, uint64_t *out)
{
    uint64_t *hash = malloc(o->nblocks * sizeof(uint64_t));
    if (!hash)
        return vs_fail(ENOMEM, "out of memory for the digest of disk %s", o->path);
    int rc = hash_disk(s, o, hash);
    if (!rc)
        *out = vs_disk_digest(hash, o->nblocks);
    free(hash);
    return rc;
}

int vs_disk_send_digests(struct vs_disk_send *s, struct vs_wire_writer *w, bool reread,
                         struct vs_disk_report *rep)
{
    uint64_t t0 = vs_clock_ns();
    for (unsigned i = 0; i < s->n; i++) {
        struct disk_out *o = &s->d[i];
        struct vs_wire_disk_digest d = { .disk = o->index, .size = o->size,
                                         .blocks_sent = o->blocks_sent };
        int rc = 0;
        if (reread)
            rc = digest_disk(s, o, &d.xxh3);
        else
            d.xxh3 = vs_disk_digest(o->sent_hash, o->nblocks);
        if (!rc)
            rc = vs_wire_send(w, VS_REC_DISK_DIGEST, &d, sizeof(d));
        if (rc)
            return rc;
        if (i == 0)
            rep->digest = d.xxh3;
    }
    rep->digest_ns = vs_clock_ns() - t0;
    return 0;
}

/* The first block whose hash now differs from its hash as sent, or nblocks. */
static uint64_t first_difference(const uint64_t *now, const uint64_t *sent, uint64_t nblocks)
{
    for (uint64_t b = 0; b < nblocks; b++)
        if (now[b] != sent[b])
            return b;
    return nblocks;
}

int vs_disk_send_audit(struct vs_disk_send *s, struct vs_disk_report *rep)
{
    uint64_t t0 = vs_clock_ns();
    rep->audit = VS_DISK_AUDIT_EQUAL;
    for (unsigned i = 0; s && i < s->n; i++) {
        struct disk_out *o = &s->d[i];
        uint64_t *now = malloc(o->nblocks * sizeof(uint64_t));
        if (!now)
            return vs_fail(ENOMEM, "out of memory for the audit of disk %s", o->path);
        int rc = hash_disk(s, o, now);
        uint64_t b = rc ? o->nblocks : first_difference(now, o->sent_hash, o->nblocks);
        free(now);
        if (rc)
            return rc;
        if (b < o->nblocks) {
            rep->audit = VS_DISK_AUDIT_DIFFERS;
            rep->audit_block = b;
            rep->audit_ns = vs_clock_ns() - t0;
            return vs_fail(EIO, "disk %s: block %llu (byte %llu) of the source's final disk "
                           "differs from what was sent: it changed behind the device's back "
                           "(another writer?); the destination's copy lacks that change. "
                           "The source's disk is left as it was: compare the two (e.g. cmp) "
                           "before using the destination's; x-disk-verify blackout would have "
                           "refused the commit", o->path, (ull)b,
                           (ull)(b * VS_WIRE_DISK_BLOCK));
        }
    }
    rep->audit_ns = vs_clock_ns() - t0;
    return 0;
}
