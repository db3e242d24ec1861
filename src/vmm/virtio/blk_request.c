#include "vmm/virtio/blk_request.h"

#include <endian.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

/* The request is answered with `status` and never served. */
static int refuse(struct vs_blk_request *req, uint8_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct vs_blk_request *req, uint8_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->why, sizeof(req->why), fmt, ap);
    va_end(ap);
    req->status = status;
    return 0;
}

/* [sector, sector + nr) inside the disk, without computing anything that can overflow. */
static bool inside(const struct vs_blk_limits *lim, uint64_t sector, uint64_t nr)
{
    return sector <= lim->capacity && nr <= lim->capacity - sector;
}

static int check_data(const struct vs_blk_limits *lim, struct vs_blk_request *req)
{
    if (req->data_len % VS_BLK_SECTOR)
        return refuse(req, VS_BLK_S_IOERR, "%llu bytes of data is not a whole number of "
                      "sectors", (unsigned long long)req->data_len);
    uint64_t nr = req->data_len / VS_BLK_SECTOR;
    if (!inside(lim, req->sector, nr))
        return refuse(req, VS_BLK_S_IOERR, "sectors %llu+%llu are beyond the disk's %llu",
                      (unsigned long long)req->sector, (unsigned long long)nr,
                      (unsigned long long)lim->capacity);
    return 0;
}

/* The segments of a DISCARD or WRITE_ZEROES request, after the header. */
static int parse_ranges(const struct vs_vq_chain *c, const struct vs_blk_limits *lim,
                        struct vs_blk_request *req)
{
    bool discard = req->type == VS_BLK_T_DISCARD;
    uint32_t max_seg = discard ? lim->max_discard_seg : lim->max_write_zeroes_seg;
    uint32_t max_sectors = discard ? lim->max_discard_sectors : lim->max_write_zeroes_sectors;
    uint64_t len = c->read_bytes - VS_BLK_HEADER_BYTES;
    if (len == 0 || len % VS_BLK_RANGE_BYTES)
        return refuse(req, VS_BLK_S_IOERR, "%llu bytes of segments is not a whole number of "
                      "16-byte segments", (unsigned long long)len);
    uint64_t n = len / VS_BLK_RANGE_BYTES;
    if (n > max_seg || n > VS_BLK_MAX_RANGES)
        return refuse(req, VS_BLK_S_IOERR, "%llu segments, more than the %u allowed",
                      (unsigned long long)n, max_seg);
    for (unsigned i = 0; i < n; i++) {
        uint8_t raw[VS_BLK_RANGE_BYTES];
        vs_vq_chain_read(c, VS_BLK_HEADER_BYTES + (uint64_t)i * sizeof(raw), raw, sizeof(raw));
        uint64_t sector = get_le64(raw);
        uint32_t nr = get_le32(raw + 8), flags = get_le32(raw + 12);
        if (flags & ~(discard ? 0u : VS_BLK_WZ_F_UNMAP))
            return refuse(req, VS_BLK_S_UNSUPP, "segment %u has flags 0x%x", i, flags);
        if (nr > max_sectors)
            return refuse(req, VS_BLK_S_IOERR, "segment %u of %u sectors, more than the %u "
                          "allowed", i, nr, max_sectors);
        if (!inside(lim, sector, nr))
            return refuse(req, VS_BLK_S_IOERR, "segment %u: sectors %llu+%u are beyond the "
                          "disk's %llu", i, (unsigned long long)sector, nr,
                          (unsigned long long)lim->capacity);
        req->range[i] = (struct vs_blk_range){ .sector = sector, .nr_sectors = nr,
                                               .unmap = flags & VS_BLK_WZ_F_UNMAP };
    }
    req->nr_ranges = (unsigned)n;
    return 0;
}

int vs_blk_parse(const struct vs_vq_chain *c, const struct vs_blk_limits *lim,
                 struct vs_blk_request *req)
{
    memset(req, 0, offsetof(struct vs_blk_request, range));
    req->why[0] = '\0';
    if (c->read_bytes < VS_BLK_HEADER_BYTES) {
        snprintf(req->why, sizeof(req->why), "chain %u has %llu device-readable bytes, no room "
                 "for the 16-byte request header", c->head, (unsigned long long)c->read_bytes);
        return -1;
    }
    if (c->write_bytes < 1) {
        snprintf(req->why, sizeof(req->why), "chain %u has no device-writable byte for the "
                 "status", c->head);
        return -1;
    }
    uint8_t hdr[VS_BLK_HEADER_BYTES];
    vs_vq_chain_read(c, 0, hdr, sizeof(hdr));
    req->type = get_le32(hdr);
    req->sector = get_le64(hdr + 8);
    req->status = VS_BLK_S_OK;
    switch (req->type) {
    case VS_BLK_T_IN:
        req->data_len = c->write_bytes - 1;
        return check_data(lim, req);
    case VS_BLK_T_OUT:
        if (lim->ro)
            return refuse(req, VS_BLK_S_IOERR, "write to a read-only disk");
        req->data_len = c->read_bytes - VS_BLK_HEADER_BYTES;
        return check_data(lim, req);
    case VS_BLK_T_FLUSH:
        return 0;
    case VS_BLK_T_GET_ID:
        req->data_len = c->write_bytes - 1;
        return 0;
    case VS_BLK_T_DISCARD:
    case VS_BLK_T_WRITE_ZEROES:
        if (lim->ro)
            return refuse(req, VS_BLK_S_IOERR, "%s on a read-only disk",
                          req->type == VS_BLK_T_DISCARD ? "discard" : "write-zeroes");
        return parse_ranges(c, lim, req);
    default:
        return refuse(req, VS_BLK_S_UNSUPP, "request type %u is not supported", req->type);
    }
}

/* The chain's bytes [offset, offset + len) of one direction as an I/O vector. */
static unsigned chain_iov(const struct vs_vq_chain *c, bool writable, uint64_t offset,
                          uint64_t len, struct iovec *iov, unsigned max)
{
    unsigned n = 0, first = writable ? c->nr_read : 0, end = writable ? c->nr_segs : c->nr_read;
    for (unsigned i = first; i < end && len && n < max; i++) {
        const struct vs_vq_seg *s = &c->seg[i];
        if (offset >= s->len) {
            offset -= s->len;
            continue;
        }
        uint64_t take = s->len - offset < len ? s->len - offset : len;
        iov[n++] = (struct iovec){ .iov_base = s->host + offset, .iov_len = (size_t)take };
        len -= take;
        offset = 0;
    }
    return n;
}

unsigned vs_blk_data_iov(const struct vs_vq_chain *c, const struct vs_blk_request *req,
                         struct iovec *iov, unsigned max)
{
    if (req->type == VS_BLK_T_IN)
        return chain_iov(c, true, 0, req->data_len, iov, max);
    return chain_iov(c, false, VS_BLK_HEADER_BYTES, req->data_len, iov, max);
}
