/* Register-level helpers of vstate.c:
 *  - reading back the CPUID a vCPU was given (CPUID section);
 *  - the MSRS section of a vCPU state blob (see the tag table in vstate.c): the fixed list
 *    of architectural MSRs a guest can change, read from KVM, validated, written back and
 *    compared. Section data is the raw struct kvm_msrs header (nmsrs, pad) followed by
 *    nmsrs struct kvm_msr_entry (index, reserved, data): 8 + 16 * nmsrs bytes;
 *  - the field-by-field comparisons behind vs_vstate_check_vcpu(), so that every
 *    "state differs" message has one format and names the field. */
#include "common/error.h"
#include "common/log.h"
#include "vmm/vcpu.h"

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "migrate/state/vstate_internal.h"

/* The CPUID table of vCPU fd: `given` (what vcpu.c started from) sizes the buffer. */
int vs_vstate_cpuid_read(int fd, unsigned vcpu, const struct kvm_cpuid2 *given,
                         struct kvm_cpuid2 **out, size_t *out_len)
{
    size_t size = sizeof(*given) + given->nent * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = *out = calloc(1, size);
    if (!c)
        return vs_fail(ENOMEM, "out of memory for the CPUID of vCPU %u", vcpu);
    c->nent = given->nent;
    if (ioctl(fd, KVM_GET_CPUID2, c) < 0) {
        /* Kernels before 5.x cannot read it back: rebuild what vcpu.c set. */
        vs_debug("KVM_GET_CPUID2 on vCPU %u: %s; using the table it was given", vcpu,
                 strerror(errno));
        memcpy(c, given, size);
        c->padding = 0;
        vs_vcpu_personalise_cpuid(c, vcpu);
    }
    *out_len = sizeof(*c) + c->nent * sizeof(struct kvm_cpuid_entry2);
    return 0;
}

#define MSR_IA32_TSC          0x10u
#define MSR_IA32_TSC_ADJUST   0x3bu
#define MSR_IA32_TSC_DEADLINE 0x6e0u

/* Order matters on load: KVM treats a host write of IA32_TSC as "synchronise the TSC",
 * which older kernels let disturb TSC_ADJUST, so TSC_ADJUST comes after it; the TSC
 * deadline is a TSC value and needs the LAPIC (loaded before MSRS), so it comes last and
 * only with an in-kernel LAPIC (pc machine, stream 2.3). */
static const struct {
    uint32_t index;
    const char *name;
    bool lapic;             /* only with an in-kernel LAPIC */
} msr_list[] = {
    { 0x174, "IA32_SYSENTER_CS", false },
    { 0x175, "IA32_SYSENTER_ESP", false },
    { 0x176, "IA32_SYSENTER_EIP", false },
    { 0xc0000081, "STAR", false },
    { 0xc0000082, "LSTAR", false },
    { 0xc0000083, "CSTAR", false },
    { 0xc0000084, "SFMASK", false },
    { 0xc0000102, "KERNEL_GS_BASE", false },
    { 0xc0000103, "TSC_AUX", false },
    { 0x1a0, "IA32_MISC_ENABLE", false },
    { 0x277, "IA32_PAT", false },
    { 0x2ff, "MTRRdefType", false },
    { MSR_IA32_TSC, "IA32_TSC", false },
    { MSR_IA32_TSC_ADJUST, "IA32_TSC_ADJUST", false },
    { MSR_IA32_TSC_DEADLINE, "IA32_TSC_DEADLINE", true },
};
#define NR_MSRS (sizeof(msr_list) / sizeof(msr_list[0]))

static const char *msr_name(uint32_t index)
{
    for (size_t i = 0; i < NR_MSRS; i++)
        if (msr_list[i].index == index)
            return msr_list[i].name;
    return NULL;
}

static struct kvm_msrs *alloc_msrs(size_t n)
{
    struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    if (m)
        m->nmsrs = (uint32_t)n;
    return m;
}

static size_t msrs_size(size_t n)
{
    return sizeof(struct kvm_msrs) + n * sizeof(struct kvm_msr_entry);
}

