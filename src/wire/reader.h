/* Reading and validating records: the only place that parses migration input. The peer
 * is treated as hostile: every length, address, count and order is checked, and an error
 * names the record (seq and type) and its stream offset. */
#ifndef VS_WIRE_READER_H
#define VS_WIRE_READER_H

#include <stdbool.h>
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
    bool postcopy;             /* post-copy records (15..20) allowed: HELLO_REPLY agreed
                                  VS_FEATURE_POSTCOPY */
    bool disks;                /* disk records (25, 26) allowed: HELLO_REPLY agreed
                                  VS_FEATURE_DISKS */
    /* Where page data goes (page_data.c): ram_fd < 0 (the default after
     * vs_wire_reader_set_ram_file(r, -1)) reads it straight into the RAM mapping; else it
     * is read into a small buffer and written to ram_fd at the page's RAM offset. */
    int ram_fd;
    bool ram_fd_set;           /* ram_fd was set (0 from memset is not a file) */
    uint8_t *bounce;           /* the small buffer, made on first use */
};

void vs_wire_reader_init(struct vs_wire_reader *r, struct vs_channel *ch);
void vs_wire_reader_destroy(struct vs_wire_reader *r);

/* Write page data of PAGES and CPAGES into guest RAM through the RAM's file fd (its
 * offsets are RAM offsets) instead of the mapping; fd < 0: through the mapping. */
void vs_wire_reader_set_ram_file(struct vs_wire_reader *r, int fd);

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

/* Post-copy records (all check their lengths against ram_size, every address against
 * guest RAM, and the checksum before anything is used). */
/* POSTCOPY_START into *out and bitmap (VS_WIRE_BITMAP_BYTES(ram_size) bytes): exactly one
 * bitmap of that size, no bit beyond the last page, missing_pages = the bits set. */
int vs_wire_read_postcopy_start(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                uint64_t ram_size, struct vs_wire_postcopy_start *out,
                                uint64_t *bitmap);
/* POSTCOPY_RESUME: from a source (bitmap NULL) exactly the struct with missing_pages 0;
 * from a destination (bitmap non-NULL) the struct and a bitmap as in POSTCOPY_START. */
int vs_wire_read_postcopy_resume(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                 uint64_t ram_size, struct vs_wire_postcopy_resume *out,
                                 uint64_t *bitmap);
/* POSTCOPY_DIGESTS: nblocks must be ceil(ram_size / 2 MiB); blocks gets them. */
int vs_wire_read_postcopy_digests(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                  uint64_t ram_size, struct vs_wire_postcopy_digests *out,
                                  uint64_t *blocks);
/* POSTCOPY_PAGES: the list into gpa[] (VS_WIRE_MAX_PAGES entries), the data of the
 * count - zero data pages into buf (VS_WIRE_MAX_PAGES pages), the whole checksum checked
 * before it returns: nothing reaches guest RAM from here. */
int vs_wire_read_postcopy_pages(struct vs_wire_reader *r, const struct vs_wire_header *h,
                                uint64_t ram_size, struct vs_wire_postcopy_pages *info,
                                uint64_t *gpa, uint8_t *buf);
/* PAGE_REQUEST: count 1..VS_WIRE_MAX_PAGES addresses inside guest RAM into gpa[]. */
int vs_wire_read_page_request(struct vs_wire_reader *r, const struct vs_wire_header *h,
                              uint64_t ram_size, struct vs_wire_page_request *info,
                              uint64_t *gpa);

/* Validate a received hello / reason string (NUL within bounds, versions); field_checks.c. */
int vs_wire_check_hello(const struct vs_wire_hello *h);
/* An extra stream's STREAM_HELLO against stream 0's HELLO: same session, index in
 * 1..nr_streams-1. */
int vs_wire_check_stream_hello(const struct vs_wire_stream_hello *sh,
                               const struct vs_wire_hello *h);
int vs_wire_check_reason(const char *reason, size_t cap);
/* A RESOLVE record's fields: a known state. */
int vs_wire_check_resolve(const struct vs_wire_resolve *rs);

#endif
