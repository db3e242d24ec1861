/* vCPUs: creation in the boot state, and the thread that runs KVM_RUN and emulates the
 * exits (port I/O to devices, HLT, faults). */
#ifndef VS_VCPU_H
#define VS_VCPU_H

#include <stdatomic.h>
#include "vmm/vm.h"

/* Create vCPU v->index of v->vm, map its kvm_run, set CPUID and the boot registers. */
int vs_vcpu_create(struct vs_vcpu *v, uint64_t cr3);
void vs_vcpu_destroy(struct vs_vcpu *v);
/* pc machine: whether the vCPU sits in KVM halted (HLT no longer exits to user space),
 * read from KVM's "blocking" statistic; false when KVM does not offer it. */
bool vs_vcpu_halted_in_kernel(const struct vs_vcpu *v);
/* KVM_SET_MP_STATE (pc machine: start an AP without INIT-SIPI). */
int vs_vcpu_set_mp_state(struct vs_vcpu *v, uint32_t mp_state);

/* Give vCPU `index` its own APIC ID in a CPUID table, so a guest can tell vCPUs apart. */
struct kvm_cpuid2;
void vs_vcpu_personalise_cpuid(struct kvm_cpuid2 *c, unsigned index);

/* Thread body: runs until vm->quit_requested. */
void *vs_vcpu_thread(void *arg);

/* Called by the vCPU's own thread: sleep ns, but return early when the VM is paused or
 * quits, or when *while_set (if given) becomes false. */
void vs_vcpu_stall_ns(struct vs_vcpu *v, uint64_t ns, atomic_bool *while_set);

/* Make the vCPU leave KVM_RUN soon (call with vm->lock held). */
void vs_vcpu_kick(struct vs_vcpu *v);

/* Install the (empty) signal handler used for kicks; once per process. */
int vs_vcpu_init_signals(void);

#endif
