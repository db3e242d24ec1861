/* Unit tests: the guest ELF parser (src/vmm/elf.c) on synthetic and real files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <elf.h>
#include "common/error.h"
#include "vmm/elf.h"
#include "vmshift/guest_abi.h"

#define IMG_SIZE 8192

struct builder {
    uint8_t buf[IMG_SIZE];
    Elf64_Ehdr *eh;
    Elf64_Phdr *ph;
};

/* A minimal executable: one load segment at 1 MiB and a note segment holding a PVH and
 * a vmshift entry note. */
static void build(struct builder *b)
{
    memset(b->buf, 0, sizeof(b->buf));
    b->eh = (Elf64_Ehdr *)b->buf;
    memcpy(b->eh->e_ident, ELFMAG, SELFMAG);
    b->eh->e_ident[EI_CLASS] = ELFCLASS64;
    b->eh->e_ident[EI_DATA] = ELFDATA2LSB;
    b->eh->e_type = ET_EXEC;
    b->eh->e_machine = EM_X86_64;
    b->eh->e_entry = 0x100040;
    b->eh->e_phoff = sizeof(Elf64_Ehdr);
    b->eh->e_phentsize = sizeof(Elf64_Phdr);
    b->eh->e_phnum = 2;
    b->ph = (Elf64_Phdr *)(b->buf + b->eh->e_phoff);
    b->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = 4096, .p_paddr = 0x100000,
                             .p_vaddr = 0x100000, .p_filesz = 256, .p_memsz = 8192 };
    uint8_t *n = b->buf + 1024;
    size_t off = 0;
    Elf64_Nhdr xen = { .n_namesz = 4, .n_descsz = 4, .n_type = VS_XEN_ELFNOTE_PHYS32_ENTRY };
    memcpy(n + off, &xen, sizeof(xen)); off += sizeof(xen);
    memcpy(n + off, "Xen", 4); off += 4;
    uint32_t e32 = 0x100010;
    memcpy(n + off, &e32, 4); off += 4;
    Elf64_Nhdr vs = { .n_namesz = sizeof(VS_ELFNOTE_NAME), .n_descsz = 8,
                      .n_type = VS_ELFNOTE_ENTRY64 };
    memcpy(n + off, &vs, sizeof(vs)); off += sizeof(vs);
    memcpy(n + off, VS_ELFNOTE_NAME, sizeof(VS_ELFNOTE_NAME)); off += 8;
    uint64_t e64 = 0x100040;
    memcpy(n + off, &e64, 8); off += 8;
    b->ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 1024, .p_filesz = off };
}

static void parses_both_entry_notes(void **state)
{
    (void)state;
    struct builder b;
    struct vs_elf_image img;
    build(&b);
    assert_int_equal(vs_elf_parse(b.buf, sizeof(b.buf), &img), 0);
    assert_true(img.has_pvh);
    assert_int_equal(img.pvh_entry, 0x100010);
    assert_true(img.has_entry64);
    assert_int_equal(img.entry64, 0x100040);
    assert_int_equal(img.nr_segments, 1);
    assert_int_equal(img.segments[0].paddr, 0x100000);
    assert_int_equal(img.segments[0].filesz, 256);
    assert_int_equal(img.segments[0].memsz, 8192);
}

static void no_notes_means_no_entries(void **state)
{
    (void)state;
    struct builder b;
    struct vs_elf_image img;
    build(&b);
    b.eh->e_phnum = 1;
    assert_int_equal(vs_elf_parse(b.buf, sizeof(b.buf), &img), 0);
    assert_false(img.has_pvh);
    assert_false(img.has_entry64);
}

static void truncated_note_is_ignored(void **state)
{
    (void)state;
    struct builder b;
    struct vs_elf_image img;
    build(&b);
    b.ph[1].p_filesz = 14; /* cuts into the first note's descriptor */
    assert_int_equal(vs_elf_parse(b.buf, sizeof(b.buf), &img), 0);
    assert_false(img.has_pvh);
}

static void expect_error(const uint8_t *buf, size_t len, const char *needle)
{
    struct vs_elf_image img;
    assert_true(vs_elf_parse(buf, len, &img) < 0);
    if (!strstr(vs_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", vs_last_error(), needle);
}

static void rejects_malformed_files(void **state)
{
    (void)state;
    struct builder b;
    build(&b);
    expect_error(b.buf, 10, "too short");

    build(&b);
    b.buf[1] = 'X';
    expect_error(b.buf, sizeof(b.buf), "magic");

    build(&b);
    b.eh->e_ident[EI_CLASS] = ELFCLASS32;
    expect_error(b.buf, sizeof(b.buf), "64-bit");

    build(&b);
    b.eh->e_machine = EM_386;
    expect_error(b.buf, sizeof(b.buf), "x86-64");

    build(&b);
    b.eh->e_phoff = IMG_SIZE - 8;
    expect_error(b.buf, sizeof(b.buf), "program headers");

    build(&b);
    b.ph[0].p_offset = IMG_SIZE - 10;
    expect_error(b.buf, sizeof(b.buf), "load segment 0");

    build(&b);
    b.ph[0].p_filesz = 9000;
    expect_error(b.buf, sizeof(b.buf), "load segment 0");

    build(&b);
    b.ph[0].p_paddr = UINT64_MAX - 100;
    expect_error(b.buf, sizeof(b.buf), "wraps");

    build(&b);
    b.ph[1].p_offset = IMG_SIZE;
    b.ph[1].p_filesz = 100;
    expect_error(b.buf, sizeof(b.buf), "note segment 1");

    build(&b);
    b.ph[0].p_type = PT_NULL;
    expect_error(b.buf, sizeof(b.buf), "no loadable segment");
}

static void real_guest_has_both_entries(void **state)
{
    (void)state;
    FILE *f = fopen(VMSHIFT_GUEST, "rb");
    assert_non_null(f);
    static uint8_t buf[4 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    struct vs_elf_image img;
    assert_int_equal(vs_elf_parse(buf, n, &img), 0);
    assert_true(img.has_pvh);
    assert_true(img.has_entry64);
    assert_int_equal(img.e_entry, img.entry64);
    for (unsigned i = 0; i < img.nr_segments; i++) {
        assert_true(img.segments[i].paddr >= VS_KERNEL_ADDR);
        assert_true(img.segments[i].paddr + img.segments[i].memsz <= VS_KERNEL_END);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_both_entry_notes),
        cmocka_unit_test(no_notes_means_no_entries),
        cmocka_unit_test(truncated_note_is_ignored),
        cmocka_unit_test(rejects_malformed_files),
        cmocka_unit_test(real_guest_has_both_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
