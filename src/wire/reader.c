/* The one parser of migration input. Everything the peer sends is checked before use;
 * every error names the record (seq, type) and its stream offset. */
#include "wire/reader.h"
#include "wire/reader_internal.h"
#include "codec/codec.h"
#include "common/error.h"
#include "vmshift/guest_abi.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <xxh_x86dispatch.h>   /* the widest vector unit this CPU has */

typedef unsigned long long ull;

/* Compressed payload bytes a CPAGES record may carry beyond the raw size of its pages
 * (the source sends raw PAGES when compression does not shrink a batch). */
#define CPAGES_SLACK 65536u

void vs_wire_reader_init(struct vs_wire_reader *r, struct vs_channel *ch)
{
    memset(r, 0, sizeof(*r));
    r->ch = ch;
}

void vs_wire_reader_destroy(struct vs_wire_reader *r)
{
    for (unsigned i = 0; i < VS_CODEC_COUNT; i++)
        vs_codec_ctx_free(r->codec[i]);
    free(r->cbuf);
    free(r->pbuf);
    free(r->bounce);
    r->bounce = NULL;
    memset(r->codec, 0, sizeof(r->codec));
    r->cbuf = r->pbuf = NULL;
}

/* "migration stream: record #SEQ (TYPE) at offset N: <problem>". trusted = the header's
 * seq is believable (magic and header checksum passed). */
