/* A virtual machine: RAM, vCPU threads, devices, and its run state (running / paused).
 * Pausing is synchronous: when vs_vm_pause() returns, no vCPU is inside KVM_RUN. */
#ifndef VS_VM_H
#define VS_VM_H

#include <pthread.h>
#include <time.h>
#include <stdbool.h>
#include <stdint.h>
#include "vmm/boot.h"
#include "vmm/bus.h"
#include "vmm/device_list.h"
#include "vmm/irqchip.h"
#include "vmm/kvm.h"
#include "vmm/kvmclock.h"
#include "vmm/memory.h"
#include "vmm/vcpu_throttle.h"
#include "vmm/vmstate.h"
#include "vmm/devices/pvport.h"
#include "vmm/devices/serial.h"

#define VS_MAX_PRELOADS 8

struct vs_preload {
    const char *path;
    uint64_t addr;
};

/* The machine: what hardware the VM has and where its RAM lies.
 *  flat: RAM from guest-physical 0, no interrupt controller, serial and pvport only (the
 *        VMs of vmshift before the device platform; streams from 2.0-2.2 sources);
 *  pc:   RAM below 3 GiB at 0 and the rest from 4 GiB (the gap holds device MMIO, the
 *        IOAPIC and the LAPIC), in-kernel irqchip (PIC, IOAPIC, LAPIC) and PIT, devices on
 *        the bus, described to the guest by the e820 map and an MP table. */
enum vs_machine { VS_MACHINE_PC = 0, VS_MACHINE_FLAT = 1 };

struct vs_virtio_rng;
struct vs_virtio_blk;
struct vs_virtio_net;
struct vs_cpu_model;

struct vs_vm_config {
    enum vs_machine machine;
    const char *kvm_device;      /* "/dev/kvm" */
    const char *kernel;          /* guest ELF */
    enum vs_boot_mode boot;
    uint64_t mem_size;
    enum vs_ram_backing ram_backing;   /* --ram-backing (ram_backing.h); AUTO by default */
    unsigned nr_vcpus;
    const char *cmdline;         /* guest command line (parameters) */
    const char *serial;          /* "stdout", "none" or a file */
    uint32_t fill;               /* enum vs_fill for [fill_start, end of RAM) */
    uint64_t fill_start;
    uint64_t seed;
    struct vs_preload preloads[VS_MAX_PRELOADS];
    unsigned nr_preloads;
    bool incoming;               /* skeleton for an incoming migration: RAM stays zero, no
                                    kernel is loaded, vCPUs get their state from the stream */
    uint32_t dirty_ring;         /* KVM dirty ring entries per vCPU, 0 = dirty-log bitmap */
    const struct vs_cpu_model *cpu_model;  /* the features vCPUs see (cpu_model.h); NULL =
                                              host, the whole KVM_GET_SUPPORTED_CPUID */
    const struct vs_device_list *devices;  /* pc: NICs and disks, in slot order (NULL: none) */
};

struct vs_vm;
struct vs_dirty_ring;

struct vs_vcpu {
    struct vs_vm *vm;
    unsigned index;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_started;
    bool parked;        /* in user space waiting (paused, halted, stopped or quitting) */
    bool halted;        /* the guest executed HLT with nothing to wake it (flat; in pc
                           the vCPU halts inside KVM: vs_vcpu_halted_in_kernel) */
    int stats_fd;       /* KVM binary stats of the vCPU (pc), or -1 */
    uint64_t blocking_at;   /* offset of the "blocking" stat in stats_fd (0: none) */
    bool stopped;       /* fatal exit: this vCPU never runs again */
    uint64_t exits;
    struct vs_vcpu_throttle throttle;   /* migration convergence (vcpu_throttle.h) */
};

enum vs_vm_state { VS_VM_CREATED, VS_VM_RUNNING, VS_VM_PAUSED, VS_VM_FAILED, VS_VM_MIGRATED };

