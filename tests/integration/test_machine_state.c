/* Integration: a pc machine's interrupt controllers, PIT and LAPICs migrate (and a flat
 * machine stays flat). A VM with
 * the verify workload runs in this process; its PICs, IOAPIC, PIT and LAPICs are given
 * distinctive (masked, harmless) state; it migrates over loopback TCP through the real
 * source and destination engines; the destination's KVM then holds exactly the state
 * the source's KVM held when it stopped (read back with KVM_GET_IRQCHIP, _PIT2, _LAPIC,
 * _MP_STATE on both) — interrupt requests raised through a line and an irqfd included —
 * the end-to-end digest matched and the guest keeps running clean.
 * Needs /dev/kvm (fails without). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/error.h"
#include "migrate/precopy/dest.h"
#include "migrate/precopy/source.h"
#include "transport/tcp.h"
#include "vmm/vm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MiB (1ULL << 20)
#define WAIT_S 90.0
#define APIC_TPR 0x80
#define APIC_LDR 0xd0
#define APIC_LVT1 0x360
#define APIC_TMCCT 0x390
#define APIC_LVTT 0x320
#define LVTT_MASKED_TSC_DEADLINE ((1u << 16) | (2u << 17) | 0xef)
#define MSR_IA32_TSC 0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0

static uint64_t get_msr(int vcpu_fd, uint32_t index)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } m = { .hdr.nmsrs = 1, .e.index = index };
    if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) != 1)
        fail_msg("KVM_GET_MSRS 0x%x: %s", index, strerror(errno));
    return m.e.data;
}

static void set_msr(int vcpu_fd, uint32_t index, uint64_t data)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } m = { .hdr.nmsrs = 1, .e.index = index, .e.data = data };
    if (ioctl(vcpu_fd, KVM_SET_MSRS, &m) != 1)
        fail_msg("KVM_SET_MSRS 0x%x: %s", index, strerror(errno));
}

static struct vs_vm *make_vm(enum vs_machine machine)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fail_msg("cannot open /dev/kvm: %s; this test needs KVM", strerror(errno));
    close(fd);
    struct vs_vm_config cfg = {
        .machine = machine, .kvm_device = "/dev/kvm", .kernel = VMSHIFT_GUEST,
        .boot = VS_BOOT_AUTO, .mem_size = 32 * MiB, .nr_vcpus = 2,
        .cmdline = "workload=verify start=0x400000 size=0x800000 cpus=2 quiet=1",
        .serial = "none", .fill_start = 0x400000, .seed = 3,
    };
    struct vs_vm *vm = NULL;
    if (vs_vm_create(&vm, &cfg))
        fail_msg("vs_vm_create: %s", vs_last_error());
    return vm;
}

/* Wait until every vCPU of vm has made `more` verify passes beyond what it had. */
static void wait_more_passes(struct vs_vm *vm, uint64_t more)
{
    struct vs_pvport_view v;
    vs_pvport_view(&vm->pvport, &v);
    uint64_t want[2] = { v.t.cpu[0].passes + more, v.t.cpu[1].passes + more };
    uint64_t deadline = vs_clock_ns() + (uint64_t)(WAIT_S * 1e9);
    for (;;) {
        if (vm->state == VS_VM_FAILED)
            fail_msg("the guest failed: %s", vm->failure);
        vs_pvport_view(&vm->pvport, &v);
        if (v.t.cpu[0].errors || v.t.cpu[1].errors)
            fail_msg("the guest found bad pages (first at 0x%llx)",
                     (unsigned long long)v.t.cpu[0].first_bad_addr);
        if (v.t.cpu[0].passes >= want[0] && v.t.cpu[1].passes >= want[1])
            return;
        if (vs_clock_ns() > deadline)
            fail_msg("timed out: passes %llu/%llu, want %llu/%llu",
                     (unsigned long long)v.t.cpu[0].passes, (unsigned long long)v.t.cpu[1].passes,
                     (unsigned long long)want[0], (unsigned long long)want[1]);
        vs_sleep_ns(20 * 1000 * 1000);
    }
}

