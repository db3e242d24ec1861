#include "vmm/kvm.h"
#include "common/error.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Identity map and TSS pages KVM needs on Intel hosts without unrestricted guest support;
 * placed just below 4 GiB where our guests have no RAM (the usual BIOS location). */
#define VS_KVM_TSS_ADDR      0xfffbd000ULL
#define VS_KVM_IDENTITY_ADDR 0xfffbc000ULL

static int check_extension(int fd, long cap)
{
    int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

static int get_supported_cpuid(int sys_fd, struct kvm_cpuid2 **out)
{
    for (unsigned n = 128; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
        if (!c)
            return vs_fail(ENOMEM, "out of memory for the CPUID table");
        c->nent = n;
        if (ioctl(sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            *out = c;
            return 0;
        }
        int err = errno;
        free(c);
        if (err != E2BIG)
            return vs_fail(err, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(err));
    }
    return vs_fail(E2BIG, "KVM_GET_SUPPORTED_CPUID needs more than 4096 entries");
}

static int probe_cpuid(struct vs_kvm *kvm)
{
    return get_supported_cpuid(kvm->sys_fd, &kvm->cpuid);
}

int vs_kvm_supported_cpuid(const char *device_path, struct kvm_cpuid2 **out)
{
    int fd = open(device_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return vs_fail(errno, "cannot open %s to read the CPU features KVM offers: %s",
                       device_path, strerror(errno));
    int rc = get_supported_cpuid(fd, out);
    close(fd);
    return rc;
}

int vs_kvm_open(struct vs_kvm *kvm, const char *device_path)
{
    memset(kvm, 0, sizeof(*kvm));
    kvm->sys_fd = kvm->vm_fd = -1;
    kvm->sys_fd = open(device_path, O_RDWR | O_CLOEXEC);
    if (kvm->sys_fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return vs_fail(err, "cannot open %s: no such device; load the kvm module "
                           "(modprobe kvm_intel or kvm_amd) or run on a host with KVM",
                           device_path);
        return vs_fail(err, "cannot open %s: %s; run as root or add yourself to the kvm group",
                       device_path, strerror(err));
    }
    int rc;
    int version = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        rc = vs_fail(ENOTSUP, "%s speaks KVM API %d, vmshift needs %d", device_path, version,
                     KVM_API_VERSION);
        goto fail;
    }
    if (!check_extension(kvm->sys_fd, KVM_CAP_IMMEDIATE_EXIT) ||
        !check_extension(kvm->sys_fd, KVM_CAP_USER_MEMORY)) {
        rc = vs_fail(ENOTSUP, "%s lacks KVM_CAP_IMMEDIATE_EXIT or KVM_CAP_USER_MEMORY; "
                     "use a Linux 4.11 or newer host", device_path);
        goto fail;
    }
    kvm->vcpu_mmap_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (kvm->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
        rc = vs_fail(EIO, "KVM_GET_VCPU_MMAP_SIZE returned %d", kvm->vcpu_mmap_size);
        goto fail;
    }
    kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
    if (kvm->vm_fd < 0) {
        rc = vs_fail(errno, "KVM_CREATE_VM failed: %s", strerror(errno));
        goto fail;
    }
    struct vs_kvm_caps *c = &kvm->caps;
    c->manual_dirty_log_protect = check_extension(kvm->vm_fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) != 0;
    c->dirty_ring_max = (uint32_t)check_extension(kvm->vm_fd, KVM_CAP_DIRTY_LOG_RING);
    c->dirty_ring = c->dirty_ring_max != 0;
    c->max_vcpus = (unsigned)check_extension(kvm->vm_fd, KVM_CAP_MAX_VCPUS);
    if (!c->max_vcpus)
        c->max_vcpus = (unsigned)check_extension(kvm->vm_fd, KVM_CAP_NR_VCPUS);
    if (!c->max_vcpus)
        c->max_vcpus = 4; /* documented default when the capability is absent */
    c->nr_memslots = (unsigned)check_extension(kvm->vm_fd, KVM_CAP_NR_MEMSLOTS);

    if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, VS_KVM_TSS_ADDR) < 0) {
        rc = vs_fail(errno, "KVM_SET_TSS_ADDR failed: %s", strerror(errno));
        goto fail;
    }
    uint64_t identity = VS_KVM_IDENTITY_ADDR;
    if (check_extension(kvm->vm_fd, KVM_CAP_SET_IDENTITY_MAP_ADDR) &&
        ioctl(kvm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
        rc = vs_fail(errno, "KVM_SET_IDENTITY_MAP_ADDR failed: %s", strerror(errno));
        goto fail;
    }
    rc = probe_cpuid(kvm);
    if (rc)
        goto fail;
    return 0;
fail:
    vs_kvm_close(kvm);
    return rc;
}

void vs_kvm_close(struct vs_kvm *kvm)
{
    if (kvm->vm_fd >= 0)
        close(kvm->vm_fd);
    if (kvm->sys_fd >= 0)
        close(kvm->sys_fd);
    free(kvm->cpuid);
    kvm->cpuid = NULL;
    kvm->vm_fd = kvm->sys_fd = -1;
}

int vs_kvm_set_memory_slot(struct vs_kvm *kvm, uint32_t slot, uint64_t gpa, uint64_t size,
                           void *hva, uint32_t flags)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)hva,
    };
    if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
        return vs_fail(errno, "KVM_SET_USER_MEMORY_REGION slot %u at 0x%llx size 0x%llx: %s",
                       slot, (unsigned long long)gpa, (unsigned long long)size, strerror(errno));
    return 0;
}

int vs_kvm_set_ram_slots(struct vs_kvm *kvm, const struct vs_ram_layout *l, uint8_t *base,
                         uint32_t flags)
{
    for (unsigned i = 0; i < l->nr_regions; i++) {
        const struct vs_ram_region *r = &l->regions[i];
        int rc = vs_kvm_set_memory_slot(kvm, i, r->gpa, r->size, base + r->offset, flags);
        if (rc)
            return rc;
    }
    return 0;
}

int vs_kvm_create_vcpu(struct vs_kvm *kvm, unsigned index, int *fd)
{
    int r = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (r < 0)
        return vs_fail(errno, "KVM_CREATE_VCPU %u failed: %s (this host allows %u vCPUs)",
                       index, strerror(errno), kvm->caps.max_vcpus);
    *fd = r;
    return 0;
}