struct vs_vm {
    enum vs_machine machine;
    struct vs_kvm kvm;
    struct vs_memory mem;
    struct vs_bus bus;           /* port I/O and MMIO devices (bus.h) */
    struct vs_irqchip irqchip;   /* pc: PIC, IOAPIC, LAPICs, PIT in KVM (vm_fd -1: flat) */
    struct vs_serial serial;
    struct vs_pvport pvport;
    struct vs_kvmclock kvmclock;
    struct vs_virtio_rng *rng;   /* pc: virtio-rng in virtio slot 0 (NULL: flat) */
    struct vs_virtio_net *nics[VS_MAX_DEVICES];   /* pc: the --nic NICs, in slot order */
    unsigned nr_nics;
    bool incoming;               /* built for an incoming migration */
    unsigned nr_virtio_slots;    /* pc: virtio-mmio slots taken (virtio/pc_virtio_slots.h) */
    struct vs_virtio_blk *disks[VS_MAX_DEVICES];   /* pc: the --disk devices, in slot order */
    unsigned nr_disks;
    struct vs_device_list device_list;   /* the NICs and disks it was built with (VM_CONFIG) */
    struct vs_vmstate_registry devices;  /* every device's migratable state (vmstate.h) */
    struct vs_boot_entry boot;
    unsigned nr_vcpus;
    struct vs_vcpu *vcpus;
    struct vs_dirty_ring *ring;  /* KVM dirty ring, or NULL (dirty_ring.h) */
    struct vs_vm_throttle throttle;

    pthread_mutex_t lock;        /* guards the fields below and every vCPU's flags */
    pthread_cond_t cond;         /* any change of them */
    enum vs_vm_state state;
    bool pause_requested;
    bool quit_requested;
    char failure[256];           /* why the guest failed (VS_VM_FAILED) */
    const char *resume_blocked;  /* non-NULL: why vs_vm_resume() refuses (migration) */
    struct timespec run_changed; /* CLOCK_REALTIME of the last start or stop of the vCPUs */
};

const char *vs_vm_state_name(enum vs_vm_state s);

/* Build the VM: RAM, fill, preloads, kernel, boot info, vCPUs in their initial state.
 * Nothing runs until vs_vm_start(). */
int vs_vm_create(struct vs_vm **out, const struct vs_vm_config *cfg);
/* Start the vCPU threads (parked when pause_requested; else the devices are activated
 * first, as by vs_vm_resume). */
int vs_vm_start(struct vs_vm *vm);
/* Stop every vCPU outside KVM_RUN, then complete (and flush) the devices' requests in
 * flight: when it returns, neither the guest nor a device changes guest RAM or a disk.
 * Idempotent. */
int vs_vm_pause(struct vs_vm *vm);
/* Run again; the devices take requests again (a destination's disks are opened for writing
 * here, on the first start or resume: the VM is its own then). */
int vs_vm_resume(struct vs_vm *vm);
/* Ask every vCPU to stop, without waiting: a vCPU waiting for a post-copy page stops when
 * the page arrives. The VM is paused from now on. */
void vs_vm_request_pause(struct vs_vm *vm);
/* While a migration needs the vCPUs stopped, refuse resume with this reason (NULL: allow). */
void vs_vm_block_resume(struct vs_vm *vm, const char *why);
/* The VM now runs on another host: it stays paused here for good, and its disks are
 * closed (the other host writes them now). */
void vs_vm_mark_migrated(struct vs_vm *vm);
/* Whether a migration can take the VM (0), or why not: a disk that is not on shared
 * storage (its content would not follow), unless the migration copies it (with_disks); a
 * disk to copy that is an NBD export (only files and block devices are copied). */
int vs_vm_check_migratable(struct vs_vm *vm, bool with_disks);
/* Undo vs_vm_mark_migrated, on the operator's word that the other host never ran it (it
 * died before it could): the VM is paused, and can be resumed. */
void vs_vm_unmark_migrated(struct vs_vm *vm);
/* A migrated VM (vs_vm_mark_migrated) whose migration completed: give its RAM back to the
 * host (vs_memory_release). EPERM for a VM that is not migrated. */
int vs_vm_release_memory(struct vs_vm *vm);
bool vs_vm_is_running(struct vs_vm *vm);
/* When the vCPUs last started or stopped (CLOCK_REALTIME): the time of a STOP or RESUME
 * event, which the monitor notices later. */
struct timespec vs_vm_run_changed(struct vs_vm *vm);
/* CPU time the vCPU threads have used so far (running the guest). */
uint64_t vs_vm_vcpu_cpu_ns(struct vs_vm *vm);

/* Stop the vCPU threads (if started) and free everything. */
void vs_vm_destroy(struct vs_vm *vm);

/* Record a fatal guest error: the VM state becomes FAILED (called by vCPU threads). */
void vs_vm_fail(struct vs_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
