/* Building records and writing them to a channel (one writev per record). */
#include "wire/writer.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <xxh_x86dispatch.h>   /* the widest vector unit this CPU has */

int vs_wire_writer_init(struct vs_wire_writer *w, struct vs_channel *ch)
{
    memset(w, 0, sizeof(*w));
    w->ch = ch;
    w->page_buf = aligned_alloc(VS_WIRE_PAGE_SIZE, (size_t)VS_WIRE_MAX_PAGES * VS_WIRE_PAGE_SIZE);
    w->iov = calloc(3 + VS_WIRE_MAX_PAGES, sizeof(*w->iov));
    if (!w->page_buf || !w->iov)
        return vs_fail(ENOMEM, "out of memory allocating the %u KiB page send buffer",
                       VS_WIRE_MAX_PAGES * VS_WIRE_PAGE_SIZE / 1024);
    return 0;
}

void vs_wire_writer_destroy(struct vs_wire_writer *w)
{
    free(w->page_buf);
    free(w->iov);
    w->page_buf = NULL;
    w->iov = NULL;
}

static void make_header(struct vs_wire_header *h, const struct vs_wire_writer *w,
                        enum vs_wire_type type, uint16_t flags, uint32_t length,
                        uint64_t payload_sum)
{
    memset(h, 0, sizeof(*h));
    h->magic = VS_WIRE_MAGIC;
    h->type = (uint16_t)type;
    h->flags = flags;
    h->length = length;
    h->seq = w->seq;
    h->payload_sum = length ? payload_sum : 0;
    h->header_sum = 0;
    h->header_sum = XXH32(h, sizeof(*h), 0);
}

/* Send header + iov[1..iovcnt-1] (iov[0] is filled here); counts the record on success.
 * iov[zc..] is guest RAM that may go out zero-copy (zc = iovcnt: none). */
static int send_record_flags(struct vs_wire_writer *w, enum vs_wire_type type, uint16_t flags,
                             uint32_t length, uint64_t payload_sum, struct iovec *iov,
                             int iovcnt, int zc)
{
    struct vs_wire_header h;
    make_header(&h, w, type, flags, length, payload_sum);
    iov[0].iov_base = &h;
    iov[0].iov_len = sizeof(h);
    int rc;
    if (zc < iovcnt && w->ch->zerocopy) {
        /* The header and list live in reused buffers: they must be copied (plain send),
         * only the pages may be left to the kernel to read later. */
        rc = vs_channel_write_all_flags(w->ch, iov, zc, VS_CH_MORE);
        if (!rc)
            rc = vs_channel_write_all_flags(w->ch, iov + zc, iovcnt - zc, VS_CH_ZEROCOPY);
    } else {
        rc = vs_channel_write_all(w->ch, iov, iovcnt);
    }
    if (rc < 0)
        return vs_fail_context(rc, "migration stream: sending record #%llu (%s)",
                               (unsigned long long)w->seq, vs_wire_type_name(type));
    w->seq++;
    return 0;
}

static int send_record(struct vs_wire_writer *w, enum vs_wire_type type, uint32_t length,
                       uint64_t payload_sum, struct iovec *iov, int iovcnt)
{
    return send_record_flags(w, type, 0, length, payload_sum, iov, iovcnt, iovcnt);
}

int vs_wire_send(struct vs_wire_writer *w, enum vs_wire_type type, const void *payload,
                 uint32_t length)
{
    if (type < 1 || type > VS_REC_TYPE_MAX)
        return vs_fail(EINVAL, "migration stream: cannot send a record of unknown type %d",
                       (int)type);
    if (length > 0 && !payload)
        return vs_fail(EINVAL, "migration stream: %s record of %u bytes has no payload",
                       vs_wire_type_name(type), length);
    struct iovec iov[2] = { { 0 }, { .iov_base = (void *)payload, .iov_len = length } };
    uint64_t sum = length ? XXH3_64bits(payload, length) : 0;
    return send_record(w, type, length, sum, iov, 2);
}

static int check_list(const char *what, const uint64_t *gpa, uint32_t count)
{
    if (count < 1 || count > VS_WIRE_MAX_PAGES)
        return vs_fail(EINVAL, "migration stream: %s record with %u pages; it must carry "
                       "1..%u", what, count, VS_WIRE_MAX_PAGES);
    if (!gpa)
        return vs_fail(EINVAL, "migration stream: %s record without a page list", what);
    for (uint32_t i = 0; i < count; i++)
        if (gpa[i] % VS_WIRE_PAGE_SIZE)
            return vs_fail(EINVAL, "migration stream: %s record: page %u address 0x%llx is "
                           "not %u-aligned", what, i, (unsigned long long)gpa[i],
                           VS_WIRE_PAGE_SIZE);
    return 0;
}

/* XXH3-64 of the concatenation of iov[1..iovcnt-1] (what the reader hashes). */
static int hash_iov(const struct iovec *iov, int iovcnt, uint64_t *sum)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return vs_fail(ENOMEM, "migration stream: out of memory for a checksum state");
    XXH3_64bits_reset(st);
    for (int i = 1; i < iovcnt; i++)
        XXH3_64bits_update(st, iov[i].iov_base, iov[i].iov_len);
    *sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return 0;
}

