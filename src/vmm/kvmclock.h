/* The VM's KVM clock (kvmclock, the guest's paravirtual time source) as a piece of
 * machine state: device "kvmclock" in the registry, saved with KVM_GET_CLOCK and restored
 * with KVM_SET_CLOCK. It registers last, so the clock is set as late as possible before
 * the guest resumes (docs/device-state.md, "Time"). */
#ifndef VS_KVMCLOCK_H
#define VS_KVMCLOCK_H

#include <linux/kvm.h>
#include <stdbool.h>

struct vs_kvm;
struct vs_vmstate_registry;

struct vs_kvmclock {
    int vm_fd;
    struct kvm_clock_data rec;      /* version 1: the struct as KVM_GET_CLOCK fills it */
};

/* Register the clock's state, when this host's KVM can set the clock
 * (KVM_CAP_ADJUST_CLOCK); without it there is nothing to carry and nothing registers. */
int vs_kvmclock_attach(struct vs_kvmclock *c, const struct vs_kvm *kvm,
                       struct vs_vmstate_registry *r);
extern const struct vs_vmstate vs_kvmclock_vmstate;

#endif