static int __attribute__((format(printf, 6, 7)))
rec_fail(int err, const struct vs_wire_header *h, int trusted, uint64_t offset,
         uint64_t next_seq, const char *fmt, ...)
{
    char problem[320], type[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    if (!trusted)
        return vs_fail(err, "migration stream: record #? (expecting #%llu) at offset %llu: %s",
                       (ull)next_seq, (ull)offset, problem);
    if (h->type >= 1 && h->type <= VS_REC_TYPE_MAX)
        snprintf(type, sizeof(type), "%s", vs_wire_type_name(h->type));
    else
        snprintf(type, sizeof(type), "type %u", h->type);
    return vs_fail(err, "migration stream: record #%llu (%s) at offset %llu: %s", (ull)h->seq,
                   type, (ull)offset, problem);
}

/* The same, for a header already accepted by vs_wire_read_header. */
#define REC_FAIL(err, r, h, ...) \
    rec_fail((err), (h), 1, (r)->record_offset, (r)->next_seq, __VA_ARGS__)

/* Size of the fixed-size payload of type, 0 if the type has a variable payload. */
static size_t fixed_size(unsigned type)
{
    switch (type) {
    case VS_REC_HELLO: return sizeof(struct vs_wire_hello);
    case VS_REC_HELLO_REPLY: return sizeof(struct vs_wire_hello_reply);
    case VS_REC_PASS_END: return sizeof(struct vs_wire_pass_end);
    case VS_REC_DIGEST: return sizeof(struct vs_wire_digest);
    case VS_REC_VERIFY_REPLY: return sizeof(struct vs_wire_verdict);
    case VS_REC_RESUMED: return sizeof(struct vs_wire_resumed);
    case VS_REC_STREAM_HELLO: return sizeof(struct vs_wire_stream_hello);
    case VS_REC_POSTCOPY_END: return sizeof(struct vs_wire_postcopy_end);
    case VS_REC_RESOLVE: return sizeof(struct vs_wire_resolve);
    case VS_REC_DISK_DIGEST: return sizeof(struct vs_wire_disk_digest);
    default: return 0;
    }
}

/* Allowed payload lengths of a (known) record type. */
static void length_limits(unsigned type, uint64_t *min, uint64_t *max)
{
    size_t fixed = fixed_size(type);
    *min = *max = fixed;
    switch (type) {
    case VS_REC_COMMIT:
    case VS_REC_CLAIM:
    case VS_REC_GRANT:
        *min = *max = 0;
        break;
    case VS_REC_HELLO:
        /* Other versions have other HELLO sizes: the version fields (first 4 bytes) are
         * read first, so an old or new peer is told which side to upgrade. */
        *min = 4;
        break;
    case VS_REC_ABORT:
        *min = 1;
        *max = VS_WIRE_MAX_REASON;
        break;
    case VS_REC_VCPU_STATE:
        *min = sizeof(struct vs_wire_vcpu_state) + 1;
        *max = sizeof(struct vs_wire_vcpu_state) + VS_WIRE_MAX_STATE;
        break;
    case VS_REC_VM_CONFIG:
        *min = 8;
        *max = VS_WIRE_MAX_VM_CONFIG;
        break;
    case VS_REC_MACHINE_STATE:
        *min = 1;
        *max = VS_WIRE_MAX_STATE;
        break;
    case VS_REC_PAGES:
        *min = sizeof(struct vs_wire_pages) + 8 + VS_WIRE_PAGE_SIZE;
        *max = sizeof(struct vs_wire_pages) + (uint64_t)VS_WIRE_MAX_PAGES * (8 + VS_WIRE_PAGE_SIZE);
        break;
    case VS_REC_ZERO_PAGES:
        *min = sizeof(struct vs_wire_pages) + 8;
        *max = sizeof(struct vs_wire_pages) + (uint64_t)VS_WIRE_MAX_PAGES * 8;
        break;
    case VS_REC_CPAGES:
        *min = sizeof(struct vs_wire_cpages) + 8 + 1;
        *max = sizeof(struct vs_wire_cpages) +
               (uint64_t)VS_WIRE_MAX_PAGES * (8 + VS_WIRE_PAGE_SIZE) + CPAGES_SLACK;
        break;
    case VS_REC_POSTCOPY_START:
        *min = sizeof(struct vs_wire_postcopy_start) + 8;
        *max = sizeof(struct vs_wire_postcopy_start) + VS_WIRE_BITMAP_BYTES(VS_WIRE_MAX_RAM);
        break;
    case VS_REC_POSTCOPY_RESUME:
        *min = sizeof(struct vs_wire_postcopy_resume);
        *max = sizeof(struct vs_wire_postcopy_resume) + VS_WIRE_BITMAP_BYTES(VS_WIRE_MAX_RAM);
        break;
    case VS_REC_POSTCOPY_DIGESTS:
        *min = sizeof(struct vs_wire_postcopy_digests) + 8;
        *max = sizeof(struct vs_wire_postcopy_digests) +
               VS_WIRE_MAX_RAM / VS_WIRE_BLOCK_SIZE * 8;
        break;
    case VS_REC_POSTCOPY_PAGES:
        *min = sizeof(struct vs_wire_postcopy_pages) + 8;
        *max = sizeof(struct vs_wire_postcopy_pages) +
               (uint64_t)VS_WIRE_MAX_PAGES * (8 + VS_WIRE_PAGE_SIZE);
        break;
    case VS_REC_DISK_BLOCKS:
        *min = sizeof(struct vs_wire_disk_blocks) + 8;
        *max = sizeof(struct vs_wire_disk_blocks) +
               (uint64_t)VS_WIRE_MAX_DISK_BLOCKS * (8 + VS_WIRE_DISK_BLOCK);
        break;
    case VS_REC_PAGE_REQUEST:
        *min = sizeof(struct vs_wire_page_request) + 8;
        *max = sizeof(struct vs_wire_page_request) + (uint64_t)VS_WIRE_MAX_PAGES * 8;
        break;
    default:
        break;
    }
}

int vs_wire_read_header(struct vs_wire_reader *r, struct vs_wire_header *h)
{
    uint64_t at = r->offset;
    int rc = vs_channel_read_exact(r->ch, h, sizeof(*h));
    if (rc < 0)
        return vs_fail_context(rc, "migration stream: reading record #%llu header at offset "
                               "%llu", (ull)r->next_seq, (ull)at);
    const uint8_t *b = (const uint8_t *)h;
    if (h->magic != VS_WIRE_MAGIC && at == 0 && (b[0] == 0x16 || b[0] == 0x15) && b[1] == 3)
        return rec_fail(EPROTO, h, 0, at, r->next_seq, "the peer speaks TLS (its first bytes "
                        "are a TLS record) but this side runs with --insecure; give both "
                        "sides the same security options");
    if (h->magic != VS_WIRE_MAGIC)
        return rec_fail(EPROTO, h, 0, at, r->next_seq, "bad magic 0x%08x (expected 0x%08x): "
                        "not a vmshift migration stream or out of sync", h->magic,
                        VS_WIRE_MAGIC);
    struct vs_wire_header copy = *h;
    copy.header_sum = 0;
    uint32_t sum = XXH32(&copy, sizeof(copy), 0);
    if (sum != h->header_sum)
        return rec_fail(EBADMSG, h, 0, at, r->next_seq, "header checksum mismatch (header "
                        "says 0x%08x, computed 0x%08x): the header was corrupted in transit",
                        h->header_sum, sum);
    if (h->type < 1 || h->type > VS_REC_TYPE_MAX)
        return rec_fail(EPROTO, h, 1, at, r->next_seq, "unknown record type %u (this vmshift "
                        "knows 1..%u); is the source a newer vmshift?", h->type,
                        VS_REC_TYPE_MAX);
    if (h->type >= VS_REC_POSTCOPY_FIRST && h->type <= VS_REC_POSTCOPY_LAST && !r->postcopy)
        return rec_fail(EPROTO, h, 1, at, r->next_seq, "post-copy record, but post-copy was "
                        "not agreed in the handshake (HELLO features)");
    if ((h->type == VS_REC_DISK_BLOCKS || h->type == VS_REC_DISK_DIGEST) && !r->disks)
        return rec_fail(EPROTO, h, 1, at, r->next_seq, "disk record, but copying disks was "
                        "not agreed in the handshake (HELLO features)");
    uint16_t allowed = h->type == VS_REC_PAGES ? VS_WIRE_FLAG_META_SUM : 0;
    if (h->flags & ~allowed)
        return rec_fail(EPROTO, h, 1, at, r->next_seq, "flags 0x%04x are not allowed on %s "
                        "records (allowed: 0x%04x)", h->flags, vs_wire_type_name(h->type),
                        allowed);
    if (h->seq != r->next_seq)
        return rec_fail(EPROTO, h, 1, at, r->next_seq, "record out of order: expected #%llu, "
                        "got #%llu (a record was lost, repeated or reordered)",
                        (ull)r->next_seq, (ull)h->seq);
    uint64_t min, max;
    length_limits(h->type, &min, &max);
    if (h->length < min || h->length > max) {
        if (min == max)
            return rec_fail(EPROTO, h, 1, at, r->next_seq, "payload length %u is wrong: %s "
                            "payloads are exactly %llu bytes", h->length,
                            vs_wire_type_name(h->type), (ull)min);
        return rec_fail(EPROTO, h, 1, at, r->next_seq, "payload length %u is out of range: "
                        "%s payloads are %llu..%llu bytes", h->length,
                        vs_wire_type_name(h->type), (ull)min, (ull)max);
    }
    r->next_seq++;
    r->record_offset = at;
    r->offset = at + sizeof(*h);
    return 0;
}

int vs_wire_read_part(struct vs_wire_reader *r, const struct vs_wire_header *h, void *buf,
                     size_t len, const char *what)
{
    int rc = vs_channel_read_exact(r->ch, buf, len);
    if (rc < 0)
        return vs_fail_context(rc, "migration stream: record #%llu (%s) at offset %llu: "
                               "reading %s", (ull)h->seq, vs_wire_type_name(h->type),
                               (ull)r->record_offset, what);
    r->offset += len;
    return 0;
}

static int check_sum(struct vs_wire_reader *r, const struct vs_wire_header *h, uint64_t sum)
{
    if (sum != h->payload_sum)
        return REC_FAIL(EBADMSG, r, h, "payload checksum mismatch over %u bytes (header says "
                        "0x%016llx, computed 0x%016llx): data corrupted in transit",
                        h->length, (ull)h->payload_sum, (ull)sum);
    return 0;
}

int vs_wire_read_payload(struct vs_wire_reader *r, const struct vs_wire_header *h, void *buf,
                         size_t cap)
{
    if (h->length > cap)
        return REC_FAIL(EMSGSIZE, r, h, "payload of %u bytes does not fit the %zu-byte "
                        "buffer for it", h->length, cap);
    if (h->length == 0)
        return check_sum(r, h, 0);
    int rc = vs_wire_read_part(r, h, buf, h->length, "payload");
    if (rc < 0)
        return rc;
    return check_sum(r, h, XXH3_64bits(buf, h->length));
}

/* Read a page list of count entries into gpa[] and check every address. */
static int read_page_list(struct vs_wire_reader *r, const struct vs_wire_header *h,
                          uint64_t ram_size, uint32_t count, uint64_t *gpa)
{
    int rc = vs_wire_read_part(r, h, gpa, (size_t)count * sizeof(uint64_t), "the page list");
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < count; i++) {
        if (gpa[i] % VS_WIRE_PAGE_SIZE)
            return REC_FAIL(EPROTO, r, h, "page %u of %u: gpa 0x%llx is not %u-aligned", i,
                            count, (ull)gpa[i], VS_WIRE_PAGE_SIZE);
        if (ram_size < VS_WIRE_PAGE_SIZE || gpa[i] > ram_size - VS_WIRE_PAGE_SIZE)
            return REC_FAIL(ERANGE, r, h, "page %u of %u: gpa 0x%llx is outside guest RAM "
                            "of 0x%llx bytes", i, count, (ull)gpa[i], (ull)ram_size);
    }
    return 0;
}

