/* Writing records to a channel. */
#ifndef VS_WIRE_WRITER_H
#define VS_WIRE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "transport/channel.h"
#include "wire/format.h"

struct vs_wire_writer {
    struct vs_channel *ch;
    uint64_t seq;              /* next record number */
    uint8_t *page_buf;         /* VS_WIRE_MAX_PAGES pages: snapshot of guest pages */
    struct iovec *iov;         /* 3 + VS_WIRE_MAX_PAGES entries for direct sends */
};

int vs_wire_writer_init(struct vs_wire_writer *w, struct vs_channel *ch);
void vs_wire_writer_destroy(struct vs_wire_writer *w);

/* One record with a payload held in memory. */
int vs_wire_send(struct vs_wire_writer *w, enum vs_wire_type type, const void *payload,
                 uint32_t length);

/* A PAGES record: copies the pages at ram + gpa[i] (count <= VS_WIRE_MAX_PAGES) into the
 * snapshot buffer, checksums that copy and sends it, so a page the guest changes while
 * it is being sent cannot make the record inconsistent. */
int vs_wire_send_pages(struct vs_wire_writer *w, const uint8_t *ram, const uint64_t *gpa,
                       uint32_t count, uint32_t pass);
/* A PAGES record sent straight from guest RAM, without a copy: one iovec per run of
 * consecutive pages, and VS_CH_ZEROCOPY on the data so the channel may avoid even the
 * kernel's copy. With sum_data the checksum covers the data too (only if the guest cannot
 * change it meanwhile: paused); otherwise the record is VS_WIRE_FLAG_META_SUM. */
int vs_wire_send_pages_direct(struct vs_wire_writer *w, const uint8_t *ram,
                              const uint64_t *gpa, uint32_t count, uint32_t pass,
                              bool sum_data);

/* Copy the pages at ram + gpa[i] into w->page_buf, in order (for compression). */
int vs_wire_gather(struct vs_wire_writer *w, const uint8_t *ram, const uint64_t *gpa,
                   uint32_t count);
/* A PAGES record of the pages vs_wire_gather left in w->page_buf (fully checksummed). */
int vs_wire_send_gathered(struct vs_wire_writer *w, const uint64_t *gpa, uint32_t count,
                          uint32_t pass);
/* A CPAGES record: data = the codec's compressed image of the count pages. */
int vs_wire_send_cpages(struct vs_wire_writer *w, const uint64_t *gpa, uint32_t count,
                        uint32_t pass, unsigned codec, const void *data, size_t len);

/* A ZERO_PAGES record naming pages that are all zero. */
int vs_wire_send_zero_pages(struct vs_wire_writer *w, const uint64_t *gpa, uint32_t count,
                            uint32_t pass);

/* A record of a fixed head and a variable tail (tail may be NULL with tail_len 0): the
 * post-copy records with bitmaps, digests or page lists. */
int vs_wire_send_parts(struct vs_wire_writer *w, enum vs_wire_type type, const void *head,
                       uint32_t head_len, const void *tail, uint64_t tail_len);
/* A POSTCOPY_PAGES record: gpa[0..count-zero) carry data sent straight from ram (the
 * source is paused, so the checksum covers the data), gpa[count-zero..count) are zero. */
int vs_wire_send_postcopy_pages(struct vs_wire_writer *w, const uint8_t *ram,
                                const uint64_t *gpa, uint32_t count, uint32_t zero,
                                bool urgent);

#endif
