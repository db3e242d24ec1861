/* Parsing of the guest kernel ELF: loadable segments and the entry points named by its
 * notes. Pure (works on a buffer), so that malformed files are unit-tested. */
#ifndef VS_ELF_H
#define VS_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_ELF_MAX_SEGMENTS 16

struct vs_elf_segment {
    uint64_t paddr;
    uint64_t offset;    /* in the file */
    uint64_t filesz;
    uint64_t memsz;     /* >= filesz; the rest is zeroed */
};

struct vs_elf_image {
    uint64_t e_entry;
    bool has_entry64;   /* "vmshift" note, type VS_ELFNOTE_ENTRY64 */
    uint64_t entry64;
    bool has_pvh;       /* "Xen" note, type XEN_ELFNOTE_PHYS32_ENTRY */
    uint32_t pvh_entry;
    unsigned nr_segments;
    struct vs_elf_segment segments[VS_ELF_MAX_SEGMENTS];
};

/* Validate an x86-64 ELF executable in buf[0..len) and describe it. Every offset and
 * size is bounds-checked; the error names the offending field. */
int vs_elf_parse(const uint8_t *buf, size_t len, struct vs_elf_image *out);

#endif