static void vm_ioctl(int fd, unsigned long req, void *arg, const char *what)
{
    if (ioctl(fd, req, arg) < 0)
        fail_msg("%s: %s", what, strerror(errno));
}

static struct kvm_irqchip get_chip(struct vs_vm *vm, uint32_t id)
{
    struct kvm_irqchip c;
    memset(&c, 0, sizeof(c));
    c.chip_id = id;
    vm_ioctl(vm->kvm.vm_fd, KVM_GET_IRQCHIP, &c, "KVM_GET_IRQCHIP");
    return c;
}

static uint32_t lapic_reg(const struct kvm_lapic_state *l, unsigned off)
{
    uint32_t v;
    memcpy(&v, l->regs + off, 4);
    return v;
}

static void set_lapic_reg(struct kvm_lapic_state *l, unsigned off, uint32_t v)
{
    memcpy(l->regs + off, &v, 4);
}

/* Distinctive state everywhere, all of it masked so that no interrupt reaches the guest
 * (it has no handlers): PIC bases and masks, IOAPIC pins, PIT channel 2, LAPIC TPR,
 * logical ID, LINT1 and a masked TSC-deadline timer armed far in the future. */
static void mark_state(struct vs_vm *vm)
{
    for (uint32_t id = 0; id < 2; id++) {
        struct kvm_irqchip c = get_chip(vm, id);
        c.chip.pic.imr = 0xff;
        c.chip.pic.irq_base = (uint8_t)(0x20 + 8 * id);
        c.chip.pic.special_fully_nested_mode = (uint8_t)id;
        vm_ioctl(vm->kvm.vm_fd, KVM_SET_IRQCHIP, &c, "KVM_SET_IRQCHIP (PIC)");
    }
    struct kvm_irqchip io = get_chip(vm, KVM_IRQCHIP_IOAPIC);
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        io.chip.ioapic.redirtbl[i].bits = (1ULL << 16) | (0x40 + i) | ((uint64_t)i << 56);
    io.chip.ioapic.ioregsel = 0x12;
    vm_ioctl(vm->kvm.vm_fd, KVM_SET_IRQCHIP, &io, "KVM_SET_IRQCHIP (IOAPIC)");
    struct kvm_pit_state2 pit;
    memset(&pit, 0, sizeof(pit));
    vm_ioctl(vm->kvm.vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
    pit.channels[2].count = 0x1234;
    pit.channels[2].mode = 0;
    pit.channels[2].rw_mode = 3;
    pit.channels[2].gate = 0;
    vm_ioctl(vm->kvm.vm_fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2");

    assert_int_equal(vs_vm_pause(vm), 0);
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        struct kvm_lapic_state l;
        vm_ioctl(vm->vcpus[i].fd, KVM_GET_LAPIC, &l, "KVM_GET_LAPIC");
        set_lapic_reg(&l, APIC_TPR, 0x20 + i);
        set_lapic_reg(&l, APIC_LDR, 1u << (24 + i));
        set_lapic_reg(&l, APIC_LVT1, (1u << 16) | (0x51 + i));
        set_lapic_reg(&l, APIC_LVTT, LVTT_MASKED_TSC_DEADLINE);   /* armed far ahead below */
        vm_ioctl(vm->vcpus[i].fd, KVM_SET_LAPIC, &l, "KVM_SET_LAPIC");
        uint64_t tsc = get_msr(vm->vcpus[i].fd, MSR_IA32_TSC);
        set_msr(vm->vcpus[i].fd, MSR_IA32_TSC_DEADLINE, tsc + (1ULL << 50) + i);
    }
    assert_int_equal(vs_vm_resume(vm), 0);
}

/* Devices' interrupts reach the controllers: a level held high on GSI 7 (no device's) through a line
 * (KVM_IRQ_LINE) and an edge on GSI 3 through an irqfd leave their marks in the (masked)
 * PIC's and IOAPIC's request registers, which must migrate too. Returns the irqfd. */
static int raise_lines(struct vs_vm *vm)
{
    struct vs_irq_line line;
    if (vs_irqchip_line(&vm->irqchip, VS_IRQCHIP_MAX_GSI + 1, &line) == 0)
        fail_msg("a line beyond the IOAPIC's pins was accepted");
    assert_non_null(strstr(vs_last_error(), "GSI 24"));
    assert_int_equal(vs_irqchip_line(&vm->irqchip, 7, &line), 0);
    vs_irq_set_level(&line, true);
    int efd;
    if (vs_irqchip_irqfd(&vm->irqchip, 3, &efd))
        fail_msg("vs_irqchip_irqfd: %s", vs_last_error());
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof(one)), (ssize_t)sizeof(one));
    for (int i = 0; i < 200; i++) {     /* KVM injects an irqfd's edge asynchronously */
        struct kvm_irqchip pic = get_chip(vm, KVM_IRQCHIP_PIC_MASTER);
        if (pic.chip.pic.irr & (1u << 3))
            break;
        vs_sleep_ns(5 * 1000 * 1000);
    }
    struct kvm_irqchip pic = get_chip(vm, KVM_IRQCHIP_PIC_MASTER);
    struct kvm_irqchip io = get_chip(vm, KVM_IRQCHIP_IOAPIC);
    assert_int_equal(pic.chip.pic.irr & 0x88, 0x88);
    assert_int_equal(io.chip.ioapic.irr & (1u << 7), 1u << 7);
    return efd;
}

