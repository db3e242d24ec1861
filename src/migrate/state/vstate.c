/* vCPU and machine state blobs (format: vstate.h).
 *
 * Sections are the kernel's own structs as raw bytes (x86-64 only, little-endian, the
 * same KVM ABI on both sides) or small fixed records defined here, each behind a
 * tag + length header and zero-padded to 8 bytes. Every section may appear once.
 *
 *  tag name         blob     length (bytes)            content
 *    1 CPUID        vCPU     8 + 40 * nent             struct kvm_cpuid2 + entries (KVM_GET_CPUID2)
 *    2 REGS         vCPU     144                       struct kvm_regs
 *    3 SREGS        vCPU     312                       struct kvm_sregs
 *    4 FPU          vCPU     416                       struct kvm_fpu (only without KVM_CAP_XSAVE)
 *    5 XSAVE        vCPU     4096 or KVM_CAP_XSAVE2    struct kvm_xsave (+ extended area)
 *    6 XCRS         vCPU     392                       struct kvm_xcrs (with KVM_CAP_XCRS)
 *    7 MSRS         vCPU     8 + 16 * nmsrs            struct kvm_msrs + kvm_msr_entry[] (vstate_msrs.c)
 *    8 VCPU_EVENTS  vCPU     64                        struct kvm_vcpu_events
 *    9 DEBUGREGS    vCPU     128                       struct kvm_debugregs
 *   10 MP_STATE     vCPU     4                         struct kvm_mp_state (absent if KVM refuses it)
 *   11 MONITOR      vCPU     4                         u32: bit 0 halted, bit 1 stopped
 *   12 LAPIC        vCPU     1024                      struct kvm_lapic_state (pc machine, 2.3)
 *   13 TSC_KHZ      vCPU     4                         u32: the guest's TSC frequency (2.3;
 *                                                      KVM_GET_TSC_KHZ)
 *
 * Mandatory: CPUID, REGS, SREGS, exactly one of FPU/XSAVE, MONITOR. The others depend on
 * the source host's KVM; a destination that lacks the capability a present section needs
 * refuses the blob rather than drop state.
 *
 * The machine blob is the device registry's (vmm/vmstate.h, docs/device-state.md); the
 * tagged machine blob of 2.0-2.2 sources is converted to it (vstate_parse.c). */
#include "migrate/state/vstate.h"
#include "common/error.h"
#include "common/log.h"

#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#if !defined(__x86_64__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vCPU state blobs are raw x86-64 KVM structs"
#endif

#include "migrate/state/vstate_internal.h"

/* ---- blobs ---- */

static int blob_put(struct vs_blob *b, uint32_t tag, const void *data, size_t len)
{
    size_t padded = (len + 7) & ~(size_t)7;
    int rc = vs_blob_reserve(b, 8 + padded);
    if (rc)
        return rc;
    uint32_t hdr[2] = { tag, (uint32_t)len };
    memcpy(b->data + b->len, hdr, sizeof(hdr));
    memcpy(b->data + b->len + 8, data, len);
    memset(b->data + b->len + 8 + len, 0, padded - len);
    b->len += 8 + padded;
    return 0;
}

/* ---- vCPU helpers ---- */

