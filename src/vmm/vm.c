#include "vmm/vm.h"
#include "vmm/cpu_model.h"
#include "common/cpu_time.h"
#include "vmm/dirty_ring.h"
#include "vmm/fill.h"
#include "vmm/mptable.h"
#include "vmm/vcpu.h"
#include "vmm/virtio/pc_virtio_slots.h"
#include "vmm/virtio/virtio_blk.h"
#include "vmm/virtio/virtio_net.h"
#include "vmm/virtio/virtio_rng.h"
#include "common/error.h"
#include "common/log.h"
#include "vmshift/guest_abi.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *vs_vm_state_name(enum vs_vm_state s)
{
    switch (s) {
    case VS_VM_CREATED: return "created";
    case VS_VM_RUNNING: return "running";
    case VS_VM_PAUSED: return "paused";
    case VS_VM_FAILED: return "failed";
    case VS_VM_MIGRATED: return "migrated";
    }
    return "?";
}

void vs_vm_fail(struct vs_vm *vm, const char *fmt, ...)
{
    char msg[sizeof(vm->failure)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    vs_log(VS_LOG_ERROR, "guest failed: %s", msg);
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VS_VM_FAILED)
        memcpy(vm->failure, msg, sizeof(msg));
    vm->state = VS_VM_FAILED;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

/* How many virtio-mmio slots the pc machine's devices take (pc_virtio_slots.h). */
static unsigned pc_virtio_slots(const struct vs_vm_config *cfg)
{
    return 1 + (cfg->devices ? cfg->devices->nr : 0);   /* virtio-rng, NICs and disks */
}

static int load_memory(struct vs_vm *vm, const struct vs_vm_config *cfg)
{
    if (cfg->fill != VS_FILL_NONE) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int rc = vs_fill_ram_from(&vm->mem, cfg->fill_start, cfg->fill, cfg->seed,
                                  cpus > 0 ? (unsigned)cpus : 1);
        if (rc)
            return vs_fail_context(rc, "--fill %s", vs_fill_name(cfg->fill));
    }
    for (unsigned i = 0; i < cfg->nr_preloads; i++) {
        int rc = vs_memory_preload(&vm->mem, cfg->preloads[i].path, cfg->preloads[i].addr);
        if (rc)
            return rc;
    }
    int rc = vs_boot_load_kernel(&vm->mem, cfg->kernel, cfg->boot, &vm->boot);
    if (rc)
        return rc;
    /* The pc machine's virtio-mmio devices, announced as Linux takes them. */
    char cmdline[VS_BOOT_CMDLINE_MAX];
    char slots[VS_BOOT_CMDLINE_MAX] = "";
    if (cfg->machine == VS_MACHINE_PC &&
        vs_pc_virtio_cmdline(slots, sizeof(slots), pc_virtio_slots(cfg)) < 0)
        return vs_fail(E2BIG, "the VM has %u virtio devices; the pc machine takes %d",
                       pc_virtio_slots(cfg), VS_PC_VIRTIO_SLOTS);
    int n = snprintf(cmdline, sizeof(cmdline), "%s%s", cfg->cmdline ? cfg->cmdline : "", slots);
    if (n < 0 || (size_t)n >= sizeof(cmdline))
        return vs_fail(E2BIG, "the guest command line with the device parameters is %d bytes, "
                       "more than %d; shorten --append", n, VS_BOOT_CMDLINE_MAX - 1);
    rc = vs_boot_write_info(&vm->mem, &vm->boot, cmdline);
    if (!rc && cfg->machine == VS_MACHINE_PC)
        rc = vs_mptable_write(&vm->mem, cfg->nr_vcpus);
    return rc;
}

/* The transport parameters of the pc machine's next virtio device: its slot (its MMIO
 * window, GSI and state instance; pc_virtio_slots.h). Slots go in the order devices are
 * attached, which pc_virtio_slots() counts the same way. */