int vs_wire_read_pages(struct vs_wire_reader *r, const struct vs_wire_header *h,
                       uint8_t *ram, uint64_t ram_size, struct vs_wire_pages *info,
                       uint64_t *gpa)
{
    if (h->type != VS_REC_PAGES && h->type != VS_REC_ZERO_PAGES)
        return REC_FAIL(EPROTO, r, h, "expected PAGES or ZERO_PAGES, got %s",
                        vs_wire_type_name(h->type));
    int data = h->type == VS_REC_PAGES;
    int rc = vs_wire_read_part(r, h, info, sizeof(*info), "the page record header");
    if (rc < 0)
        return rc;
    if (info->count < 1 || info->count > VS_WIRE_MAX_PAGES)
        return REC_FAIL(EPROTO, r, h, "page count %u is out of range 1..%u", info->count,
                        VS_WIRE_MAX_PAGES);
    uint64_t per_page = 8 + (data ? VS_WIRE_PAGE_SIZE : 0);
    uint64_t want = sizeof(*info) + (uint64_t)info->count * per_page;
    if (want != h->length)
        return REC_FAIL(EPROTO, r, h, "page count %u needs a payload of %llu bytes but the "
                        "header says %u", info->count, (ull)want, h->length);
    size_t list_len = (size_t)info->count * sizeof(uint64_t);
    if ((rc = read_page_list(r, h, ram_size, info->count, gpa)) < 0)
        return rc;

    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return vs_fail(ENOMEM, "migration stream: out of memory for a checksum state");
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, info, sizeof(*info));
    XXH3_64bits_update(st, gpa, list_len);
    if (data) {
        /* One read per run of consecutive pages (a whole record when the source sends
         * memory in order); each run is hashed as it lies in RAM right after reading,
         * unless the source summed only the page list (VS_WIRE_FLAG_META_SUM). */
        XXH3_state_t *data_st = (h->flags & VS_WIRE_FLAG_META_SUM) ? NULL : st;
        uint32_t start = 0;
        for (uint32_t i = 1; i <= info->count && rc == 0; i++) {
            if (i < info->count && gpa[i] == gpa[i - 1] + VS_WIRE_PAGE_SIZE)
                continue;
            size_t len = (size_t)(i - start) * VS_WIRE_PAGE_SIZE;
            rc = vs_wire_read_run(r, h, ram, gpa[start], len, data_st);
            start = i;
        }
    }
    uint64_t sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if (rc < 0)
        return rc;
    return check_sum(r, h, sum);
}