static int kvm_cap(struct vs_vm *vm, long cap)
{
    int r = ioctl(vm->kvm.vm_fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

/* The XSAVE buffer size KVM uses on this host (KVM_CAP_XSAVE2 reports a larger one when
 * the CPU has dynamically enabled features such as AMX). */
static size_t xsave_size(struct vs_vm *vm)
{
    int size = kvm_cap(vm, KVM_CAP_XSAVE2);
    return size > (int)sizeof(struct kvm_xsave) ? (size_t)size : sizeof(struct kvm_xsave);
}

static int vcpu_ioctl(struct vs_vcpu *v, unsigned long req, const char *name, void *arg)
{
    if (ioctl(v->fd, req, arg) == 0)
        return 0;
    int err = errno;
    return vs_fail(err, "%s on vCPU %u: %s%s", name, v->index, strerror(err),
                   strncmp(name, "KVM_SET", 7) == 0
                       ? "; the destination KVM refused the source's state" : "");
}
#define VCPU_IOCTL(v, req, arg) vcpu_ioctl(v, req, #req, arg)

/* Nothing may run KVM_RUN on the fd meanwhile: the thread is parked or was never started.
 * Loading additionally needs a vCPU that never ran (KVM freezes CPUID after KVM_RUN). */
static int require_idle(struct vs_vcpu *v, const char *what, bool fresh)
{
    pthread_mutex_lock(&v->vm->lock);
    bool idle = !v->thread_started || v->parked;
    bool ran = v->exits != 0;
    pthread_mutex_unlock(&v->vm->lock);
    if (!idle)
        return vs_fail(EBUSY, "cannot %s vCPU %u: it is running; pause the VM first", what,
                       v->index);
    if (fresh && ran)
        return vs_fail(EBUSY, "cannot %s vCPU %u: it has already run; load only into a new "
                       "incoming VM", what, v->index);
    return 0;
}

static int save_cpuid(struct vs_vcpu *v, struct vs_blob *out)
{
    struct kvm_cpuid2 *c;
    size_t len;
    int rc = vs_vstate_cpuid_read(v->fd, v->index, v->vm->kvm.cpuid, &c, &len);
    if (!rc)
        rc = blob_put(out, TAG_CPUID, c, len);
    free(c);
    return rc;
}

static int save_fpu(struct vs_vcpu *v, struct vs_blob *out)
{
    if (!kvm_cap(v->vm, KVM_CAP_XSAVE)) {
        struct kvm_fpu fpu;
        memset(&fpu, 0, sizeof(fpu));
        int rc = VCPU_IOCTL(v, KVM_GET_FPU, &fpu);
        return rc ? rc : blob_put(out, TAG_FPU, &fpu, sizeof(fpu));
    }
    size_t size = xsave_size(v->vm);
    void *xs = calloc(1, size);
    if (!xs)
        return vs_fail(ENOMEM, "out of memory for the %zu-byte XSAVE area of vCPU %u", size,
                       v->index);
    int rc = size > sizeof(struct kvm_xsave) ? VCPU_IOCTL(v, KVM_GET_XSAVE2, xs)
                                             : VCPU_IOCTL(v, KVM_GET_XSAVE, xs);
    if (!rc)
        rc = blob_put(out, TAG_XSAVE, xs, size);
    free(xs);
    return rc;
}

/* Read a fixed-size struct into a zeroed buffer (so no stack garbage reaches the stream)
 * and append it as section `tag`. */
static int save_struct(struct vs_vcpu *v, unsigned long req, const char *name, uint32_t tag,
                       struct vs_blob *out)
{
    uint8_t buf[1024];
    _Static_assert(sizeof(struct kvm_sregs) <= sizeof(buf) && sizeof(struct kvm_xcrs) <= sizeof(buf)
                   && sizeof(struct kvm_lapic_state) <= sizeof(buf),
                   "buffer fits every struct read this way");
    memset(buf, 0, sizeof(buf));
    int rc = vcpu_ioctl(v, req, name, buf);
    return rc ? rc : blob_put(out, tag, buf, vs_vstate_tags[tag].size);
}
#define SAVE_STRUCT(v, req, tag, out) save_struct(v, req, #req, tag, out)

/* The guest's TSC frequency, so a destination of another frequency scales to it. */
static int save_tsc_khz(struct vs_vcpu *v, struct vs_blob *out)
{
    if (!kvm_cap(v->vm, KVM_CAP_GET_TSC_KHZ))
        return 0;
    int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
    if (khz <= 0) {
        vs_debug("KVM_GET_TSC_KHZ on vCPU %u: %s; not saved", v->index, strerror(errno));
        return 0;
    }
    uint32_t k = (uint32_t)khz;
    return blob_put(out, TAG_TSC_KHZ, &k, sizeof(k));
}

static int save_vcpu_sections(struct vs_vcpu *v, struct vs_blob *out)
{
    int rc = save_cpuid(v, out);
    if (!rc)
        rc = save_tsc_khz(v, out);
    if (!rc)
        rc = SAVE_STRUCT(v, KVM_GET_REGS, TAG_REGS, out);
    if (!rc)
        rc = SAVE_STRUCT(v, KVM_GET_SREGS, TAG_SREGS, out);
    if (!rc && v->vm->machine == VS_MACHINE_PC)
        rc = SAVE_STRUCT(v, KVM_GET_LAPIC, TAG_LAPIC, out);
    if (!rc)
        rc = save_fpu(v, out);
    if (!rc && kvm_cap(v->vm, KVM_CAP_XCRS))
        rc = SAVE_STRUCT(v, KVM_GET_XCRS, TAG_XCRS, out);
    if (!rc) {
        struct kvm_msrs *m;
        size_t len;
        rc = vs_vstate_msrs_read(v->fd, v->index, v->vm->machine == VS_MACHINE_PC, &m, &len);
        if (!rc) {
            rc = blob_put(out, TAG_MSRS, m, len);
            free(m);
        }
    }
    if (!rc && kvm_cap(v->vm, KVM_CAP_VCPU_EVENTS))
        rc = SAVE_STRUCT(v, KVM_GET_VCPU_EVENTS, TAG_EVENTS, out);
    if (!rc && kvm_cap(v->vm, KVM_CAP_DEBUGREGS))
        rc = SAVE_STRUCT(v, KVM_GET_DEBUGREGS, TAG_DEBUGREGS, out);
    if (rc)
        return rc;
    /* Without an in-kernel irqchip some kernels refuse MP_STATE; the vCPU is then always
     * runnable and there is nothing to carry. */
    struct kvm_mp_state mp = { 0 };
    if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) == 0) {
        rc = blob_put(out, TAG_MP_STATE, &mp, sizeof(mp));
        if (rc)
            return rc;
    } else {
        vs_debug("KVM_GET_MP_STATE on vCPU %u: %s; not saved", v->index, strerror(errno));
    }
    pthread_mutex_lock(&v->vm->lock);
    uint32_t flags = (v->halted ? MONITOR_HALTED : 0) | (v->stopped ? MONITOR_STOPPED : 0);
    pthread_mutex_unlock(&v->vm->lock);
    return blob_put(out, TAG_MONITOR, &flags, sizeof(flags));
}

