/* vCPU and machine state: saving it from a paused VM into self-describing blobs, loading
 * it into another VM, and checking that what KVM holds equals what was sent.
 *
 * Blob format (version 1): a sequence of sections, each
 *     uint32_t tag; uint32_t length; uint8_t data[length]; padded with zeros to 8 bytes,
 * little-endian. Unknown tags are an error (the stream version says what exists). */
#ifndef VS_VSTATE_H
#define VS_VSTATE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/blob.h"
#include "vmm/vm.h"

/* vCPU sections: CPUID, REGS, SREGS, FPU or XSAVE, XCRS, MSRS (a fixed list of the
 * architectural MSRs a guest can change), VCPU_EVENTS, DEBUGREGS, MP_STATE, and the
 * monitor's own flags (halted/stopped). The vCPU must be paused (parked). */
int vs_vstate_save_vcpu(struct vs_vcpu *v, struct vs_blob *out);
/* Load into a vCPU that has never run (incoming skeleton). Validates every section
 * (tags, lengths, counts) before use; CPUID is set first. */
int vs_vstate_load_vcpu(struct vs_vcpu *v, const uint8_t *blob, size_t len);
/* Re-read the vCPU's state from KVM and compare with blob: REGS, SREGS (segments,
 * control registers, EFER, descriptor tables), XCRS, MSRS (all but the TSC, which moves)
 * and the monitor flags. The error names the first field that differs. */
int vs_vstate_check_vcpu(struct vs_vcpu *v, const uint8_t *blob, size_t len);

/* The machine state: every registered device's section (vmm/vmstate.h). The VM must be
 * paused. A legacy blob (from a 2.0-2.2 source: tagged sections CLOCK, PVPORT, SERIAL) is
 * converted to the registry's form first. */
int vs_vstate_save_machine(struct vs_vm *vm, struct vs_blob *out);
int vs_vstate_load_machine(struct vs_vm *vm, bool legacy, const uint8_t *blob, size_t len);

/* A 2.0-2.2 machine blob as registry sections: CLOCK -> kvmclock v1, PVPORT -> pvport v1,
 * SERIAL -> serial v1 (the same bytes; the devices check their content on load). */
int vs_vstate_convert_legacy_machine(const uint8_t *blob, size_t len, struct vs_blob *out);

/* The checks the loads make before touching KVM, on their own (no VM needed): every
 * section well-formed, the mandatory ones present. Used by the loads and by the fuzz
 * harness; a machine blob is checked against the devices of registry r. */
int vs_vstate_validate_vcpu(unsigned index, const uint8_t *blob, size_t len);
int vs_vstate_validate_machine(const struct vs_vmstate_registry *r, bool legacy,
                               const uint8_t *blob, size_t len);

#endif