/* Allocate what decompressing needs for codec, once per reader. */
static int cpages_buffers(struct vs_wire_reader *r, const struct vs_wire_header *h,
                          unsigned codec)
{
    if (!r->cbuf)
        r->cbuf = malloc((size_t)VS_WIRE_MAX_PAGES * VS_WIRE_PAGE_SIZE + CPAGES_SLACK);
    if (!r->pbuf)
        r->pbuf = aligned_alloc(VS_WIRE_PAGE_SIZE, (size_t)VS_WIRE_MAX_PAGES * VS_WIRE_PAGE_SIZE);
    if (!r->cbuf || !r->pbuf)
        return REC_FAIL(ENOMEM, r, h, "out of memory for the decompression buffers");
    if (!r->codec[codec]) {
        int rc = vs_codec_ctx_new(&r->codec[codec], (enum vs_codec)codec, 0);
        if (rc < 0)
            return vs_fail_context(rc, "migration stream: record #%llu (CPAGES)", (ull)h->seq);
    }
    return 0;
}

int vs_wire_read_cpages(struct vs_wire_reader *r, const struct vs_wire_header *h,
                        uint8_t *ram, uint64_t ram_size, struct vs_wire_cpages *info,
                        uint64_t *gpa)
{
    if (h->type != VS_REC_CPAGES)
        return REC_FAIL(EPROTO, r, h, "expected CPAGES, got %s", vs_wire_type_name(h->type));
    int rc = vs_wire_read_part(r, h, info, sizeof(*info), "the compressed page record header");
    if (rc < 0)
        return rc;
    if (info->count < 1 || info->count > VS_WIRE_MAX_PAGES)
        return REC_FAIL(EPROTO, r, h, "page count %u is out of range 1..%u", info->count,
                        VS_WIRE_MAX_PAGES);
    if (info->codec == VS_CODEC_NONE || info->codec >= VS_CODEC_COUNT ||
        !((r->codecs >> info->codec) & 1))
        return REC_FAIL(EPROTO, r, h, "codec %u (%s) was not agreed in the handshake "
                        "(agreed mask 0x%x)", info->codec, vs_codec_name(info->codec),
                        r->codecs);
    uint64_t head = sizeof(*info) + (uint64_t)info->count * 8;
    uint64_t raw = (uint64_t)info->count * VS_WIRE_PAGE_SIZE;
    if (h->length <= head || h->length - head > raw + CPAGES_SLACK)
        return REC_FAIL(EPROTO, r, h, "%u pages with a payload of %u bytes leave %lld bytes "
                        "of compressed data; it must be 1..%llu", info->count, h->length,
                        (long long)h->length - (long long)head, (ull)(raw + CPAGES_SLACK));
    if ((rc = read_page_list(r, h, ram_size, info->count, gpa)) < 0)
        return rc;
    if ((rc = cpages_buffers(r, h, info->codec)) < 0)
        return rc;
    size_t clen = (size_t)(h->length - head);
    if ((rc = vs_wire_read_part(r, h, r->cbuf, clen, "compressed page data")) < 0)
        return rc;
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return vs_fail(ENOMEM, "migration stream: out of memory for a checksum state");
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, info, sizeof(*info));
    XXH3_64bits_update(st, gpa, (size_t)info->count * 8);
    XXH3_64bits_update(st, r->cbuf, clen);
    uint64_t sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if ((rc = check_sum(r, h, sum)) < 0)
        return rc;
    rc = vs_codec_decompress(r->codec[info->codec], r->cbuf, clen, r->pbuf, (size_t)raw);
    if (rc < 0)
        return vs_fail_context(rc, "migration stream: record #%llu (CPAGES) at offset %llu",
                               (ull)h->seq, (ull)r->record_offset);
    return vs_wire_put_pages(r, h, ram, gpa, info->count, r->pbuf);
}