int vs_vstate_save_vcpu(struct vs_vcpu *v, struct vs_blob *out)
{
    out->len = 0; /* the blob is overwritten; its buffer is reused */
    int rc = require_idle(v, "save the state of", false);
    if (!rc)
        rc = save_vcpu_sections(v, out);
    if (rc)
        out->len = 0; /* never leave half a vCPU to be sent */
    return rc;
}

/* ---- vCPU load ---- */

/* A section as an aligned, writable copy (blobs may sit at any address in a stream). */
static void *section_copy(const struct vs_vstate_sections *s, uint32_t tag, size_t size, unsigned vcpu)
{
    void *p = calloc(1, size > s->len[tag] ? size : s->len[tag]);
    if (!p)
        vs_fail(ENOMEM, "out of memory for section %s of vCPU %u", vs_vstate_tags[tag].name, vcpu);
    else
        memcpy(p, s->data[tag], s->len[tag]);
    return p;
}

static int load_struct(struct vs_vcpu *v, const struct vs_vstate_sections *s, uint32_t tag,
                       unsigned long req, const char *name)
{
    if (!s->data[tag])
        return 0;
    void *p = section_copy(s, tag, 0, v->index);
    if (!p)
        return -ENOMEM;
    int rc = vcpu_ioctl(v, req, name, p);
    free(p);
    return rc;
}
#define LOAD_STRUCT(v, s, tag, req) load_struct(v, s, tag, req, #req)

/* Run the guest's TSC at the source's frequency when this host's differs (KVM scales it
 * with TSC scaling; within 250 ppm it needs none). */
