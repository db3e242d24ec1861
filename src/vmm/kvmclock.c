/* kvmclock state (kvmclock.h).
 *
 * The clock stops with the VM, as QEMU's does: the value read while the source is
 * paused is what the destination's clock starts from, so the guest's kvmclock neither
 * jumps by the blackout nor runs backwards (KVM_CLOCK_REALTIME is not used: it would add
 * the downtime). The guest's TSC travels in its vCPU state (IA32_TSC, and the TSC
 * frequency: vstate.c); KVM computes the guest's pvclock from both. */
#include "vmm/kvmclock.h"
#include "vmm/kvm.h"
#include "vmm/vmstate.h"
#include "common/error.h"
#include "common/log.h"

#include <string.h>
#include <sys/ioctl.h>

static void *kvmclock_record(void *opaque)
{
    return &((struct vs_kvmclock *)opaque)->rec;
}

static int kvmclock_pre_save(void *opaque)
{
    struct vs_kvmclock *c = opaque;
    memset(&c->rec, 0, sizeof(c->rec));
    if (ioctl(c->vm_fd, KVM_GET_CLOCK, &c->rec) < 0)
        return vs_fail(errno, "KVM_GET_CLOCK: %s", strerror(errno));
    if (!(c->rec.flags & KVM_CLOCK_TSC_STABLE))
        vs_debug("kvmclock: the host's clock is not TSC-stable; the guest may see it move "
                 "slightly on migration");
    return 0;
}

static int kvmclock_post_load(void *opaque, uint32_t version)
{
    (void)version;
    struct vs_kvmclock *c = opaque;
    struct kvm_clock_data set;
    memset(&set, 0, sizeof(set));
    set.clock = c->rec.clock;       /* the value only: no REALTIME, no host TSC */
    if (ioctl(c->vm_fd, KVM_SET_CLOCK, &set) < 0)
        return vs_fail(errno, "KVM_SET_CLOCK to %llu ns: %s; the destination KVM refused "
                       "the source's clock", (unsigned long long)set.clock, strerror(errno));
    return 0;
}

static const struct vs_vmstate_field kvmclock_fields[] = {
    VS_VMSTATE_FIELD(struct kvm_clock_data, clock, 1),
    VS_VMSTATE_FIELD(struct kvm_clock_data, flags, 1),
    VS_VMSTATE_FIELD(struct kvm_clock_data, pad0, 1),
    VS_VMSTATE_FIELD(struct kvm_clock_data, realtime, 1),
    VS_VMSTATE_FIELD(struct kvm_clock_data, host_tsc, 1),
    VS_VMSTATE_FIELD(struct kvm_clock_data, pad, 1),
};
_Static_assert(sizeof(struct kvm_clock_data) == 48, "kvmclock version 1 layout");

const struct vs_vmstate vs_kvmclock_vmstate = {
    .name = "kvmclock", .version = 1, .min_version = 1,
    .fields = kvmclock_fields, .nr_fields = sizeof(kvmclock_fields) / sizeof(kvmclock_fields[0]),
    .record = kvmclock_record, .pre_save = kvmclock_pre_save, .post_load = kvmclock_post_load,
};

int vs_kvmclock_attach(struct vs_kvmclock *c, const struct vs_kvm *kvm,
                       struct vs_vmstate_registry *r)
{
    memset(c, 0, sizeof(*c));
    c->vm_fd = kvm->vm_fd;
    if (ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK) <= 0) {
        vs_warn("this host's KVM cannot set the VM clock (no KVM_CAP_ADJUST_CLOCK): the "
                "guest's kvmclock will not migrate with it");
        return 0;
    }
    return vs_vmstate_register(r, &vs_kvmclock_vmstate, 0, c);
}
