/* Private to vstate.c, vstate_parse.c and vstate_msrs.c: the section tags and records,
 * parsing, CPUID read-back, the MSRS section, and the field-by-field comparisons behind
 * vs_vstate_check_vcpu(). */
#ifndef VS_VSTATE_INTERNAL_H
#define VS_VSTATE_INTERNAL_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmshift/guest_abi.h"

enum {
    TAG_CPUID = 1, TAG_REGS = 2, TAG_SREGS = 3, TAG_FPU = 4, TAG_XSAVE = 5, TAG_XCRS = 6,
    TAG_MSRS = 7, TAG_EVENTS = 8, TAG_DEBUGREGS = 9, TAG_MP_STATE = 10, TAG_MONITOR = 11,
    TAG_LAPIC = 12, TAG_TSC_KHZ = 13,   /* 2.3 */
    TAG_CLOCK = 32, TAG_PVPORT = 33, TAG_SERIAL = 34,
    TAG_LIMIT
};

#define MONITOR_HALTED  1u
#define MONITOR_STOPPED 2u
#define MAX_CPUID_ENTRIES 4096u    /* as many as kvm.c ever asks KVM for */
#define MAX_XSAVE_SIZE (1u << 20)  /* far above any CPU's XSAVE area */

struct vs_vstate_tag {
    const char *name;
    uint32_t size;      /* exact length; 0: variable, checked when parsing */
    bool machine;       /* belongs in a machine blob rather than a vCPU blob */
};
extern const struct vs_vstate_tag vs_vstate_tags[TAG_LIMIT];

/* A parsed blob: where each section's data is (NULL: absent). */
struct vs_vstate_sections {
    const uint8_t *data[TAG_LIMIT];
    uint32_t len[TAG_LIMIT];
};
/* Split a blob into its sections, refusing anything malformed (vstate_parse.c). */
int vs_vstate_parse_vcpu(unsigned index, const uint8_t *blob, size_t len,
                         struct vs_vstate_sections *s);
int vs_vstate_parse_machine(const uint8_t *blob, size_t len, struct vs_vstate_sections *s);


int vs_vstate_cpuid_read(int fd, unsigned vcpu, const struct kvm_cpuid2 *given,
                         struct kvm_cpuid2 **out, size_t *out_len);
int vs_vstate_msrs_read(int fd, unsigned vcpu, bool lapic, struct kvm_msrs **out,
                        size_t *out_len);
int vs_vstate_msrs_validate(const uint8_t *data, size_t len, char *why, size_t why_len);
int vs_vstate_msrs_write(int fd, unsigned vcpu, const uint8_t *data, size_t len);
int vs_vstate_msrs_compare(int fd, unsigned vcpu, const uint8_t *data, size_t len);
int vs_vstate_differs(unsigned vcpu, const char *field, uint64_t kvm, uint64_t blob);
int vs_vstate_compare_regs(unsigned vcpu, const struct kvm_regs *kvm, const struct kvm_regs *blob);
int vs_vstate_compare_sregs(unsigned vcpu, const struct kvm_sregs *kvm,
                            const struct kvm_sregs *blob);
int vs_vstate_compare_xcrs(unsigned vcpu, const struct kvm_xcrs *kvm, const struct kvm_xcrs *blob);

#endif