int vs_wire_read_fixed(struct vs_wire_reader *r, const struct vs_wire_header *h,
                       enum vs_wire_type type, void *out, size_t size)
{
    if (h->type != type)
        return REC_FAIL(EPROTO, r, h, "expected %s, got %s", vs_wire_type_name(type),
                        vs_wire_type_name(h->type));
    if (h->length != size)
        return REC_FAIL(EPROTO, r, h, "payload length %u is wrong: expected exactly %zu "
                        "bytes", h->length, size);
    return vs_wire_read_payload(r, h, out, size);
}

/* ---- Post-copy records ---- */

/* XXH3-64 of the concatenation of up to three parts (len 0: absent). */
static int sum_parts(const void *a, size_t alen, const void *b, size_t blen, const void *c,
                     size_t clen, uint64_t *sum)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return vs_fail(ENOMEM, "migration stream: out of memory for a checksum state");
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, a, alen);
    if (blen)
        XXH3_64bits_update(st, b, blen);
    if (clen)
        XXH3_64bits_update(st, c, clen);
    *sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return 0;
}

static int expect_type(struct vs_wire_reader *r, const struct vs_wire_header *h,
                       enum vs_wire_type type)
{
    if (h->type != type)
        return REC_FAIL(EPROTO, r, h, "expected %s, got %s", vs_wire_type_name(type),
                        vs_wire_type_name(h->type));
    return 0;
}

