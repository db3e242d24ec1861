/* Parsing and validating vCPU and machine state blobs (format: vstate.c, vstate.h): every
 * section is checked before any of it is used, without KVM. */
#include "migrate/state/vstate.h"
#include "migrate/state/vstate_internal.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct vs_vstate_tag vs_vstate_tags[TAG_LIMIT] = {
    [TAG_CPUID] = { "CPUID", 0, false },
    [TAG_REGS] = { "REGS", sizeof(struct kvm_regs), false },
    [TAG_SREGS] = { "SREGS", sizeof(struct kvm_sregs), false },
    [TAG_FPU] = { "FPU", sizeof(struct kvm_fpu), false },
    [TAG_XSAVE] = { "XSAVE", 0, false },
    [TAG_XCRS] = { "XCRS", sizeof(struct kvm_xcrs), false },
    [TAG_MSRS] = { "MSRS", 0, false },
    [TAG_EVENTS] = { "VCPU_EVENTS", sizeof(struct kvm_vcpu_events), false },
    [TAG_DEBUGREGS] = { "DEBUGREGS", sizeof(struct kvm_debugregs), false },
    [TAG_MP_STATE] = { "MP_STATE", sizeof(struct kvm_mp_state), false },
    [TAG_MONITOR] = { "MONITOR", sizeof(uint32_t), false },
    [TAG_LAPIC] = { "LAPIC", sizeof(struct kvm_lapic_state), false },
    [TAG_TSC_KHZ] = { "TSC_KHZ", sizeof(uint32_t), false },
    /* 2.0-2.2 machine blobs: the device checks the length and content (vmm/vmstate.h) */
    [TAG_CLOCK] = { "CLOCK", 0, true },
    [TAG_PVPORT] = { "PVPORT", 0, true },
    [TAG_SERIAL] = { "SERIAL", 0, true },
};

static const char *tag_name(uint32_t tag)
{
    return tag < TAG_LIMIT && vs_vstate_tags[tag].name ? vs_vstate_tags[tag].name : "unknown";
}

/* ---- parsing: everything is validated before any of it is used ---- */

