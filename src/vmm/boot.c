#include "vmm/boot.h"
#include "vmm/elf.h"
#include "common/error.h"
#include "vmshift/guest_abi.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PTE_P   0x1ULL
#define PTE_RW  0x2ULL
#define PTE_PWT 0x8ULL
#define PTE_PCD 0x10ULL
#define PTE_PS  0x80ULL
#define GIB     (1ULL << 30)
#define TWO_MIB (2ULL << 20)
#define LEGACY_HOLE_START 0xA0000ULL
#define LEGACY_HOLE_END   0x100000ULL

#define CR0_PE  0x1ULL
#define CR0_MP  0x2ULL
#define CR0_ET  0x10ULL
#define CR0_NE  0x20ULL
#define CR0_WP  0x10000ULL
#define CR0_PG  0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

int vs_boot_parse_mode(const char *text, enum vs_boot_mode *mode)
{
    if (strcmp(text, "auto") == 0)
        *mode = VS_BOOT_AUTO;
    else if (strcmp(text, "long") == 0)
        *mode = VS_BOOT_LONG;
    else if (strcmp(text, "pvh") == 0)
        *mode = VS_BOOT_PVH;
    else
        return vs_fail(EINVAL, "--boot '%s' is unknown; use auto, long or pvh", text);
    return 0;
}

const char *vs_boot_mode_name(enum vs_boot_mode mode)
{
    return mode == VS_BOOT_LONG ? "long" : mode == VS_BOOT_PVH ? "pvh" : "auto";
}

static int choose_entry(const struct vs_elf_image *img, enum vs_boot_mode mode,
                        const char *path, struct vs_boot_entry *entry)
{
    bool want_long = mode == VS_BOOT_LONG || (mode == VS_BOOT_AUTO && img->has_entry64);
    if (want_long) {
        if (!img->has_entry64)
            return vs_fail(EINVAL, "%s has no vmshift 64-bit entry note; boot it with --boot pvh",
                           path);
        *entry = (struct vs_boot_entry){ VS_BOOT_LONG, img->entry64 };
        return 0;
    }
    if (!img->has_pvh)
        return vs_fail(EINVAL, "%s has neither a vmshift entry note nor a PVH entry note "
                       "(XEN_ELFNOTE_PHYS32_ENTRY); build it as a PVH kernel", path);
    *entry = (struct vs_boot_entry){ VS_BOOT_PVH, img->pvh_entry };
    return 0;
}

int vs_boot_load_kernel(struct vs_memory *m, const char *path, enum vs_boot_mode mode,
                        struct vs_boot_entry *entry)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vs_fail(errno, "--kernel %s: cannot open: %s; build the guest (cmake --build) "
                       "or give the right path", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return vs_fail(EINVAL, "--kernel %s: not a non-empty regular file", path);
    }
    uint8_t *buf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (buf == MAP_FAILED)
        return vs_fail(errno, "--kernel %s: cannot map: %s", path, strerror(errno));

    struct vs_elf_image img;
    int rc = vs_elf_parse(buf, (size_t)st.st_size, &img);
    if (rc) {
        rc = vs_fail_context(rc, "--kernel %s is not a bootable guest", path);
        goto out;
    }
    rc = choose_entry(&img, mode, path, entry);
    if (rc)
        goto out;
    for (unsigned i = 0; i < img.nr_segments; i++) {
        const struct vs_elf_segment *s = &img.segments[i];
        uint64_t lo = VS_KERNEL_ADDR, hi = entry->mode == VS_BOOT_LONG ? VS_KERNEL_END : UINT64_MAX;
        uint8_t *dst = vs_memory_gpa_ptr(m, s->paddr, s->memsz);
        if (s->paddr < lo || s->paddr + s->memsz > hi || !dst) {
            rc = vs_fail(EINVAL, "--kernel %s: segment %u at [0x%llx, 0x%llx) is outside the "
                         "kernel area [0x%llx, 0x%llx) or outside one RAM range of a %llu MiB "
                         "guest", path, i, (unsigned long long)s->paddr,
                         (unsigned long long)(s->paddr + s->memsz), (unsigned long long)lo,
                         (unsigned long long)(hi == UINT64_MAX ? vs_ram_top(&m->layout) : hi),
                         (unsigned long long)(m->size >> 20));
            goto out;
        }
        memcpy(dst, buf + s->offset, s->filesz);
        memset(dst + s->filesz, 0, s->memsz - s->filesz);
    }
out:
    munmap(buf, (size_t)st.st_size);
    return rc;
}

uint64_t vs_boot_build_page_tables(uint8_t *ram, uint64_t map_top)
{
    uint64_t gibs = (map_top + GIB - 1) / GIB;
    if (gibs > 512 || VS_BOOT_PT_ADDR + (2 + gibs) * 4096 > VS_BOOT_PT_END)
        return 0;
    uint64_t pml4 = VS_BOOT_PT_ADDR, pdpt = pml4 + 4096, pd = pdpt + 4096;
    memset(ram + pml4, 0, (2 + gibs) * 4096);
    uint64_t *pml4e = (uint64_t *)(ram + pml4), *pdpte = (uint64_t *)(ram + pdpt);
    pml4e[0] = pdpt | PTE_P | PTE_RW;
    for (uint64_t g = 0; g < gibs; g++) {
        uint64_t *pde = (uint64_t *)(ram + pd + g * 4096);
        pdpte[g] = (pd + g * 4096) | PTE_P | PTE_RW;
        for (uint64_t i = 0; i < 512; i++)
            pde[i] = (g * GIB + i * TWO_MIB) | PTE_P | PTE_RW | PTE_PS;
    }
    return pml4;
}

