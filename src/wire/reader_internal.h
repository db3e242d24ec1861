/* Shared by reader.c and page_data.c only. */
#ifndef VS_WIRE_READER_INTERNAL_H
#define VS_WIRE_READER_INTERNAL_H

#include <xxhash.h>
#include "wire/reader.h"

/* Read exactly len bytes of h's payload into buf; what names the part in errors. */
int vs_wire_read_part(struct vs_wire_reader *r, const struct vs_wire_header *h, void *buf,
                      size_t len, const char *what);
/* Read len bytes of page data (a run of consecutive pages) into guest RAM at RAM offset
 * off, hashing them into st (NULL: not hashed), through the mapping or the RAM file. */
int vs_wire_read_run(struct vs_wire_reader *r, const struct vs_wire_header *h, uint8_t *ram,
                     uint64_t off, size_t len, XXH3_state_t *st);
/* Put count decompressed pages (data, one after another) at RAM offsets gpa[]. */
int vs_wire_put_pages(struct vs_wire_reader *r, const struct vs_wire_header *h, uint8_t *ram,
                      const uint64_t *gpa, uint32_t count, const uint8_t *data);

#endif