int vs_wire_gather(struct vs_wire_writer *w, const uint8_t *ram, const uint64_t *gpa,
                   uint32_t count)
{
    int rc = check_list("PAGES", gpa, count);
    if (rc < 0)
        return rc;
    if (!ram || !w->page_buf)
        return vs_fail(EINVAL, "migration stream: PAGES record without guest RAM or page "
                       "buffer (writer not initialised?)");
    for (uint32_t i = 0; i < count; i++)
        memcpy(w->page_buf + (size_t)i * VS_WIRE_PAGE_SIZE, ram + gpa[i], VS_WIRE_PAGE_SIZE);
    return 0;
}

int vs_wire_send_pages(struct vs_wire_writer *w, const uint8_t *ram, const uint64_t *gpa,
                       uint32_t count, uint32_t pass)
{
    /* Snapshot first: the checksum and the data sent are of the same bytes. */
    int rc = vs_wire_gather(w, ram, gpa, count);
    return rc < 0 ? rc : vs_wire_send_gathered(w, gpa, count, pass);
}

int vs_wire_send_gathered(struct vs_wire_writer *w, const uint64_t *gpa, uint32_t count,
                          uint32_t pass)
{
    int rc = check_list("PAGES", gpa, count);
    if (rc < 0)
        return rc;
    struct vs_wire_pages info = { .count = count, .pass = pass };
    struct iovec iov[4] = {
        { 0 },
        { .iov_base = &info, .iov_len = sizeof(info) },
        { .iov_base = (void *)gpa, .iov_len = (size_t)count * sizeof(uint64_t) },
        { .iov_base = w->page_buf, .iov_len = (size_t)count * VS_WIRE_PAGE_SIZE },
    };
    uint64_t sum = 0;
    rc = hash_iov(iov, 4, &sum);
    if (rc < 0)
        return rc;
    uint32_t length = (uint32_t)(sizeof(info) + (size_t)count * (8 + VS_WIRE_PAGE_SIZE));
    return send_record(w, VS_REC_PAGES, length, sum, iov, 4);
}

int vs_wire_send_pages_direct(struct vs_wire_writer *w, const uint8_t *ram,
                              const uint64_t *gpa, uint32_t count, uint32_t pass,
                              bool sum_data)
{
    int rc = check_list("PAGES", gpa, count);
    if (rc < 0)
        return rc;
    if (!ram || !w->iov)
        return vs_fail(EINVAL, "migration stream: PAGES record without guest RAM or iovec "
                       "array (writer not initialised?)");
    struct vs_wire_pages info = { .count = count, .pass = pass };
    struct iovec *iov = w->iov;
    iov[1] = (struct iovec){ .iov_base = &info, .iov_len = sizeof(info) };
    iov[2] = (struct iovec){ .iov_base = (void *)gpa, .iov_len = (size_t)count * 8 };
    int n = 3;
    for (uint32_t i = 0; i < count; i++) {
        if (i > 0 && gpa[i] == gpa[i - 1] + VS_WIRE_PAGE_SIZE) {
            iov[n - 1].iov_len += VS_WIRE_PAGE_SIZE;
            continue;
        }
        iov[n++] = (struct iovec){ .iov_base = (void *)(ram + gpa[i]),
                                   .iov_len = VS_WIRE_PAGE_SIZE };
    }
    uint64_t sum = 0;
    if ((rc = hash_iov(iov, sum_data ? n : 3, &sum)) < 0)
        return rc;
    uint32_t length = (uint32_t)(sizeof(info) + (size_t)count * (8 + VS_WIRE_PAGE_SIZE));
    return send_record_flags(w, VS_REC_PAGES, sum_data ? 0 : VS_WIRE_FLAG_META_SUM, length,
                             sum, iov, n, 3);
}

int vs_wire_send_cpages(struct vs_wire_writer *w, const uint64_t *gpa, uint32_t count,
                        uint32_t pass, unsigned codec, const void *data, size_t len)
{
    int rc = check_list("CPAGES", gpa, count);
    if (rc < 0)
        return rc;
    if (!data || len == 0 || len > (size_t)count * VS_WIRE_PAGE_SIZE)
        return vs_fail(EINVAL, "migration stream: CPAGES record of %u pages with %zu bytes "
                       "of compressed data; send raw PAGES when compression does not pay",
                       count, len);
    struct vs_wire_cpages info = { .count = count, .pass = pass, .codec = codec };
    struct iovec iov[4] = {
        { 0 },
        { .iov_base = &info, .iov_len = sizeof(info) },
        { .iov_base = (void *)gpa, .iov_len = (size_t)count * sizeof(uint64_t) },
        { .iov_base = (void *)data, .iov_len = len },
    };
    uint64_t sum = 0;
    if ((rc = hash_iov(iov, 4, &sum)) < 0)
        return rc;
    uint32_t length = (uint32_t)(sizeof(info) + (size_t)count * 8 + len);
    return send_record(w, VS_REC_CPAGES, length, sum, iov, 4);
}

int vs_wire_send_zero_pages(struct vs_wire_writer *w, const uint64_t *gpa, uint32_t count,
                            uint32_t pass)
{
    int rc = check_list("ZERO_PAGES", gpa, count);
    if (rc < 0)
        return rc;
    struct vs_wire_pages info = { .count = count, .pass = pass };
    struct iovec iov[3] = {
        { 0 },
        { .iov_base = &info, .iov_len = sizeof(info) },
        { .iov_base = (void *)gpa, .iov_len = (size_t)count * sizeof(uint64_t) },
    };
    uint64_t sum = 0;
    rc = hash_iov(iov, 3, &sum);
    if (rc < 0)
        return rc;
    uint32_t length = (uint32_t)(sizeof(info) + (size_t)count * 8);
    return send_record(w, VS_REC_ZERO_PAGES, length, sum, iov, 3);
}