static int next_virtio_slot(struct vs_vm *vm, struct vs_virtio_mmio_params *p)
{
    uint32_t gsi;
    *p = (struct vs_virtio_mmio_params){ .bus = &vm->bus, .mem = &vm->mem,
                                         .vmstate = &vm->devices,
                                         .instance = vm->nr_virtio_slots };
    int rc = vs_pc_virtio_slot(vm->nr_virtio_slots, &p->base, &gsi);
    if (!rc)
        rc = vs_irqchip_line(&vm->irqchip, gsi, &p->irq);
    if (!rc)
        vm->nr_virtio_slots++;
    return rc;
}

/* One NIC or disk of the VM's device list, in the next slot. */
static int attach_listed_device(struct vs_vm *vm, const struct vs_device_spec *d, bool incoming)
{
    struct vs_virtio_mmio_params p;
    int rc = next_virtio_slot(vm, &p);
    if (rc)
        return rc;
    switch (d->kind) {
    case VS_DEVICE_DISK:
        rc = vs_virtio_blk_create(&vm->disks[vm->nr_disks], &p, d->spec, incoming);
        if (!rc)
            vm->nr_disks++;
        return rc;
    case VS_DEVICE_NIC:
        rc = vs_virtio_net_create(&vm->nics[vm->nr_nics], &p, d->spec, incoming);
        if (!rc)
            vm->nr_nics++;
        return rc;
    default:
        return vs_fail(ENOTSUP, "--%s %s: this vmshift cannot build %s devices yet",
                       vs_device_kind_name(d->kind), d->spec, vs_device_kind_name(d->kind));
    }
}

/* The pc machine's virtio-mmio devices, slot 0 first: virtio-rng, then the device list. */
static int attach_virtio(struct vs_vm *vm, bool incoming)
{
    struct vs_virtio_mmio_params p;
    int rc = next_virtio_slot(vm, &p);
    if (!rc)
        rc = vs_virtio_rng_create(&vm->rng, &p);
    for (unsigned i = 0; !rc && i < vm->device_list.nr; i++)
        rc = attach_listed_device(vm, &vm->device_list.d[i], incoming);
    return rc;
}

/* Every device of the machine on the bus, and its state in the registry. Registration
 * order is restore order (docs/device-state.md): the interrupt controllers and the PIT
 * first (pc), the devices, the KVM clock last. */
static int attach_devices(struct vs_vm *vm, bool incoming)
{
    int rc = 0;
    if (vm->machine == VS_MACHINE_PC)
        rc = vs_irqchip_create(&vm->irqchip, &vm->kvm, &vm->devices);
    if (!rc)
        rc = vs_pvport_attach(&vm->pvport, &vm->bus, &vm->devices);
    struct vs_irq_line com1 = { 0 };    /* flat: no interrupt controller, no line */
    if (!rc && vm->machine == VS_MACHINE_PC)
        rc = vs_irqchip_line(&vm->irqchip, VS_SERIAL_IRQ, &com1);
    if (!rc)
        rc = vs_serial_attach(&vm->serial, &vm->bus, &vm->devices, com1);
    if (!rc && vm->machine == VS_MACHINE_PC)
        rc = attach_virtio(vm, incoming);
    if (!rc)
        rc = vs_kvmclock_attach(&vm->kvmclock, &vm->kvm, &vm->devices);
    return rc;
}