int vs_vstate_msrs_read(int fd, unsigned vcpu, bool lapic, struct kvm_msrs **out,
                        size_t *out_len)
{
    *out = NULL;
    struct kvm_msrs *m = alloc_msrs(NR_MSRS);
    if (!m)
        return vs_fail(ENOMEM, "out of memory for the MSRs of vCPU %u", vcpu);
    size_t want = 0;
    for (size_t i = 0; i < NR_MSRS; i++)
        if (lapic || !msr_list[i].lapic)
            m->entries[want++].index = msr_list[i].index;
    m->nmsrs = (uint32_t)want;
    int r = ioctl(fd, KVM_GET_MSRS, m);
    if (r < 0) {
        int err = errno;
        free(m);
        return vs_fail(err, "KVM_GET_MSRS on vCPU %u: %s", vcpu, strerror(err));
    }
    if ((size_t)r < want) {
        /* KVM stops at the first MSR it cannot read (e.g. TSC_ADJUST or TSC_AUX when the
         * host lacks the feature): read them one by one and keep only the readable ones,
         * so the destination is never asked to set an MSR the source did not have. */
        size_t kept = 0;
        for (size_t i = 0; i < NR_MSRS; i++) {
            struct {
                struct kvm_msrs hdr;
                struct kvm_msr_entry e;
            } one = { .hdr.nmsrs = 1, .e.index = msr_list[i].index };
            if (msr_list[i].lapic && !lapic)
                continue;
            if (ioctl(fd, KVM_GET_MSRS, &one) == 1)
                m->entries[kept++] = one.e;
        }
        m->nmsrs = (uint32_t)kept;
    }
    *out = m;
    *out_len = msrs_size(m->nmsrs);
    return 0;
}

int vs_vstate_msrs_validate(const uint8_t *data, size_t len, char *why, size_t why_len)
{
    struct kvm_msrs hdr;
    if (len < sizeof(hdr) || (len - sizeof(hdr)) % sizeof(struct kvm_msr_entry)) {
        snprintf(why, why_len, "length %zu is not 8 + 16 * count", len);
        return -EINVAL;
    }
    memcpy(&hdr, data, sizeof(hdr));
    size_t n = (len - sizeof(hdr)) / sizeof(struct kvm_msr_entry);
    if (hdr.nmsrs != n || n > NR_MSRS) {
        snprintf(why, why_len, "count %u does not match length %zu (at most %zu MSRs)",
                 hdr.nmsrs, len, NR_MSRS);
        return -EINVAL;
    }
    uint32_t seen[NR_MSRS];
    for (size_t i = 0; i < n; i++) {
        struct kvm_msr_entry e;
        memcpy(&e, data + sizeof(hdr) + i * sizeof(e), sizeof(e));
        if (!msr_name(e.index)) {
            snprintf(why, why_len, "entry %zu is MSR 0x%x, which vmshift does not migrate", i,
                     e.index);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (seen[j] == e.index) {
                snprintf(why, why_len, "MSR 0x%x (%s) appears twice", e.index, msr_name(e.index));
                return -EINVAL;
            }
        seen[i] = e.index;
    }
    return 0;
}

/* The section as an aligned struct kvm_msrs (the blob may sit at any address). */
static struct kvm_msrs *copy_section(const uint8_t *data, size_t len)
{
    struct kvm_msrs *m = malloc(len);
    if (m)
        memcpy(m, data, len);
    return m;
}

int vs_vstate_msrs_write(int fd, unsigned vcpu, const uint8_t *data, size_t len)
{
    struct kvm_msrs *m = copy_section(data, len);
    if (!m)
        return vs_fail(ENOMEM, "out of memory for the MSRs of vCPU %u", vcpu);
    for (uint32_t i = 0; i < m->nmsrs; i++)
        m->entries[i].reserved = 0; /* KVM ignores it; keep what we hand over clean */
    int r = ioctl(fd, KVM_SET_MSRS, m);
    int rc = 0;
    if (r < 0) {
        rc = vs_fail(errno, "KVM_SET_MSRS on vCPU %u: %s", vcpu, strerror(errno));
    } else if ((uint32_t)r != m->nmsrs) {
        const struct kvm_msr_entry *e = &m->entries[r];
        rc = vs_fail(EINVAL, "KVM_SET_MSRS on vCPU %u refused MSR 0x%x (%s) = 0x%llx "
                     "(set %d of %u); the destination host lacks a feature of the source",
                     vcpu, e->index, msr_name(e->index), (unsigned long long)e->data, r,
                     m->nmsrs);
    }
    free(m);
    return rc;
}

int vs_vstate_msrs_compare(int fd, unsigned vcpu, const uint8_t *data, size_t len)
{
    struct kvm_msrs *want = copy_section(data, len);
    struct kvm_msrs *got = copy_section(data, len);
    int rc = 0;
    if (!want || !got) {
        rc = vs_fail(ENOMEM, "out of memory for the MSRs of vCPU %u", vcpu);
        goto out;
    }
    int r = ioctl(fd, KVM_GET_MSRS, got);
    if (r < 0 || (uint32_t)r != got->nmsrs) {
        rc = vs_fail(r < 0 ? errno : EIO, "KVM_GET_MSRS on vCPU %u read %d of %u MSRs", vcpu, r,
                     got->nmsrs);
        goto out;
    }
    for (uint32_t i = 0; i < want->nmsrs; i++) {
        const struct kvm_msr_entry *w = &want->entries[i], *g = &got->entries[i];
        /* The TSC runs on between load and check; TSC_ADJUST follows host TSC writes; a
         * TSC deadline already past fires on load and reads 0. */
        if (w->index == MSR_IA32_TSC || w->index == MSR_IA32_TSC_ADJUST ||
            w->index == MSR_IA32_TSC_DEADLINE)
            continue;
        if (w->data != g->data) {
            char field[48];
            snprintf(field, sizeof(field), "msr.%s (0x%x)", msr_name(w->index), w->index);
            rc = vs_vstate_differs(vcpu, field, g->data, w->data);
            goto out;
        }
    }
out:
    free(want);
    free(got);
    return rc;
}

/* ---- comparisons for vs_vstate_check_vcpu() ---- */

int vs_vstate_differs(unsigned vcpu, const char *field, uint64_t kvm, uint64_t blob)
{
    return vs_fail(EIO, "vCPU %u state differs after load: %s 0x%llx != 0x%llx (KVM vs blob); "
                   "the destination did not take the state, do not resume this VM", vcpu,
                   field, (unsigned long long)kvm, (unsigned long long)blob);
}

#define CMP(field_name, a, b) \
    do { \
        if ((uint64_t)(a) != (uint64_t)(b)) \
            return vs_vstate_differs(vcpu, field_name, (uint64_t)(a), (uint64_t)(b)); \
    } while (0)

int vs_vstate_compare_regs(unsigned vcpu, const struct kvm_regs *k, const struct kvm_regs *b)
{
#define R(f) { "regs." #f, offsetof(struct kvm_regs, f) }
    static const struct { const char *name; size_t off; } fields[] = {
        R(rax), R(rbx), R(rcx), R(rdx), R(rsi), R(rdi), R(rsp), R(rbp), R(r8), R(r9),
        R(r10), R(r11), R(r12), R(r13), R(r14), R(r15), R(rip), R(rflags),
    };
#undef R
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        uint64_t a, c;
        memcpy(&a, (const uint8_t *)k + fields[i].off, sizeof(a));
        memcpy(&c, (const uint8_t *)b + fields[i].off, sizeof(c));
        CMP(fields[i].name, a, c);
    }
    return 0;
}

