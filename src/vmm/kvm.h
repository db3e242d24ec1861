/* The KVM system and VM file descriptors, and the capabilities vmshift relies on.
 * Probed once, up front, so that a missing feature fails before anything runs. */
#ifndef VS_KVM_H
#define VS_KVM_H

#include <stdbool.h>
#include <stdint.h>
#include "vmm/ram_layout.h"

struct kvm_cpuid2;

struct vs_kvm_caps {
    bool manual_dirty_log_protect;  /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 */
    bool dirty_ring;                /* KVM_CAP_DIRTY_LOG_RING (max size in dirty_ring_max) */
    uint32_t dirty_ring_max;        /* bytes */
    unsigned max_vcpus;
    unsigned nr_memslots;
};

struct vs_kvm {
    int sys_fd;                     /* /dev/kvm */
    int vm_fd;
    int vcpu_mmap_size;             /* size of struct kvm_run mapping */
    struct vs_kvm_caps caps;
    struct kvm_cpuid2 *cpuid;       /* KVM_GET_SUPPORTED_CPUID, given to every vCPU */
};

/* Open the KVM device (normally "/dev/kvm"), check the API version, create a VM and
 * probe capabilities. On failure nothing stays open. */
int vs_kvm_open(struct vs_kvm *kvm, const char *device_path);
void vs_kvm_close(struct vs_kvm *kvm);

/* KVM_GET_SUPPORTED_CPUID of device_path without creating a VM; free *out. */
int vs_kvm_supported_cpuid(const char *device_path, struct kvm_cpuid2 **out);

/* Register guest memory [gpa, gpa+size) backed by host address hva. */
int vs_kvm_set_memory_slot(struct vs_kvm *kvm, uint32_t slot, uint64_t gpa, uint64_t size,
                           void *hva, uint32_t flags);

/* Register every region of guest RAM (host address `base` = RAM offset 0) as memory
 * slot i = region index, with flags (0 or KVM_MEM_LOG_DIRTY_PAGES). */
int vs_kvm_set_ram_slots(struct vs_kvm *kvm, const struct vs_ram_layout *l, uint8_t *base,
                         uint32_t flags);

/* Create vCPU `index`; returns its fd in *fd. */
int vs_kvm_create_vcpu(struct vs_kvm *kvm, unsigned index, int *fd);

#endif