int vs_vm_create(struct vs_vm **out, const struct vs_vm_config *cfg)
{
    *out = NULL;
    if (cfg->machine != VS_MACHINE_PC && cfg->machine != VS_MACHINE_FLAT)
        return vs_fail(EINVAL, "machine %d is unknown; use pc or flat", (int)cfg->machine);
    if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > VS_MAX_VCPUS)
        return vs_fail(EINVAL, "--vcpus %u is out of range; give 1 to %d", cfg->nr_vcpus,
                       VS_MAX_VCPUS);
    if (cfg->devices && cfg->devices->nr && cfg->machine != VS_MACHINE_PC)
        return vs_fail(EINVAL, "--%s %s: NICs and disks need the pc machine (not --machine "
                       "flat)", vs_device_kind_name(cfg->devices->d[0].kind),
                       cfg->devices->d[0].spec);
    struct vs_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return vs_fail(ENOMEM, "out of memory for the VM");
    vm->kvm.sys_fd = vm->kvm.vm_fd = vm->mem.memfd = vm->mem.pagemap_fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&vm->cond, &ca);
    pthread_condattr_destroy(&ca);
    vm->state = VS_VM_CREATED;
    vm->machine = cfg->machine;
    vm->incoming = cfg->incoming;
    if (cfg->devices)
        vm->device_list = *cfg->devices;
    vm->irqchip.vm_fd = -1;
    vs_bus_init(&vm->bus);
    vs_vmstate_init(&vm->devices);
    vs_pvport_init(&vm->pvport, &vm->mem);

    int rc = vs_serial_open(&vm->serial, cfg->serial);
    if (rc)
        goto fail;
    rc = vs_vcpu_init_signals();
    if (rc)
        goto fail;
    rc = vs_kvm_open(&vm->kvm, cfg->kvm_device);
    if (!rc)
        rc = vs_cpu_model_apply(cfg->cpu_model, vm->kvm.cpuid);
    if (rc)
        goto fail;
    if (cfg->nr_vcpus > vm->kvm.caps.max_vcpus) {
        rc = vs_fail(EINVAL, "--vcpus %u is more than this host's KVM allows (%u)",
                     cfg->nr_vcpus, vm->kvm.caps.max_vcpus);
        goto fail;
    }
    rc = vs_memory_create_layout(&vm->mem, cfg->mem_size, cfg->machine == VS_MACHINE_PC,
                                 cfg->ram_backing);
    if (!rc)
        rc = attach_devices(vm, cfg->incoming);
    if (rc)
        goto fail;
    if (cfg->incoming) {
        vm->boot.mode = VS_BOOT_LONG; /* informational only: the state comes from the source */
    } else {
        rc = load_memory(vm, cfg);
        if (rc)
            goto fail;
    }
    if (vm->boot.mode == VS_BOOT_PVH && cfg->nr_vcpus > 1) {
        rc = vs_fail(EINVAL, "--boot pvh starts only the first vCPU (there is no APIC to wake "
                     "others); use --vcpus 1 or --boot long");
        goto fail;
    }
    rc = vs_kvm_set_ram_slots(&vm->kvm, &vm->mem.layout, vm->mem.base, 0);
    if (rc)
        goto fail;

    vm->vcpus = calloc(cfg->nr_vcpus, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        rc = vs_fail(ENOMEM, "out of memory for %u vCPUs", cfg->nr_vcpus);
        goto fail;
    }
    vm->nr_vcpus = cfg->nr_vcpus;
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        vm->vcpus[i] = (struct vs_vcpu){ .vm = vm, .index = i, .fd = -1, .stats_fd = -1 };
    }
    /* The dirty ring can only be enabled while the VM has no vCPU. */
    if (cfg->dirty_ring &&
        (rc = vs_dirty_ring_create(&vm->ring, &vm->kvm, cfg->dirty_ring, vm->nr_vcpus,
                                   &vm->mem.layout)))
        goto fail;
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        rc = vs_vcpu_create(&vm->vcpus[i], cfg->incoming ? 0 : VS_BOOT_PT_ADDR);
        /* The in-kernel LAPIC holds APs until an INIT-SIPI; our boot starts every vCPU in
         * long mode directly, so they run from their registers (an incoming VM gets
         * its MP state from the stream). */
        if (!rc && vm->machine == VS_MACHINE_PC && !cfg->incoming && i > 0)
            rc = vs_vcpu_set_mp_state(&vm->vcpus[i], KVM_MP_STATE_RUNNABLE);
        if (!rc && vm->ring)
            rc = vs_dirty_ring_map(vm->ring, i, vm->vcpus[i].fd);
        if (rc)
            goto fail;
    }
    *out = vm;
    return 0;
fail:
    vs_vm_destroy(vm);
    return rc;
}

/* The devices that work beside the vCPUs (disks): they take requests again, and a
 * destination's disks open their files for writing (the VM is its own now). */