void vs_boot_uncache_range(uint8_t *ram, uint64_t cr3, uint64_t from, uint64_t to)
{
    const uint64_t *pml4 = (const uint64_t *)(ram + cr3);
    uint64_t *pdpt = (uint64_t *)(ram + (pml4[0] & ~0xfffULL));
    for (uint64_t a = from & ~(TWO_MIB - 1); a < to && a < 512 * GIB; a += TWO_MIB) {
        uint64_t e = pdpt[a / GIB];
        if (!(e & PTE_P))
            continue;
        uint64_t *pde = (uint64_t *)(ram + (e & ~0xfffULL));
        if (pde[(a % GIB) / TWO_MIB] & PTE_P)
            pde[(a % GIB) / TWO_MIB] |= PTE_PWT | PTE_PCD;
    }
}

unsigned vs_boot_memmap(const struct vs_ram_layout *l, struct hvm_memmap_table_entry *map,
                        unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < l->nr_regions && n < max; i++) {
        const struct vs_ram_region *r = &l->regions[i];
        if (r->gpa == 0 && r->size > LEGACY_HOLE_END) {
            /* [640 KiB, 1 MiB) stays out: the legacy VGA and BIOS area of a PC */
            map[n++] = (struct hvm_memmap_table_entry){ .addr = 0, .size = LEGACY_HOLE_START,
                                                        .type = VS_E820_RAM };
            if (n < max)
                map[n++] = (struct hvm_memmap_table_entry){
                    .addr = LEGACY_HOLE_END, .size = r->size - LEGACY_HOLE_END,
                    .type = VS_E820_RAM };
        } else {
            map[n++] = (struct hvm_memmap_table_entry){ .addr = r->gpa, .size = r->size,
                                                        .type = VS_E820_RAM };
        }
    }
    return n;
}

int vs_boot_write_info(struct vs_memory *m, const struct vs_boot_entry *entry,
                       const char *cmdline)
{
    size_t len = strlen(cmdline);
    if (len >= VS_BOOT_CMDLINE_MAX)
        return vs_fail(E2BIG, "guest command line is %zu bytes; the limit is %d", len,
                       VS_BOOT_CMDLINE_MAX - 1);
    memcpy(vs_memory_gpa_ptr(m, VS_BOOT_CMDLINE_ADDR, len + 1), cmdline, len + 1);

    struct hvm_memmap_table_entry map[VS_BOOT_MEMMAP_MAX];
    unsigned entries = vs_boot_memmap(&m->layout, map, VS_BOOT_MEMMAP_MAX);
    memcpy(vs_memory_gpa_ptr(m, VS_BOOT_MEMMAP_ADDR, sizeof(map)), map,
           entries * sizeof(map[0]));
    struct hvm_start_info si = {
        .magic = VS_HVM_START_MAGIC,
        .version = 1,
        .cmdline_paddr = VS_BOOT_CMDLINE_ADDR,
        .memmap_paddr = VS_BOOT_MEMMAP_ADDR,
        .memmap_entries = entries,
    };
    memcpy(vs_memory_gpa_ptr(m, VS_BOOT_INFO_ADDR, sizeof(si)), &si, sizeof(si));

    if (entry->mode != VS_BOOT_LONG)
        return 0;
    uint64_t top = vs_ram_identity_map_top(&m->layout);
    uint64_t cr3 = vs_boot_build_page_tables(m->base, top);
    if (!cr3)
        return vs_fail(E2BIG, "page tables for %llu MiB do not fit the boot area",
                       (unsigned long long)(top >> 20));
    if (m->layout.mmio_gap)
        vs_boot_uncache_range(m->base, cr3, VS_PC_MMIO_GAP_START, VS_PC_HIGH_RAM_START);
    return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t selector, uint8_t type, bool code64)
{
    *s = (struct kvm_segment){
        .base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
        .present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64 ? 1 : 0, .g = 1,
    };
}

void vs_boot_initial_state(const struct vs_boot_entry *entry, unsigned index, uint64_t cr3,
                           struct kvm_sregs *sregs, struct kvm_regs *regs)
{
    bool long_mode = entry->mode == VS_BOOT_LONG;
    struct kvm_segment code, data;
    flat_segment(&code, 0x08, 0xb /* execute/read, accessed */, long_mode);
    flat_segment(&data, 0x10, 0x3 /* read/write, accessed */, false);
    sregs->cs = code;
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    /* No descriptor table in memory: the hidden segment state above is all the guest
     * needs until it loads its own GDT. */
    sregs->gdt.base = 0;
    sregs->gdt.limit = 0;
    sregs->idt.base = 0;
    sregs->idt.limit = 0;
    if (long_mode) {
        sregs->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
        sregs->cr3 = cr3;
        sregs->cr4 = CR4_PAE;
        sregs->efer = EFER_LME | EFER_LMA;
    } else {
        sregs->cr0 = CR0_PE | CR0_ET;
        sregs->cr3 = 0;
        sregs->cr4 = 0;
        sregs->efer = 0;
    }
    memset(regs, 0, sizeof(*regs));
    regs->rflags = 0x2;
    regs->rip = entry->entry;
    regs->rbx = VS_BOOT_INFO_ADDR;
    if (long_mode) {
        regs->rdi = VS_BOOT_INFO_ADDR;
        regs->rsi = index;
        regs->rsp = VS_BOOT_STACKS_ADDR + (uint64_t)(index + 1) * VS_BOOT_STACK_SIZE;
    }
}