static int check_ram_size(struct vs_wire_reader *r, const struct vs_wire_header *h,
                          uint64_t ram_size)
{
    if (ram_size == 0 || ram_size % VS_WIRE_PAGE_SIZE || ram_size > VS_WIRE_MAX_RAM)
        return REC_FAIL(EINVAL, r, h, "guest RAM size %llu cannot take post-copy records "
                        "(a multiple of %u up to %llu)", (ull)ram_size, VS_WIRE_PAGE_SIZE,
                        (ull)VS_WIRE_MAX_RAM);
    return 0;
}

/* head_len bytes of head, then (when bitmap) exactly one page bitmap of ram_size; the sum
 * over both; *bits = the bits set. */
static int read_head_and_bitmap(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                uint64_t ram_size, void *head, size_t head_len,
                                uint64_t *bitmap, uint64_t *bits)
{
    int rc = check_ram_size(r, h, ram_size);
    if (rc < 0)
        return rc;
    uint64_t bytes = bitmap ? VS_WIRE_BITMAP_BYTES(ram_size) : 0;
    if (h->length != head_len + bytes)
        return REC_FAIL(EPROTO, r, h, "payload length %u is wrong: %s for %llu bytes of RAM "
                        "is exactly %llu bytes", h->length, vs_wire_type_name(h->type),
                        (ull)ram_size, (ull)(head_len + bytes));
    if ((rc = vs_wire_read_part(r, h, head, head_len, "the record header")) < 0)
        return rc;
    *bits = 0;
    uint64_t sum = 0;
    if ((bitmap && (rc = vs_wire_read_part(r, h, bitmap, (size_t)bytes, "the page bitmap")) < 0) ||
        (rc = sum_parts(head, head_len, bitmap, (size_t)bytes, NULL, 0, &sum)) < 0 ||
        (rc = check_sum(r, h, sum)) < 0)
        return rc;
    if (!bitmap)
        return 0;
    uint64_t npages = ram_size / VS_WIRE_PAGE_SIZE, words = bytes / 8;
    if (npages % 64 && (bitmap[words - 1] >> (npages % 64)))
        return REC_FAIL(ERANGE, r, h, "the page bitmap marks pages beyond guest RAM of %llu "
                        "pages", (ull)npages);
    for (uint64_t i = 0; i < words; i++)
        *bits += (uint64_t)__builtin_popcountll(bitmap[i]);
    return 0;
}

int vs_wire_read_postcopy_start(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                uint64_t ram_size, struct vs_wire_postcopy_start *out,
                                uint64_t *bitmap)
{
    uint64_t bits;
    int rc = expect_type(r, h, VS_REC_POSTCOPY_START);
    if (!rc)
        rc = read_head_and_bitmap(r, h, ram_size, out, sizeof(*out), bitmap, &bits);
    if (rc < 0)
        return rc;
    if (bits != out->missing_pages)
        return REC_FAIL(EPROTO, r, h, "says %llu pages are missing but its bitmap marks %llu",
                        (ull)out->missing_pages, (ull)bits);
    return 0;
}

int vs_wire_read_postcopy_resume(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                 uint64_t ram_size, struct vs_wire_postcopy_resume *out,
                                 uint64_t *bitmap)
{
    uint64_t bits;
    int rc = expect_type(r, h, VS_REC_POSTCOPY_RESUME);
    if (!rc)
        rc = read_head_and_bitmap(r, h, ram_size, out, sizeof(*out), bitmap, &bits);
    if (rc < 0)
        return rc;
    if (out->nr_streams < 1 || out->nr_streams > VS_WIRE_MAX_STREAMS)
        return REC_FAIL(EPROTO, r, h, "%u streams is out of range 1..%d", out->nr_streams,
                        VS_WIRE_MAX_STREAMS);
    if (bits != out->missing_pages)
        return REC_FAIL(EPROTO, r, h, "says %llu pages are missing but %s marks %llu",
                        (ull)out->missing_pages, bitmap ? "its bitmap" : "it has no bitmap and",
                        (ull)bits);
    return 0;
}