static int load_tsc_khz(struct vs_vcpu *v, const struct vs_vstate_sections *s)
{
    uint32_t want;
    memcpy(&want, s->data[TAG_TSC_KHZ], sizeof(want));
    int have = kvm_cap(v->vm, KVM_CAP_GET_TSC_KHZ) ? ioctl(v->fd, KVM_GET_TSC_KHZ, 0) : -1;
    if (have == (int)want)
        return 0;
    if (!kvm_cap(v->vm, KVM_CAP_TSC_CONTROL) || ioctl(v->fd, KVM_SET_TSC_KHZ, want) < 0)
        return vs_fail(ENOTSUP, "vCPU %u: the source's TSC runs at %u kHz, this host's at %d "
                       "kHz, and KVM cannot run the guest at %u kHz (KVM_SET_TSC_KHZ: %s); "
                       "migrate between hosts of one TSC frequency or with TSC scaling",
                       v->index, want, have, want, strerror(errno));
    vs_info("vCPU %u: TSC scaled from this host's %d kHz to the source's %u kHz", v->index,
            have, want);
    return 0;
}

int vs_vstate_load_vcpu(struct vs_vcpu *v, const uint8_t *blob, size_t len)
{
    struct vs_vstate_sections s;
    int rc = require_idle(v, "load state into", true);
    if (!rc)
        rc = vs_vstate_parse_vcpu(v->index, blob, len, &s);
    if (rc)
        return rc;
    /* Capabilities of this host that the blob's sections need, before anything is set. */
    size_t xs_size = xsave_size(v->vm);
    if (s.data[TAG_XSAVE] && (!kvm_cap(v->vm, KVM_CAP_XSAVE) || s.len[TAG_XSAVE] > xs_size))
        return vs_fail(ENOTSUP, "vCPU %u state: section XSAVE (tag %u) has length %u, but this "
                       "host's KVM %s; migrate to a host with the source's CPU features",
                       v->index, TAG_XSAVE, s.len[TAG_XSAVE],
                       kvm_cap(v->vm, KVM_CAP_XSAVE) ? "has a smaller XSAVE area"
                                                     : "lacks KVM_CAP_XSAVE");
    if (s.data[TAG_XCRS] && !kvm_cap(v->vm, KVM_CAP_XCRS))
        return vs_fail(ENOTSUP, "vCPU %u state: section XCRS (tag %u) is present but this "
                       "host's KVM lacks KVM_CAP_XCRS; migrate to a host with XSAVE support",
                       v->index, TAG_XCRS);

    if (s.data[TAG_LAPIC] && v->vm->machine != VS_MACHINE_PC)
        return vs_fail(ENOTSUP, "vCPU %u state: section LAPIC (tag %u) is present but this VM "
                       "has no in-kernel irqchip (flat machine); the destination must build "
                       "the source's machine", v->index, TAG_LAPIC);

    /* CPUID first: KVM checks later state (CR4 bits, XCR0, MSRs) against it. */
    struct kvm_cpuid2 *cpuid = section_copy(&s, TAG_CPUID, 0, v->index);
    if (!cpuid)
        return -ENOMEM;
    rc = VCPU_IOCTL(v, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (!rc && s.data[TAG_TSC_KHZ])     /* before IA32_TSC is written (MSRS) */
        rc = load_tsc_khz(v, &s);
    /* SREGS carry the APIC base (enabled, x2APIC): before the LAPIC's registers; the
     * LAPIC before MSRS (TSC deadline), VCPU_EVENTS and MP_STATE. */
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_SREGS, KVM_SET_SREGS);
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_LAPIC, KVM_SET_LAPIC);
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_REGS, KVM_SET_REGS);
    if (!rc && s.data[TAG_XSAVE]) {
        /* KVM reads its own XSAVE size: pad a smaller source area with zeros (components
         * the source did not have stay in their initial state). */
        void *xs = section_copy(&s, TAG_XSAVE, xs_size, v->index);
        rc = xs ? VCPU_IOCTL(v, KVM_SET_XSAVE, xs) : -ENOMEM;
        free(xs);
    }
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_FPU, KVM_SET_FPU);
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_XCRS, KVM_SET_XCRS);
    if (!rc && s.data[TAG_MSRS])
        rc = vs_vstate_msrs_write(v->fd, v->index, s.data[TAG_MSRS], s.len[TAG_MSRS]);
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_EVENTS, KVM_SET_VCPU_EVENTS);
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_DEBUGREGS, KVM_SET_DEBUGREGS);
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_MP_STATE, KVM_SET_MP_STATE);
    if (rc)
        return rc;
    uint32_t flags;
    memcpy(&flags, s.data[TAG_MONITOR], sizeof(flags));
    pthread_mutex_lock(&v->vm->lock);
    v->halted = flags & MONITOR_HALTED;
    v->stopped = flags & MONITOR_STOPPED;
    pthread_mutex_unlock(&v->vm->lock);
    return 0;
}