static int compare_segment(unsigned vcpu, const char *seg, const struct kvm_segment *k,
                           const struct kvm_segment *b)
{
    char f[32];
#define SEG(x) \
    do { snprintf(f, sizeof(f), "sregs.%s." #x, seg); CMP(f, k->x, b->x); } while (0)
    SEG(base); SEG(limit); SEG(selector); SEG(present);
    /* The attributes of a segment that is not present mean nothing, and VMX keeps only
     * "unusable" for it on load: comparing them would report differences that are not. */
    if (b->present) {
        SEG(type); SEG(dpl); SEG(db); SEG(s); SEG(l); SEG(g);
    }
#undef SEG
    return 0;
}

int vs_vstate_compare_sregs(unsigned vcpu, const struct kvm_sregs *k, const struct kvm_sregs *b)
{
    const struct { const char *name; const struct kvm_segment *k, *b; } segs[] = {
        { "cs", &k->cs, &b->cs }, { "ds", &k->ds, &b->ds }, { "es", &k->es, &b->es },
        { "fs", &k->fs, &b->fs }, { "gs", &k->gs, &b->gs }, { "ss", &k->ss, &b->ss },
        { "tr", &k->tr, &b->tr }, { "ldt", &k->ldt, &b->ldt },
    };
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
        int rc = compare_segment(vcpu, segs[i].name, segs[i].k, segs[i].b);
        if (rc)
            return rc;
    }
    CMP("sregs.gdt.base", k->gdt.base, b->gdt.base);
    CMP("sregs.gdt.limit", k->gdt.limit, b->gdt.limit);
    CMP("sregs.idt.base", k->idt.base, b->idt.base);
    CMP("sregs.idt.limit", k->idt.limit, b->idt.limit);
    CMP("sregs.cr0", k->cr0, b->cr0);
    CMP("sregs.cr2", k->cr2, b->cr2);
    CMP("sregs.cr3", k->cr3, b->cr3);
    CMP("sregs.cr4", k->cr4, b->cr4);
    CMP("sregs.cr8", k->cr8, b->cr8);
    CMP("sregs.efer", k->efer, b->efer);
    CMP("sregs.apic_base", k->apic_base, b->apic_base);
    return 0; /* interrupt_bitmap: KVM moves it into the event queue on load */
}

int vs_vstate_compare_xcrs(unsigned vcpu, const struct kvm_xcrs *k, const struct kvm_xcrs *b)
{
    CMP("xcrs.nr_xcrs", k->nr_xcrs, b->nr_xcrs);
    for (uint32_t i = 0; i < b->nr_xcrs && i < KVM_MAX_XCRS; i++) {
        char f[32];
        snprintf(f, sizeof(f), "xcrs[%u].xcr", i);
        CMP(f, k->xcrs[i].xcr, b->xcrs[i].xcr);
        snprintf(f, sizeof(f), "xcr%u", b->xcrs[i].xcr);
        CMP(f, k->xcrs[i].value, b->xcrs[i].value);
    }
    return 0;
}
