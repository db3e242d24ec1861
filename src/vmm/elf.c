#include "vmm/elf.h"
#include "common/error.h"
#include "vmshift/guest_abi.h"

#include <elf.h>
#include <string.h>

static bool in_bounds(uint64_t off, uint64_t size, size_t len)
{
    return off <= len && size <= len - off;
}

static void parse_notes(const uint8_t *p, uint64_t size, struct vs_elf_image *img)
{
    uint64_t off = 0;
    while (size - off >= sizeof(Elf64_Nhdr)) {
        Elf64_Nhdr nh;
        memcpy(&nh, p + off, sizeof(nh));
        uint64_t name_off = off + sizeof(nh);
        uint64_t desc_off = name_off + ((nh.n_namesz + 3ULL) & ~3ULL);
        uint64_t next = desc_off + ((nh.n_descsz + 3ULL) & ~3ULL);
        if (next > size || next <= off)
            return; /* truncated note: ignore the rest, as loaders do */
        const char *name = (const char *)p + name_off;
        const uint8_t *desc = p + desc_off;
        if (nh.n_namesz == sizeof("Xen") && memcmp(name, "Xen", 4) == 0 &&
            nh.n_type == VS_XEN_ELFNOTE_PHYS32_ENTRY && nh.n_descsz >= 4) {
            uint64_t v = 0;
            memcpy(&v, desc, nh.n_descsz >= 8 ? 8 : 4);
            img->has_pvh = true;
            img->pvh_entry = (uint32_t)v;
        } else if (nh.n_namesz == sizeof(VS_ELFNOTE_NAME) &&
                   memcmp(name, VS_ELFNOTE_NAME, sizeof(VS_ELFNOTE_NAME)) == 0 &&
                   nh.n_type == VS_ELFNOTE_ENTRY64 && nh.n_descsz == 8) {
            memcpy(&img->entry64, desc, 8);
            img->has_entry64 = true;
        }
        off = next;
    }
}

int vs_elf_parse(const uint8_t *buf, size_t len, struct vs_elf_image *out)
{
    memset(out, 0, sizeof(*out));
    Elf64_Ehdr eh;
    if (len < sizeof(eh))
        return vs_fail(EINVAL, "file is %zu bytes, too short for an ELF header", len);
    memcpy(&eh, buf, sizeof(eh));
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return vs_fail(EINVAL, "not an ELF file (bad magic)");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return vs_fail(EINVAL, "not a 64-bit little-endian ELF (class %u, data %u)",
                       eh.e_ident[EI_CLASS], eh.e_ident[EI_DATA]);
    if (eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC)
        return vs_fail(EINVAL, "not an x86-64 executable (e_machine %u, e_type %u)",
                       eh.e_machine, eh.e_type);
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
        !in_bounds(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), len))
        return vs_fail(EINVAL, "program headers out of bounds (e_phoff %llu, e_phnum %u)",
                       (unsigned long long)eh.e_phoff, eh.e_phnum);
    out->e_entry = eh.e_entry;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, buf + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_type == PT_NOTE) {
            if (!in_bounds(ph.p_offset, ph.p_filesz, len))
                return vs_fail(EINVAL, "note segment %u out of bounds (offset %llu, size %llu)",
                               i, (unsigned long long)ph.p_offset,
                               (unsigned long long)ph.p_filesz);
            parse_notes(buf + ph.p_offset, ph.p_filesz, out);
        } else if (ph.p_type == PT_LOAD && ph.p_memsz > 0) {
            if (!in_bounds(ph.p_offset, ph.p_filesz, len) || ph.p_filesz > ph.p_memsz)
                return vs_fail(EINVAL, "load segment %u out of bounds (offset %llu, filesz "
                               "%llu, memsz %llu)", i, (unsigned long long)ph.p_offset,
                               (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
            if (ph.p_paddr + ph.p_memsz < ph.p_paddr)
                return vs_fail(EINVAL, "load segment %u wraps the address space", i);
            if (out->nr_segments == VS_ELF_MAX_SEGMENTS)
                return vs_fail(EINVAL, "more than %d load segments", VS_ELF_MAX_SEGMENTS);
            out->segments[out->nr_segments++] = (struct vs_elf_segment){
                .paddr = ph.p_paddr, .offset = ph.p_offset,
                .filesz = ph.p_filesz, .memsz = ph.p_memsz,
            };
        }
    }
    if (out->nr_segments == 0)
        return vs_fail(EINVAL, "no loadable segment");
    return 0;
}