static int invalid(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int invalid(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Content checks of one section: its length, and the fields that size or bound it. */
static int check_section(uint32_t tag, const uint8_t *d, uint32_t len, char *why, size_t n)
{
    if (vs_vstate_tags[tag].size && len != vs_vstate_tags[tag].size)
        return invalid(why, n, "length %u, expected %u", len, vs_vstate_tags[tag].size);
    if (tag == TAG_CPUID) {
        struct kvm_cpuid2 h;
        const size_t ent = sizeof(struct kvm_cpuid_entry2);
        if (len < sizeof(h) || (len - sizeof(h)) % ent)
            return invalid(why, n, "length %u is not 8 + 40 * entries", len);
        memcpy(&h, d, sizeof(h));
        if (h.nent != (len - sizeof(h)) / ent || h.nent == 0 || h.nent > MAX_CPUID_ENTRIES)
            return invalid(why, n, "%u entries declared, length %u holds %zu (1 to %u allowed)",
                           h.nent, len, (len - sizeof(h)) / ent, MAX_CPUID_ENTRIES);
    } else if (tag == TAG_XSAVE) {
        if (len < sizeof(struct kvm_xsave) || len > MAX_XSAVE_SIZE)
            return invalid(why, n, "length %u, expected %zu to %u", len,
                           sizeof(struct kvm_xsave), MAX_XSAVE_SIZE);
    } else if (tag == TAG_MSRS) {
        return vs_vstate_msrs_validate(d, len, why, n);
    } else if (tag == TAG_XCRS) {
        struct kvm_xcrs x;
        memcpy(&x, d, sizeof(x));
        if (x.nr_xcrs > KVM_MAX_XCRS || x.flags)
            return invalid(why, n, "nr_xcrs %u (at most %d), flags 0x%x (must be 0)",
                           x.nr_xcrs, KVM_MAX_XCRS, x.flags);
    } else if (tag == TAG_TSC_KHZ) {
        uint32_t khz;
        memcpy(&khz, d, sizeof(khz));
        if (khz == 0)
            return invalid(why, n, "a TSC of 0 kHz");
    } else if (tag == TAG_MONITOR) {
        uint32_t f;
        memcpy(&f, d, sizeof(f));
        if (f & ~(MONITOR_HALTED | MONITOR_STOPPED))
            return invalid(why, n, "unknown flags 0x%x", f);
    }
    return 0;
}

/* Split a blob into its sections, refusing anything malformed. Nothing is used before the
 * whole blob has passed, so a bad blob never leaves a half-loaded vCPU. */
static int parse(const uint8_t *blob, size_t len, bool machine, const char *who,
                 struct vs_vstate_sections *s)
{
    memset(s, 0, sizeof(*s));
    size_t off = 0;
    while (off < len) {
        size_t left = len - off;
        uint32_t tag = 0, slen = 0;
        memcpy(&tag, blob + off, left < 4 ? left : 4);
        if (left < 8)
            return vs_fail(EINVAL, "%s: truncated at offset %zu in the header of section %s "
                           "(%zu bytes left); the stream is corrupt", who, off,
                           left < 4 ? "?" : tag_name(tag), left);
        memcpy(&slen, blob + off + 4, 4);
        if (tag >= TAG_LIMIT || !vs_vstate_tags[tag].name)
            return vs_fail(EINVAL, "%s: unknown section tag %u (length %u) at offset %zu; the "
                           "stream is corrupt or from a newer vmshift", who, tag, slen, off);
        size_t padded = ((size_t)slen + 7) & ~(size_t)7;
        const uint8_t *d = blob + off + 8;
        char why[160] = "";
        if (vs_vstate_tags[tag].machine != machine)
            snprintf(why, sizeof(why), "belongs in a %s state blob", machine ? "vCPU" : "machine");
        else if (padded > left - 8)
            snprintf(why, sizeof(why), "declares length %u but only %zu bytes remain", slen,
                     left - 8);
        else if (s->data[tag])
            snprintf(why, sizeof(why), "appears a second time");
        else
            check_section(tag, d, slen, why, sizeof(why));
        for (size_t i = slen; !why[0] && i < padded; i++)
            if (d[i])
                snprintf(why, sizeof(why), "has non-zero padding");
        if (why[0])
            return vs_fail(EINVAL, "%s: section %s (tag %u) at offset %zu: %s; the stream is "
                           "truncated, corrupt or from an incompatible vmshift", who,
                           vs_vstate_tags[tag].name, tag, off, why);
        s->data[tag] = d;
        s->len[tag] = slen;
        off += 8 + padded;
    }
    return 0;
}

static int require_section(const struct vs_vstate_sections *s, uint32_t tag, const char *who)
{
    if (s->data[tag])
        return 0;
    return vs_fail(EINVAL, "%s: section %s (tag %u) is missing; the stream is corrupt or "
                   "incomplete", who, vs_vstate_tags[tag].name, tag);
}

int vs_vstate_parse_vcpu(unsigned index, const uint8_t *blob, size_t len, struct vs_vstate_sections *s)
{
    char who[32];
    snprintf(who, sizeof(who), "vCPU %u state", index);
    int rc = parse(blob, len, false, who, s);
    static const uint32_t mandatory[] = { TAG_CPUID, TAG_REGS, TAG_SREGS, TAG_MONITOR };
    for (size_t i = 0; !rc && i < sizeof(mandatory) / sizeof(mandatory[0]); i++)
        rc = require_section(s, mandatory[i], who);
    if (rc)
        return rc;
    if (!s->data[TAG_FPU] == !s->data[TAG_XSAVE])
        return vs_fail(EINVAL, "%s: needs exactly one of sections FPU (tag %u) and XSAVE "
                       "(tag %u), found %s; the stream is corrupt", who, TAG_FPU, TAG_XSAVE,
                       s->data[TAG_FPU] ? "both" : "neither");
    return 0;
}

int vs_vstate_validate_vcpu(unsigned index, const uint8_t *blob, size_t len)
{
    struct vs_vstate_sections s;
    return vs_vstate_parse_vcpu(index, blob, len, &s);
}

int vs_vstate_parse_machine(const uint8_t *blob, size_t len, struct vs_vstate_sections *s)
{
    const char *who = "machine state";
    int rc = parse(blob, len, true, who, s);
    if (!rc)
        rc = require_section(s, TAG_PVPORT, who);
    if (!rc)
        rc = require_section(s, TAG_SERIAL, who);
    return rc;
}

/* The 2.0-2.2 tags and the registry sections (version 1) they became, in the order a
 * flat machine registers its devices. */
static const struct { uint32_t tag; const char *device; } legacy_devices[] = {
    { TAG_PVPORT, "pvport" }, { TAG_SERIAL, "serial" }, { TAG_CLOCK, "kvmclock" },
};

int vs_vstate_convert_legacy_machine(const uint8_t *blob, size_t len, struct vs_blob *out)
{
    struct vs_vstate_sections s;
    int rc = vs_vstate_parse_machine(blob, len, &s);
    out->len = 0;
    for (size_t i = 0; !rc && i < sizeof(legacy_devices) / sizeof(legacy_devices[0]); i++) {
        uint32_t tag = legacy_devices[i].tag;
        if (s.data[tag])
            rc = vs_vmstate_append_section(out, legacy_devices[i].device, 0, 1, s.data[tag],
                                           s.len[tag]);
    }
    return rc;
}

int vs_vstate_validate_machine(const struct vs_vmstate_registry *r, bool legacy,
                               const uint8_t *blob, size_t len)
{
    if (!legacy)
        return vs_vmstate_validate(r, blob, len);
    struct vs_blob conv = { 0 };
    int rc = vs_vstate_convert_legacy_machine(blob, len, &conv);
    if (!rc)
        rc = vs_vmstate_validate(r, conv.data, conv.len);
    vs_blob_free(&conv);
    return rc;
}
