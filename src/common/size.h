/* Parsing of user-given sizes and numbers ("4G", "512M", "0x400000", "4096"). */
#ifndef VS_SIZE_H
#define VS_SIZE_H

#include <stdint.h>

/* Bytes with optional binary suffix K, M, G, T (optionally followed by "iB" or "B");
 * decimal or 0x-hex. Rejects empty strings, junk, negative values and overflow. */
int vs_parse_size(const char *text, uint64_t *out);
/* A plain unsigned integer, decimal or 0x-hex, no suffix. */
int vs_parse_u64(const char *text, uint64_t *out);
/* Human-readable binary size into buf ("4.0 GiB"); returns buf. */
const char *vs_format_size(uint64_t bytes, char *buf, unsigned len);

#endif
