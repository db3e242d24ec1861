/* Reading and validating records: the only place that parses migration input. The peer
 * is treated as hostile: every length, address, count and order is checked, and an error
 * names the record (seq and type) and its stream offset. */
#ifndef VS_WIRE_READER_H
#define VS_WIRE_READER_H

#include <stddef.h>
#include <stdint.h>
#include "codec/codec.h"
#include "transport/channel.h"
#include "wire/format.h"

struct vs_wire_reader {
    struct vs_channel *ch;
    uint32_t codecs;           /* codecs CPAGES may use (agreed in the handshake) */
    struct vs_codec_ctx *codec[VS_CODEC_COUNT];   /* per codec, created on first use */
    uint8_t *cbuf, *pbuf;      /* compressed payload / decompressed pages of one record */
    uint64_t next_seq;         /* expected seq of the next record */
    uint64_t offset;           /* bytes consumed from the stream so far */
    uint64_t record_offset;    /* stream offset of the current record's header */
};

void vs_wire_reader_init(struct vs_wire_reader *r, struct vs_channel *ch);
void vs_wire_reader_destroy(struct vs_wire_reader *r);

/* Read and validate the next header: magic, header checksum, known type, flags its type allows,
 * seq == next_seq, and length within the type's limits (exact size for fixed records,
 * <= limits for variable ones). */
int vs_wire_read_header(struct vs_wire_reader *r, struct vs_wire_header *h);

/* Read the whole payload of h into buf (cap bytes) and check its checksum. Fails if
 * h->length > cap. */
int vs_wire_read_payload(struct vs_wire_reader *r, const struct vs_wire_header *h, void *buf,
                         size_t cap);

/* For PAGES and ZERO_PAGES: read the page list into gpa[] (VS_WIRE_MAX_PAGES entries),
 * check count against length, every gpa page-aligned and inside [0, ram_size); for PAGES
 * read each page's data straight into ram + gpa (no bounce buffer), then check the
 * checksum over what was read (only over the list with VS_WIRE_FLAG_META_SUM). On error guest RAM may hold partial data: the caller
 * discards the VM. */
int vs_wire_read_pages(struct vs_wire_reader *r, const struct vs_wire_header *h,
                       uint8_t *ram, uint64_t ram_size, struct vs_wire_pages *info,
                       uint64_t *gpa);

/* For CPAGES: like vs_wire_read_pages, but the data is compressed: read it, check the
 * checksum, decompress it (it must come out exactly count pages) and copy the pages into
 * RAM. The codec must be one of r->codecs. */
int vs_wire_read_cpages(struct vs_wire_reader *r, const struct vs_wire_header *h,
                        uint8_t *ram, uint64_t ram_size, struct vs_wire_cpages *info,
                        uint64_t *gpa);

/* Typed helpers: read a fixed-size record payload of the given type. */
int vs_wire_read_fixed(struct vs_wire_reader *r, const struct vs_wire_header *h,
                       enum vs_wire_type type, void *out, size_t size);

/* Validate a received hello / reason string (NUL within bounds, versions). */
int vs_wire_check_hello(const struct vs_wire_hello *h);
/* An extra stream's STREAM_HELLO against stream 0's HELLO: same session, index in
 * 1..nr_streams-1. */
int vs_wire_check_stream_hello(const struct vs_wire_stream_hello *sh,
                               const struct vs_wire_hello *h);
int vs_wire_check_reason(const char *reason, size_t cap);
/* A RESOLVE record's fields: a known state. */
int vs_wire_check_resolve(const struct vs_wire_resolve *rs);

#endif
