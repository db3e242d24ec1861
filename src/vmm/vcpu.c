#include "vmm/vcpu.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "vmm/bus.h"
#include "vmm/dirty_ring.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define VS_KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
    (void)sig; /* its only job is to interrupt KVM_RUN */
}

int vs_vcpu_init_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    if (sigaction(VS_KICK_SIGNAL, &sa, NULL) < 0)
        return vs_fail(errno, "cannot install the vCPU kick signal handler: %s", strerror(errno));
    return 0;
}

void vs_vcpu_personalise_cpuid(struct kvm_cpuid2 *c, unsigned index)
{
    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == 1)
            e->ebx = (e->ebx & 0x00ffffff) | (index << 24);
        else if (e->function == 0xb || e->function == 0x1f)
            e->edx = index;
    }
}

/* Find the "blocking" statistic among the vCPU's binary stats (KVM_GET_STATS_FD). Only
 * the status report uses it: without it, a halted pc vCPU reads as running. */
static void open_stats(struct vs_vcpu *v)
{
    if (v->vm->machine != VS_MACHINE_PC ||
        ioctl(v->vm->kvm.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0)
        return;
    int fd = ioctl(v->fd, KVM_GET_STATS_FD, 0);
    struct kvm_stats_header h;
    if (fd < 0 || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.name_size > 4096) {
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t dsize = sizeof(struct kvm_stats_desc) + h.name_size;
    uint8_t *descs = calloc(h.num_desc, dsize);
    if (descs && pread(fd, descs, dsize * h.num_desc, h.desc_offset) == (ssize_t)(dsize * h.num_desc))
        for (uint32_t i = 0; i < h.num_desc; i++) {
            const struct kvm_stats_desc *d = (const void *)(descs + i * dsize);
            if (strncmp(d->name, "blocking", h.name_size) == 0 && d->size == 1)
                v->blocking_at = h.data_offset + d->offset;
        }
    free(descs);
    if (v->blocking_at)
        v->stats_fd = fd;
    else
        close(fd);
}

bool vs_vcpu_halted_in_kernel(const struct vs_vcpu *v)
{
    uint64_t blocking = 0;
    return v->stats_fd >= 0 &&
           pread(v->stats_fd, &blocking, sizeof(blocking), (off_t)v->blocking_at) ==
               (ssize_t)sizeof(blocking) &&
           blocking != 0;
}

int vs_vcpu_create(struct vs_vcpu *v, uint64_t cr3)
{
    struct vs_vm *vm = v->vm;
    int rc = vs_kvm_create_vcpu(&vm->kvm, v->index, &v->fd);
    if (rc)
        return rc;
    v->run = mmap(NULL, (size_t)vm->kvm.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        return vs_fail(errno, "cannot map kvm_run of vCPU %u: %s", v->index, strerror(errno));
    }
    size_t csize = sizeof(struct kvm_cpuid2) + vm->kvm.cpuid->nent * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = malloc(csize);
    if (!cpuid)
        return vs_fail(ENOMEM, "out of memory for vCPU %u CPUID", v->index);
    memcpy(cpuid, vm->kvm.cpuid, csize);
    vs_vcpu_personalise_cpuid(cpuid, v->index);
    rc = ioctl(v->fd, KVM_SET_CPUID2, cpuid);
    int err = errno;
    free(cpuid);
    if (rc < 0)
        return vs_fail(err, "KVM_SET_CPUID2 on vCPU %u: %s", v->index, strerror(err));

    struct kvm_sregs sregs;
    struct kvm_regs regs;
    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
        return vs_fail(errno, "KVM_GET_SREGS on vCPU %u: %s", v->index, strerror(errno));
    vs_boot_initial_state(&vm->boot, v->index, cr3, &sregs, &regs);
    if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
        return vs_fail(errno, "KVM_SET_SREGS on vCPU %u (boot mode %s): %s", v->index,
                       vs_boot_mode_name(vm->boot.mode), strerror(errno));
    if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
        return vs_fail(errno, "KVM_SET_REGS on vCPU %u: %s", v->index, strerror(errno));
    struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
    if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
        return vs_fail(errno, "KVM_SET_FPU on vCPU %u: %s", v->index, strerror(errno));
    open_stats(v);
    return 0;
}

int vs_vcpu_set_mp_state(struct vs_vcpu *v, uint32_t mp_state)
{
    struct kvm_mp_state mp = { .mp_state = mp_state };
    if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
        return vs_fail(errno, "KVM_SET_MP_STATE %u on vCPU %u: %s", mp_state, v->index,
                       strerror(errno));
    return 0;
}

void vs_vcpu_destroy(struct vs_vcpu *v)
{
    if (v->run)
        munmap(v->run, (size_t)v->vm->kvm.vcpu_mmap_size);
    if (v->fd >= 0)
        close(v->fd);
    if (v->stats_fd >= 0)
        close(v->stats_fd);
    v->stats_fd = -1;
    v->run = NULL;
    v->fd = -1;
}

void vs_vcpu_kick(struct vs_vcpu *v)
{
    if (!v->run || !v->thread_started)
        return;
    v->run->immediate_exit = 1;
    pthread_kill(v->thread, VS_KICK_SIGNAL);
}

/* Park until the vCPU may run; returns false when the thread must end. */
static bool wait_until_runnable(struct vs_vcpu *v)
{
    struct vs_vm *vm = v->vm;
    pthread_mutex_lock(&vm->lock);
    while (!vm->quit_requested && (vm->pause_requested || v->halted || v->stopped)) {
        if (!v->parked) {
            v->parked = true;
            pthread_cond_broadcast(&vm->cond);
        }
        pthread_cond_wait(&vm->cond, &vm->lock);
    }
    bool run = !vm->quit_requested;
    v->parked = !run;
    if (run)
        v->run->immediate_exit = 0; /* a kick after this point sets it again */
    else
        pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return run;
}

void vs_vcpu_stall_ns(struct vs_vcpu *v, uint64_t ns, atomic_bool *while_set)
{
    struct vs_vm *vm = v->vm;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    ns += (uint64_t)deadline.tv_nsec;
    deadline.tv_sec += (time_t)(ns / 1000000000ULL);
    deadline.tv_nsec = (long)(ns % 1000000000ULL);
    pthread_mutex_lock(&vm->lock);
    while (!vm->pause_requested && !vm->quit_requested && (!while_set || atomic_load(while_set)) &&
           pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline) == 0)
        ;
    pthread_mutex_unlock(&vm->lock);
}

/* One access through the bus; a device may ask that this vCPU stall afterwards (pvport
 * SLEEP). */
static void bus_access(struct vs_vcpu *v, enum vs_bus_space space, uint64_t addr, uint8_t *data,
                       unsigned size, bool is_write)
{
    struct vs_bus_io io = { .data = data, .size = size, .is_write = is_write,
                            .vcpu = v->index };
    vs_bus_dispatch(&v->vm->bus, space, addr, &io);
    if (io.stall_us)
        vs_vcpu_stall_ns(v, io.stall_us * 1000, NULL);
}

static void handle_io(struct vs_vcpu *v)
{
    struct kvm_run *run = v->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
        bus_access(v, VS_BUS_PIO, run->io.port, data, run->io.size, is_write);
}

static void handle_mmio(struct vs_vcpu *v)
{
    struct kvm_run *run = v->run;
    unsigned len = run->mmio.len <= sizeof(run->mmio.data) ? run->mmio.len
                                                            : (unsigned)sizeof(run->mmio.data);
    bus_access(v, VS_BUS_MMIO, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
}

static void fail_vcpu(struct vs_vcpu *v, const char *what)
{
    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    ioctl(v->fd, KVM_GET_REGS, &regs);
    vs_vm_fail(v->vm, "vCPU %u stopped: %s (rip=0x%llx rsp=0x%llx)", v->index, what,
               (unsigned long long)regs.rip, (unsigned long long)regs.rsp);
    pthread_mutex_lock(&v->vm->lock);
    v->stopped = true;
    pthread_mutex_unlock(&v->vm->lock);
}

void *vs_vcpu_thread(void *arg)
{
    struct vs_vcpu *v = arg;
    char why[96];
    while (wait_until_runnable(v)) {
        vs_vcpu_throttle_point(v);
        int r = ioctl(v->fd, KVM_RUN, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue; /* kicked */
            snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(errno));
            fail_vcpu(v, why);
            continue;
        }
        v->exits++;
        switch (v->run->exit_reason) {
        case KVM_EXIT_IO:
            handle_io(v);
            break;
        case KVM_EXIT_HLT:
            pthread_mutex_lock(&v->vm->lock);
            v->halted = true;
            pthread_cond_broadcast(&v->vm->cond);
            pthread_mutex_unlock(&v->vm->lock);
            break;
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_DIRTY_RING_FULL:
            /* The ring must have room before the vCPU can run again. */
            if (!v->vm->ring || vs_dirty_ring_harvest_vcpu(v->vm->ring, v->index, true))
                fail_vcpu(v, v->vm->ring ? vs_last_error() : "dirty ring full without a ring");
            break;
        case KVM_EXIT_MMIO:
            handle_mmio(v);
            break;
        case KVM_EXIT_SHUTDOWN:
            fail_vcpu(v, "the guest shut down (triple fault)");
            break;
        case KVM_EXIT_FAIL_ENTRY:
            snprintf(why, sizeof(why), "entry failed, hardware reason 0x%llx",
                     (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
            fail_vcpu(v, why);
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            snprintf(why, sizeof(why), "KVM internal error, suberror %u",
                     v->run->internal.suberror);
            fail_vcpu(v, why);
            break;
        default:
            snprintf(why, sizeof(why), "unhandled exit reason %u", v->run->exit_reason);
            fail_vcpu(v, why);
            break;
        }
    }
    return NULL;
}
