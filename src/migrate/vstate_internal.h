/* Private to vstate.c and vstate_msrs.c: CPUID read-back, the MSRS section, and the
 * field-by-field comparisons behind vs_vstate_check_vcpu(). */
#ifndef VS_VSTATE_INTERNAL_H
#define VS_VSTATE_INTERNAL_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

int vs_vstate_cpuid_read(int fd, unsigned vcpu, const struct kvm_cpuid2 *given,
                         struct kvm_cpuid2 **out, size_t *out_len);
int vs_vstate_msrs_read(int fd, unsigned vcpu, struct kvm_msrs **out, size_t *out_len);
int vs_vstate_msrs_validate(const uint8_t *data, size_t len, char *why, size_t why_len);
int vs_vstate_msrs_write(int fd, unsigned vcpu, const uint8_t *data, size_t len);
int vs_vstate_msrs_compare(int fd, unsigned vcpu, const uint8_t *data, size_t len);
int vs_vstate_differs(unsigned vcpu, const char *field, uint64_t kvm, uint64_t blob);
int vs_vstate_compare_regs(unsigned vcpu, const struct kvm_regs *kvm, const struct kvm_regs *blob);
int vs_vstate_compare_sregs(unsigned vcpu, const struct kvm_sregs *kvm,
                            const struct kvm_sregs *blob);
int vs_vstate_compare_xcrs(unsigned vcpu, const struct kvm_xcrs *kvm, const struct kvm_xcrs *blob);

#endif