static int activate_devices(struct vs_vm *vm)
{
    for (unsigned i = 0; i < vm->nr_disks; i++) {
        int rc = vs_virtio_blk_activate(vm->disks[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* With the vCPUs stopped: every request the devices took completes, and is flushed. */
static void quiesce_devices(struct vs_vm *vm)
{
    for (unsigned i = 0; i < vm->nr_disks; i++)
        vs_virtio_blk_quiesce(vm->disks[i]);
}

int vs_vm_check_migratable(struct vs_vm *vm, bool with_disks)
{
    for (unsigned i = 0; i < vm->nr_disks; i++) {
        const struct vs_blk_spec *s = vs_virtio_blk_spec(vm->disks[i]);
        if (s->shared)
            continue;
        if (!with_disks)
            return vs_fail(EPERM, "disk %s is not on shared storage: give --disk %s,shared when "
                           "the destination reaches the same file, or migrate --with-disks to "
                           "copy it with the VM", s->path, s->path);
        if (vs_blk_nbd_is_uri(s->path))
            return vs_fail(EOPNOTSUPP, "disk %s is an NBD export, and --with-disks copies only "
                           "disks that are files or block devices: give --disk %s,shared when "
                           "the destination reaches the same export, or copy the export into "
                           "a file (qemu-img convert) and run the VM on that", s->path, s->path);
    }
    return 0;
}

/* Devices that move data on their own (NICs) may do so only while the VM runs: stopped,
 * they put nothing more into guest RAM (what a migration sends is then final). */
static void devices_set_running(struct vs_vm *vm, bool running)
{
    for (unsigned i = 0; i < vm->nr_nics; i++)
        vs_virtio_net_set_running(vm->nics[i], running);
}

/* The same, without waiting for a device busy with a post-copy page. */
static void devices_request_stop(struct vs_vm *vm)
{
    for (unsigned i = 0; i < vm->nr_nics; i++)
        vs_virtio_net_request_stop(vm->nics[i]);
}

int vs_vm_start(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool paused = vm->pause_requested;
    pthread_mutex_unlock(&vm->lock);
    int rc = paused ? 0 : activate_devices(vm);
    if (rc)
        return rc;
    pthread_mutex_lock(&vm->lock);
    vm->state = vm->pause_requested ? VS_VM_PAUSED : VS_VM_RUNNING;
    clock_gettime(CLOCK_REALTIME, &vm->run_changed);
    pthread_mutex_unlock(&vm->lock);
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        struct vs_vcpu *v = &vm->vcpus[i];
        int err = pthread_create(&v->thread, NULL, vs_vcpu_thread, v);
        if (err)
            return vs_fail(err, "cannot start the thread of vCPU %u: %s", i, strerror(err));
        v->thread_started = true;
        char name[16];
        snprintf(name, sizeof(name), "vcpu%u", i);
        pthread_setname_np(v->thread, name);
    }
    if (vs_vm_is_running(vm))
        devices_set_running(vm, true);
    return 0;
}

static bool all_parked(struct vs_vm *vm)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        if (vm->vcpus[i].thread_started && !vm->vcpus[i].parked)
            return false;
    return true;
}

int vs_vm_pause(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->pause_requested = true;
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vs_vcpu_kick(&vm->vcpus[i]);
    pthread_cond_broadcast(&vm->cond); /* wakes stalled vCPUs */
    while (!all_parked(vm))
        pthread_cond_wait(&vm->cond, &vm->lock);
    if (vm->state == VS_VM_RUNNING || vm->state == VS_VM_CREATED) {
        vm->state = VS_VM_PAUSED;
        clock_gettime(CLOCK_REALTIME, &vm->run_changed);
    }
    pthread_mutex_unlock(&vm->lock);
    devices_set_running(vm, false);
    quiesce_devices(vm);
    return 0;
}

void vs_vm_request_pause(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->pause_requested = true;
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vs_vcpu_kick(&vm->vcpus[i]);
    pthread_cond_broadcast(&vm->cond);
    if (vm->state == VS_VM_RUNNING) {
        vm->state = VS_VM_PAUSED;
        clock_gettime(CLOCK_REALTIME, &vm->run_changed);
    }
    pthread_mutex_unlock(&vm->lock);
    devices_request_stop(vm);
}

struct timespec vs_vm_run_changed(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    struct timespec t = vm->run_changed;
    pthread_mutex_unlock(&vm->lock);
    return t;
}

int vs_vm_resume(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state == VS_VM_FAILED) {
        pthread_mutex_unlock(&vm->lock);
        return vs_fail(EINVAL, "cannot resume: the guest failed (%s)", vm->failure);
    }
    if (vm->state == VS_VM_MIGRATED) {
        pthread_mutex_unlock(&vm->lock);
        return vs_fail(EINVAL, "cannot resume: the VM has migrated and runs on the destination");
    }
    if (vm->resume_blocked) {
        const char *why = vm->resume_blocked;
        pthread_mutex_unlock(&vm->lock);
        return vs_fail(EBUSY, "cannot resume now: %s", why);
    }
    pthread_mutex_unlock(&vm->lock);
    int rc = activate_devices(vm);
    if (rc)
        return vs_fail_context(rc, "cannot resume");
    pthread_mutex_lock(&vm->lock);
    vm->pause_requested = false;
    if (vm->state == VS_VM_PAUSED) {
        vm->state = VS_VM_RUNNING;
        clock_gettime(CLOCK_REALTIME, &vm->run_changed);
    }
    bool running = vm->state == VS_VM_RUNNING;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    if (running)
        devices_set_running(vm, true);
    return 0;
}

void vs_vm_block_resume(struct vs_vm *vm, const char *why)
{
    pthread_mutex_lock(&vm->lock);
    vm->resume_blocked = why;
    pthread_mutex_unlock(&vm->lock);
}

void vs_vm_mark_migrated(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->state = VS_VM_MIGRATED;
    vm->pause_requested = true;
    pthread_mutex_unlock(&vm->lock);
    for (unsigned i = 0; i < vm->nr_disks; i++)
        vs_virtio_blk_release(vm->disks[i]);   /* the other host owns the disks now */
}

void vs_vm_unmark_migrated(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state == VS_VM_MIGRATED)
        vm->state = VS_VM_PAUSED;
    pthread_mutex_unlock(&vm->lock);
}

