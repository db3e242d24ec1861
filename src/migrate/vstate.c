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
 *   32 CLOCK        machine  48                        struct kvm_clock_data (KVM_GET_CLOCK)
 *   33 PVPORT       machine  2144                      struct pvport_rec below
 *   34 SERIAL       machine  16                        struct serial_rec below
 *
 * Mandatory: CPUID, REGS, SREGS, exactly one of FPU/XSAVE, MONITOR (vCPU); PVPORT, SERIAL
 * (machine). The others depend on the source host's KVM; a destination that lacks the
 * capability a present section needs refuses the blob rather than drop state. */
#include "migrate/vstate.h"
#include "common/clock.h"
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

#include "migrate/vstate_internal.h"

/* ---- blobs ---- */

void vs_blob_free(struct vs_blob *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int blob_put(struct vs_blob *b, uint32_t tag, const void *data, size_t len)
{
    size_t padded = (len + 7) & ~(size_t)7;
    size_t need = b->len + 8 + padded;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            return vs_fail(ENOMEM, "out of memory growing a state blob to %zu bytes", cap);
        b->data = p;
        b->cap = cap;
    }
    uint32_t hdr[2] = { tag, (uint32_t)len };
    memcpy(b->data + b->len, hdr, sizeof(hdr));
    memcpy(b->data + b->len + 8, data, len);
    memset(b->data + b->len + 8 + len, 0, padded - len);
    b->len = need;
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
    uint8_t buf[512];
    _Static_assert(sizeof(struct kvm_sregs) <= sizeof(buf) && sizeof(struct kvm_xcrs) <= sizeof(buf),
                   "buffer fits every struct read this way");
    memset(buf, 0, sizeof(buf));
    int rc = vcpu_ioctl(v, req, name, buf);
    return rc ? rc : blob_put(out, tag, buf, vs_vstate_tags[tag].size);
}
#define SAVE_STRUCT(v, req, tag, out) save_struct(v, req, #req, tag, out)

static int save_vcpu_sections(struct vs_vcpu *v, struct vs_blob *out)
{
    int rc = save_cpuid(v, out);
    if (!rc)
        rc = SAVE_STRUCT(v, KVM_GET_REGS, TAG_REGS, out);
    if (!rc)
        rc = SAVE_STRUCT(v, KVM_GET_SREGS, TAG_SREGS, out);
    if (!rc)
        rc = save_fpu(v, out);
    if (!rc && kvm_cap(v->vm, KVM_CAP_XCRS))
        rc = SAVE_STRUCT(v, KVM_GET_XCRS, TAG_XCRS, out);
    if (!rc) {
        struct kvm_msrs *m;
        size_t len;
        rc = vs_vstate_msrs_read(v->fd, v->index, &m, &len);
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

    /* CPUID first: KVM checks later state (CR4 bits, XCR0, MSRs) against it. */
    struct kvm_cpuid2 *cpuid = section_copy(&s, TAG_CPUID, 0, v->index);
    if (!cpuid)
        return -ENOMEM;
    rc = VCPU_IOCTL(v, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (!rc)
        rc = LOAD_STRUCT(v, &s, TAG_SREGS, KVM_SET_SREGS);
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
    if (rc)
        return rc;
    if (kvm_cap(vm, KVM_CAP_ADJUST_CLOCK)) {
        struct kvm_clock_data clock;
        memset(&clock, 0, sizeof(clock));
        if (ioctl(vm->kvm.vm_fd, KVM_GET_CLOCK, &clock) < 0)
            return vs_fail(errno, "KVM_GET_CLOCK: %s", strerror(errno));
        rc = blob_put(out, TAG_CLOCK, &clock, sizeof(clock));
    }

    struct vs_pvport *p = &vm->pvport;
    pthread_mutex_lock(&p->lock);
    struct pvport_rec pr = {
        .registered = p->registered, .telemetry_gpa = p->telemetry_gpa,
        .doorbells = p->doorbells, .snapshot = p->snapshot, .clock_us = vs_pvport_clock_us(p),
        .rate_override = atomic_load(&p->rate_override),
    };
    pthread_mutex_unlock(&p->lock);
    if (!rc)
        rc = blob_put(out, TAG_PVPORT, &pr, sizeof(pr));

    struct vs_serial *sp = &vm->serial;
    pthread_mutex_lock(&sp->lock);
    struct serial_rec sr = {
        .ier = sp->ier, .lcr = sp->lcr, .mcr = sp->mcr, .scr = sp->scr, .dll = sp->dll,
        .dlm = sp->dlm, .bytes_out = sp->bytes_out,
    };
    pthread_mutex_unlock(&sp->lock);
    if (!rc)
        rc = blob_put(out, TAG_SERIAL, &sr, sizeof(sr));
    if (rc)
        out->len = 0;
    return rc;
}

int vs_vstate_load_machine(struct vs_vm *vm, const uint8_t *blob, size_t len)
{
    const char *who = "machine state";
    struct vs_vstate_sections s;
    int rc = require_vm_idle(vm, "load the machine state");
    if (!rc)
        rc = vs_vstate_parse_machine(vm->mem.size, blob, len, &s);
    if (rc)
        return rc;
    struct pvport_rec pr;
    memcpy(&pr, s.data[TAG_PVPORT], sizeof(pr));
    if (pr.registered && !vs_memory_gpa_ptr(&vm->mem, pr.telemetry_gpa, 4096))
        return vs_fail(EINVAL, "%s: telemetry page 0x%llx lies in this VM's MMIO gap, not in "
                       "RAM; give the destination the source's machine", who,
                       (unsigned long long)pr.telemetry_gpa);
    struct serial_rec sr;
    memcpy(&sr, s.data[TAG_SERIAL], sizeof(sr));

    if (s.data[TAG_CLOCK]) {
        struct kvm_clock_data saved, clock;
        memcpy(&saved, s.data[TAG_CLOCK], sizeof(saved));
        /* The clock resumes where it stopped: no KVM_CLOCK_REALTIME, so the migration's
         * downtime is not added (the pvport clock below behaves the same way). */
        memset(&clock, 0, sizeof(clock));
        clock.clock = saved.clock;
        if (ioctl(vm->kvm.vm_fd, KVM_SET_CLOCK, &clock) < 0)
            return vs_fail(errno, "%s: KVM_SET_CLOCK to %llu ns: %s; the destination KVM "
                           "refused the source's clock", who,
                           (unsigned long long)saved.clock, strerror(errno));
    }

    struct vs_pvport *p = &vm->pvport;
    pthread_mutex_lock(&p->lock);
    p->registered = pr.registered;
    p->telemetry_gpa = pr.telemetry_gpa;
    p->doorbells = pr.doorbells;
    p->snapshot = pr.snapshot;
    /* guest clock = host monotonic + offset: continue from the value at save time */
    p->clock_offset_us = (int64_t)pr.clock_us - (int64_t)(vs_clock_ns() / 1000);
    pthread_mutex_unlock(&p->lock);
    atomic_store(&p->rate_override, pr.rate_override);

    struct vs_serial *sp = &vm->serial;
    pthread_mutex_lock(&sp->lock);
    sp->ier = sr.ier, sp->lcr = sr.lcr, sp->mcr = sr.mcr, sp->scr = sr.scr;
    sp->dll = sr.dll, sp->dlm = sr.dlm, sp->bytes_out = sr.bytes_out;
    pthread_mutex_unlock(&sp->lock);
    return 0;
}