struct receiver {
    struct vs_tcp_listener *l;
    struct vs_vm *vm;
    struct vs_migration_stats stats;
    int rc;
    char error[512];
};

static void *receive_thread(void *arg)
{
    struct receiver *r = arg;
    struct vs_channel *ch;
    r->rc = vs_tcp_accept(r->l, 30000, &ch);
    if (r->rc) {
        snprintf(r->error, sizeof(r->error), "%s", vs_last_error());
        return NULL;
    }
    struct vs_incoming_opts o = { .kvm_device = "/dev/kvm", .serial = "none",
                                  .timeout_ms = 30000, .handshake_timeout_ms = 10000,
                                  .security = "insecure" };
    struct vs_incoming_session session;
    memset(&session, 0, sizeof(session));
    r->rc = vs_incoming_run(ch, &o, &r->vm, &r->stats, &session);
    if (r->rc < 0)
        snprintf(r->error, sizeof(r->error), "%s", vs_last_error());
    vs_channel_close(ch);
    return NULL;
}

static void migrate(struct vs_vm *src, struct receiver *r, struct vs_migration_stats *ss)
{
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &r->l), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, receive_thread, r), 0);
    struct vs_migration_opts o;
    vs_migration_default_opts(&o);
    snprintf(o.to, sizeof(o.to), "127.0.0.1:%d", vs_tcp_listener_port(r->l));
    o.streams = 1;
    o.timeout_ms = 30000;
    o.security.insecure = true;
    assert_int_equal(vs_security_finish(&o.security, true), 0);
    struct vs_migration *m;
    if (vs_migration_start(&m, src, &o))
        fail_msg("vs_migration_start: %s", vs_last_error());
    bool done = false;
    while (!done) {
        vs_sleep_ns(50 * 1000 * 1000);
        vs_migration_stats(m, ss, &done);
    }
    vs_migration_free(m);
    pthread_join(t, NULL);
    vs_tcp_listener_close(r->l);
    if (strcmp(ss->status, "completed") != 0)
        fail_msg("the migration ended %s: %s (destination: %s)", ss->status, ss->error,
                 r->error);
    if (r->rc != VS_INCOMING_RUNNING || !r->vm)
        fail_msg("the destination returned %d: %s", r->rc, r->error);
}

static void pit_equal(const struct kvm_pit_state2 *a, const struct kvm_pit_state2 *b)
{
    assert_int_equal(a->flags, b->flags);
    for (unsigned i = 0; i < 3; i++) {
        const struct kvm_pit_channel_state *x = &a->channels[i], *y = &b->channels[i];
        /* count_load_time is the host time the count was loaded: it moves with KVM_SET */
        assert_int_equal(x->count, y->count);
        assert_int_equal(x->latched_count, y->latched_count);
        assert_int_equal(x->count_latched, y->count_latched);
        assert_int_equal(x->status_latched, y->status_latched);
        assert_int_equal(x->status, y->status);
        assert_int_equal(x->read_state, y->read_state);
        assert_int_equal(x->write_state, y->write_state);
        assert_int_equal(x->write_latch, y->write_latch);
        assert_int_equal(x->rw_mode, y->rw_mode);
        assert_int_equal(x->mode, y->mode);
        assert_int_equal(x->bcd, y->bcd);
        assert_int_equal(x->gate, y->gate);
    }
}

