/* Writing records to a channel. */
#ifndef VS_WIRE_WRITER_H
#define VS_WIRE_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "transport/channel.h"
#include "wire/format.h"

struct vs_wire_writer {
    struct vs_channel *ch;
    uint64_t seq;              /* next record number */
    uint8_t *page_buf;         /* VS_WIRE_MAX_PAGES pages: snapshot of guest pages */
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
/* A ZERO_PAGES record naming pages that are all zero. */
int vs_wire_send_zero_pages(struct vs_wire_writer *w, const uint64_t *gpa, uint32_t count,
                            uint32_t pass);

#endif