int vs_vm_release_memory(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool migrated = vm->state == VS_VM_MIGRATED;
    pthread_mutex_unlock(&vm->lock);
    if (!migrated)
        return vs_fail(EPERM, "the VM's memory is released only once it has migrated "
                       "(it is %s here)", vs_vm_state_name(vm->state));
    return vs_memory_release(&vm->mem);
}

uint64_t vs_vm_vcpu_cpu_ns(struct vs_vm *vm)
{
    uint64_t ns = 0;
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        if (vm->vcpus[i].thread_started)
            ns += vs_thread_cpu_ns(vm->vcpus[i].thread);
    return ns;
}

bool vs_vm_is_running(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool running = vm->state == VS_VM_RUNNING;
    pthread_mutex_unlock(&vm->lock);
    return running;
}

void vs_vm_destroy(struct vs_vm *vm)
{
    if (!vm)
        return;
    vs_vm_throttle_release(vm);
    pthread_mutex_lock(&vm->lock);
    vm->quit_requested = true;
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vs_vcpu_kick(&vm->vcpus[i]);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        if (vm->vcpus[i].thread_started)
            pthread_join(vm->vcpus[i].thread, NULL);
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vs_vcpu_destroy(&vm->vcpus[i]);
    vs_dirty_ring_destroy(vm->ring);
    free(vm->vcpus);
    for (unsigned i = 0; i < vm->nr_nics; i++)   /* their threads write guest RAM */
        vs_virtio_net_free(vm->nics[i]);
    for (unsigned i = 0; i < vm->nr_disks; i++)
        vs_virtio_blk_free(vm->disks[i]);
    vs_virtio_rng_free(vm->rng);
    vs_memory_destroy(&vm->mem);
    vs_kvm_close(&vm->kvm);
    vs_serial_close(&vm->serial);
    vs_pvport_destroy(&vm->pvport);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}