/* The destination's controllers hold what the source's held when it stopped. */
static void compare_machines(struct vs_vm *src, struct vs_vm *dst)
{
    for (uint32_t id = 0; id < 3; id++) {
        struct kvm_irqchip a = get_chip(src, id), b = get_chip(dst, id);
        if (memcmp(&a.chip, &b.chip, sizeof(a.chip)) != 0)
            fail_msg("irqchip %u (%s) differs after migration", id,
                     id == KVM_IRQCHIP_IOAPIC ? "IOAPIC" : "PIC");
    }
    struct kvm_irqchip pic0 = get_chip(dst, KVM_IRQCHIP_PIC_MASTER);
    assert_int_equal(pic0.chip.pic.irr & 0x88, 0x88);      /* GSI 3 (irqfd) and 7 (line) */
    struct kvm_irqchip pic1 = get_chip(dst, KVM_IRQCHIP_PIC_SLAVE);
    assert_int_equal(pic1.chip.pic.irq_base, 0x28);
    assert_int_equal(pic1.chip.pic.imr, 0xff);
    struct kvm_irqchip io = get_chip(dst, KVM_IRQCHIP_IOAPIC);
    assert_int_equal(io.chip.ioapic.redirtbl[5].bits, (1ULL << 16) | 0x45 | (5ULL << 56));
    assert_int_equal(io.chip.ioapic.ioregsel, 0x12);
    assert_int_equal(io.chip.ioapic.irr & (1u << 7), 1u << 7);
    struct kvm_pit_state2 pa, pb;
    memset(&pa, 0, sizeof(pa));
    memset(&pb, 0, sizeof(pb));
    vm_ioctl(src->kvm.vm_fd, KVM_GET_PIT2, &pa, "KVM_GET_PIT2 (source)");
    vm_ioctl(dst->kvm.vm_fd, KVM_GET_PIT2, &pb, "KVM_GET_PIT2 (destination)");
    pit_equal(&pa, &pb);
    assert_int_equal(pb.channels[2].count, 0x1234);

    assert_int_equal(vs_vm_pause(dst), 0);
    for (unsigned i = 0; i < src->nr_vcpus; i++) {
        struct kvm_lapic_state a, b;
        vm_ioctl(src->vcpus[i].fd, KVM_GET_LAPIC, &a, "KVM_GET_LAPIC (source)");
        vm_ioctl(dst->vcpus[i].fd, KVM_GET_LAPIC, &b, "KVM_GET_LAPIC (destination)");
        set_lapic_reg(&a, APIC_TMCCT, 0);   /* the timer's current count runs on */
        set_lapic_reg(&b, APIC_TMCCT, 0);
        for (unsigned off = 0; off < sizeof(a.regs); off += 16)
            if (lapic_reg(&a, off) != lapic_reg(&b, off))
                fail_msg("vCPU %u LAPIC register 0x%x: source 0x%x, destination 0x%x", i, off,
                         lapic_reg(&a, off), lapic_reg(&b, off));
        assert_int_equal(lapic_reg(&b, APIC_TPR), 0x20 + i);
        assert_int_equal(lapic_reg(&b, APIC_LVT1), (1u << 16) | (0x51 + i));
        assert_int_equal(lapic_reg(&b, APIC_LVTT), LVTT_MASKED_TSC_DEADLINE);
        uint64_t da = get_msr(src->vcpus[i].fd, MSR_IA32_TSC_DEADLINE);
        uint64_t db = get_msr(dst->vcpus[i].fd, MSR_IA32_TSC_DEADLINE);
        assert_true(da > (1ULL << 50));
        assert_int_equal(da, db);
        struct kvm_mp_state ma, mb;
        vm_ioctl(src->vcpus[i].fd, KVM_GET_MP_STATE, &ma, "KVM_GET_MP_STATE (source)");
        vm_ioctl(dst->vcpus[i].fd, KVM_GET_MP_STATE, &mb, "KVM_GET_MP_STATE (destination)");
        assert_int_equal(ma.mp_state, mb.mp_state);
    }
    assert_int_equal(vs_vm_resume(dst), 0);
}