/* ---- vCPU check ---- */

int vs_vstate_check_vcpu(struct vs_vcpu *v, const uint8_t *blob, size_t len)
{
    struct vs_vstate_sections s;
    int rc = require_idle(v, "check the state of", false);
    if (!rc)
        rc = vs_vstate_parse_vcpu(v->index, blob, len, &s);
    if (rc)
        return rc;
    struct kvm_regs kr, br;
    memcpy(&br, s.data[TAG_REGS], sizeof(br));
    rc = VCPU_IOCTL(v, KVM_GET_REGS, &kr);
    if (!rc)
        rc = vs_vstate_compare_regs(v->index, &kr, &br);
    if (rc)
        return rc;
    struct kvm_sregs ks, bs;
    memcpy(&bs, s.data[TAG_SREGS], sizeof(bs));
    rc = VCPU_IOCTL(v, KVM_GET_SREGS, &ks);
    if (!rc)
        rc = vs_vstate_compare_sregs(v->index, &ks, &bs);
    if (rc)
        return rc;
    if (s.data[TAG_XCRS]) {
        struct kvm_xcrs kx, bx;
        memcpy(&bx, s.data[TAG_XCRS], sizeof(bx));
        rc = VCPU_IOCTL(v, KVM_GET_XCRS, &kx);
        if (!rc)
            rc = vs_vstate_compare_xcrs(v->index, &kx, &bx);
        if (rc)
            return rc;
    }
    if (s.data[TAG_MSRS]) {
        rc = vs_vstate_msrs_compare(v->fd, v->index, s.data[TAG_MSRS], s.len[TAG_MSRS]);
        if (rc)
            return rc;
    }
    uint32_t want;
    memcpy(&want, s.data[TAG_MONITOR], sizeof(want));
    pthread_mutex_lock(&v->vm->lock);
    uint32_t have = (v->halted ? MONITOR_HALTED : 0) | (v->stopped ? MONITOR_STOPPED : 0);
    pthread_mutex_unlock(&v->vm->lock);
    return have == want ? 0 : vs_vstate_differs(v->index, "monitor.flags", have, want);
}

/* ---- machine ---- */

static int require_vm_idle(struct vs_vm *vm, const char *what)
{
    pthread_mutex_lock(&vm->lock);
    unsigned busy = vm->nr_vcpus;
    for (unsigned i = 0; i < vm->nr_vcpus && busy == vm->nr_vcpus; i++)
        if (vm->vcpus[i].thread_started && !vm->vcpus[i].parked)
            busy = i;
    pthread_mutex_unlock(&vm->lock);
    if (busy < vm->nr_vcpus)
        return vs_fail(EBUSY, "cannot %s: vCPU %u is running; pause the VM first", what, busy);
    return 0;
}

int vs_vstate_save_machine(struct vs_vm *vm, struct vs_blob *out)
{
    out->len = 0;
    int rc = require_vm_idle(vm, "save the machine state");
    return rc ? rc : vs_vmstate_save_all(&vm->devices, out);
}

int vs_vstate_load_machine(struct vs_vm *vm, bool legacy, const uint8_t *blob, size_t len)
{
    int rc = require_vm_idle(vm, "load the machine state");
    if (rc || !legacy)
        return rc ? rc : vs_vmstate_load_all(&vm->devices, blob, len);
    struct vs_blob conv = { 0 };
    rc = vs_vstate_convert_legacy_machine(blob, len, &conv);
    if (!rc)
        rc = vs_vmstate_load_all(&vm->devices, conv.data, conv.len);
    vs_blob_free(&conv);
    return rc;
}
