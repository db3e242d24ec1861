/* Host-side fill of guest RAM before the first instruction (--fill pattern|random).
 * A guest would need minutes to fill gigabytes here; the host does it in parallel. */
#ifndef VS_FILL_H
#define VS_FILL_H

#include <stdint.h>
#include "vmm/memory.h"

/* Parse "none", "pattern" or "random" into enum vs_fill. */
int vs_fill_parse(const char *text, uint32_t *fill);
const char *vs_fill_name(uint32_t fill);

/* Write vs_fill_word(fill, seed, addr) to every word of guest-physical [start, start+len)
 * (inside one RAM range), using up to `threads` threads. start and len must be 8-byte
 * aligned. */
int vs_fill_range(struct vs_memory *m, uint64_t start, uint64_t len, uint32_t fill,
                  uint64_t seed, unsigned threads);
/* The same for all RAM at or above guest-physical `from`, range by range (the MMIO gap
 * is skipped). */
int vs_fill_ram_from(struct vs_memory *m, uint64_t from, uint32_t fill, uint64_t seed,
                     unsigned threads);

/* Same words into a plain buffer that stands for guest-physical address `gpa`. */
void vs_fill_buffer(void *buf, uint64_t len, uint64_t gpa, uint32_t fill, uint64_t seed);

#endif