static void report_sizes(const struct vs_vm *vm, const struct vs_migration_stats *src,
                         const struct vs_migration_stats *dst)
{
    printf("  device state (%u sections, %llu bytes):", vm->devices.count,
           (unsigned long long)src->device_state_bytes);
    for (unsigned i = 0; i < vm->devices.count; i++)
        printf(" %s%u=%zu", vm->devices.e[i].desc->name, vm->devices.e[i].instance,
               vs_vmstate_section_size(vm->devices.e[i].desc));
    printf("\n  LAPIC %zu bytes per vCPU; save %.1f us (source), load %.1f us (destination)\n",
           sizeof(struct kvm_lapic_state), (double)src->device_state_save_ns / 1e3,
           (double)dst->device_state_load_ns / 1e3);
}

static void pc_machine_state_migrates(void **state)
{
    (void)state;
    struct vs_vm *src = make_vm(VS_MACHINE_PC);
    assert_int_equal(vs_vm_start(src), 0);
    wait_more_passes(src, 1);
    mark_state(src);
    int efd = raise_lines(src);
    wait_more_passes(src, 1);   /* the guest runs on with the marked state */

    struct receiver r;
    memset(&r, 0, sizeof(r));
    struct vs_migration_stats ss;
    uint64_t before = vs_clock_ns();
    migrate(src, &r, &ss);
    /* The KVM clock continues from the value saved while the source was paused: not
     * behind it, and ahead by no more than the time since (no jump). */
    struct kvm_clock_data now;
    memset(&now, 0, sizeof(now));
    vm_ioctl(r.vm->kvm.vm_fd, KVM_GET_CLOCK, &now, "KVM_GET_CLOCK (destination)");
    uint64_t saved = src->kvmclock.rec.clock;
    assert_true(saved > 0);
    assert_true(now.clock >= saved);
    assert_true(now.clock - saved <= vs_clock_ns() - before);
    assert_int_equal(r.vm->machine, VS_MACHINE_PC);
    assert_int_equal(ss.ram_digest, r.stats.ram_digest);
    assert_true(ss.device_state_bytes > 0);
    assert_int_equal(ss.device_state_bytes, r.stats.device_state_bytes);
    report_sizes(src, &ss, &r.stats);

    compare_machines(src, r.vm);
    wait_more_passes(r.vm, 2);   /* clean passes on the destination */
    assert_int_equal(vs_irqchip_irqfd_release(&src->irqchip, 3, efd), 0);
    vs_vm_destroy(r.vm);
    vs_vm_destroy(src);
}

/* A flat machine (no irqchip) from a 2.3 source arrives as a flat machine: HELLO says so,
 * the destination registers only pvport, serial and kvmclock, and the guest runs on. */
static void flat_machine_stays_flat(void **state)
{
    (void)state;
    struct vs_vm *src = make_vm(VS_MACHINE_FLAT);
    assert_int_equal(src->irqchip.vm_fd, -1);
    assert_int_equal(src->devices.count, 3);
    assert_int_equal(vs_vm_start(src), 0);
    wait_more_passes(src, 1);
    struct receiver r;
    memset(&r, 0, sizeof(r));
    struct vs_migration_stats ss;
    migrate(src, &r, &ss);
    assert_int_equal(r.vm->machine, VS_MACHINE_FLAT);
    assert_int_equal(r.vm->irqchip.vm_fd, -1);
    assert_int_equal(r.vm->devices.count, 3);
    assert_int_equal(ss.device_state_bytes, 2360);   /* serial version 2: 48 bytes */
    assert_int_equal(ss.ram_digest, r.stats.ram_digest);
    wait_more_passes(r.vm, 2);
    vs_vm_destroy(r.vm);
    vs_vm_destroy(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pc_machine_state_migrates),
        cmocka_unit_test(flat_machine_stays_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