int vs_wire_read_postcopy_digests(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                  uint64_t ram_size, struct vs_wire_postcopy_digests *out,
                                  uint64_t *blocks)
{
    int rc = expect_type(r, h, VS_REC_POSTCOPY_DIGESTS);
    if (!rc)
        rc = check_ram_size(r, h, ram_size);
    if (rc < 0)
        return rc;
    uint64_t nblocks = (ram_size + VS_WIRE_BLOCK_SIZE - 1) / VS_WIRE_BLOCK_SIZE;
    if (h->length != sizeof(*out) + nblocks * 8)
        return REC_FAIL(EPROTO, r, h, "payload length %u is wrong: %llu bytes of RAM have "
                        "%llu block digests (%llu bytes)", h->length, (ull)ram_size,
                        (ull)nblocks, (ull)(sizeof(*out) + nblocks * 8));
    if ((rc = vs_wire_read_part(r, h, out, sizeof(*out), "the record header")) < 0 ||
        (rc = vs_wire_read_part(r, h, blocks, (size_t)nblocks * 8, "the block digests")) < 0)
        return rc;
    if (out->nblocks != nblocks)
        return REC_FAIL(EPROTO, r, h, "names %llu blocks, expected %llu", (ull)out->nblocks,
                        (ull)nblocks);
    uint64_t sum = 0;
    if ((rc = sum_parts(out, sizeof(*out), blocks, (size_t)nblocks * 8, NULL, 0, &sum)) < 0)
        return rc;
    return check_sum(r, h, sum);
}

int vs_wire_read_postcopy_pages(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                uint64_t ram_size, struct vs_wire_postcopy_pages *info,
                                uint64_t *gpa, uint8_t *buf)
{
    int rc = expect_type(r, h, VS_REC_POSTCOPY_PAGES);
    if (!rc)
        rc = vs_wire_read_part(r, h, info, sizeof(*info), "the page record header");
    if (rc < 0)
        return rc;
    if (info->count < 1 || info->count > VS_WIRE_MAX_PAGES)
        return REC_FAIL(EPROTO, r, h, "page count %u is out of range 1..%u", info->count,
                        VS_WIRE_MAX_PAGES);
    if (info->zero > info->count || info->urgent > 1)
        return REC_FAIL(EPROTO, r, h, "%u zero pages of %u, urgent %u: the zero pages must "
                        "be at most the count and urgent 0 or 1", info->zero, info->count,
                        info->urgent);
    uint32_t ndata = info->count - info->zero;
    uint64_t want = sizeof(*info) + (uint64_t)info->count * 8 +
                    (uint64_t)ndata * VS_WIRE_PAGE_SIZE;
    if (want != h->length)
        return REC_FAIL(EPROTO, r, h, "%u pages of which %u carry data need a payload of "
                        "%llu bytes but the header says %u", info->count, ndata, (ull)want,
                        h->length);
    if ((rc = read_page_list(r, h, ram_size, info->count, gpa)) < 0)
        return rc;
    if (ndata && (rc = vs_wire_read_part(r, h, buf, (size_t)ndata * VS_WIRE_PAGE_SIZE,
                                 "page data")) < 0)
        return rc;
    uint64_t sum = 0;
    if ((rc = sum_parts(info, sizeof(*info), gpa, (size_t)info->count * 8, buf,
                        (size_t)ndata * VS_WIRE_PAGE_SIZE, &sum)) < 0)
        return rc;
    return check_sum(r, h, sum);
}

int vs_wire_read_page_request(struct vs_wire_reader *r, const struct vs_wire_header *h,
                              uint64_t ram_size, struct vs_wire_page_request *info,
                              uint64_t *gpa)
{
    int rc = expect_type(r, h, VS_REC_PAGE_REQUEST);
    if (!rc)
        rc = vs_wire_read_part(r, h, info, sizeof(*info), "the request header");
    if (rc < 0)
        return rc;
    if (info->count < 1 || info->count > VS_WIRE_MAX_PAGES ||
        h->length != sizeof(*info) + (uint64_t)info->count * 8)
        return REC_FAIL(EPROTO, r, h, "request for %u pages does not fit its payload of %u "
                        "bytes (1..%u pages of 8 bytes each)", info->count, h->length,
                        VS_WIRE_MAX_PAGES);
    if ((rc = read_page_list(r, h, ram_size, info->count, gpa)) < 0)
        return rc;
    uint64_t sum = 0;
    if ((rc = sum_parts(info, sizeof(*info), gpa, (size_t)info->count * 8, NULL, 0, &sum)) < 0)
        return rc;
    return check_sum(r, h, sum);
}
