/* Integration: vCPU and machine state survive a save/load into a second, in-process VM
 * (the verify workload keeps checking every page generation afterwards), and hostile
 * blobs are refused with a message naming the offending section. Needs /dev/kvm. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/error.h"
#include "migrate/state/vstate.h"
#include "vmm/vm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1ULL << 20)
#define WAIT_S 60.0

/* Section tags (the table at the top of src/migrate/state/vstate.c). */
enum { TAG_CPUID = 1, TAG_REGS = 2 };

/* These tests never skip: no KVM is a failure. */
static void need_kvm(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fail_msg("cannot open /dev/kvm: %s; the vstate integration test needs KVM",
                 strerror(errno));
    close(fd);
}

static struct vs_vm *make_vm(bool incoming)
{
    struct vs_vm_config cfg = {
        .kvm_device = "/dev/kvm",
        .kernel = incoming ? NULL : VMSHIFT_GUEST,
        .boot = VS_BOOT_AUTO,
        .mem_size = 64 * MiB,
        .nr_vcpus = 2,
        .cmdline = "workload=verify start=0x400000 size=0x1000000 cpus=2 quiet=1",
        .serial = "none",
        .fill = VS_FILL_NONE,
        .fill_start = 0x400000,
        .seed = 1,
        .incoming = incoming,
    };
    struct vs_vm *vm = NULL;
    if (vs_vm_create(&vm, &cfg))
        fail_msg("vs_vm_create (incoming=%d): %s", incoming, vs_last_error());
    return vm;
}

/* Poll the pvport snapshot until each vCPU i has made want[i] passes, failing on a guest
 * failure, a page error or the timeout. */
static void wait_passes(struct vs_vm *vm, const uint64_t want[2], struct vs_pvport_view *view)
{
    uint64_t deadline = vs_clock_ns() + (uint64_t)(WAIT_S * 1e9);
    for (;;) {
        pthread_mutex_lock(&vm->lock);
        bool failed = vm->state == VS_VM_FAILED;
        pthread_mutex_unlock(&vm->lock);
        if (failed)
            fail_msg("the guest failed: %s", vm->failure);
        vs_pvport_view(&vm->pvport, view);
        const struct vs_cpu_counters *c = view->t.cpu;
        if (c[0].errors || c[1].errors)
            fail_msg("the guest found bad pages: errors %llu/%llu, first at 0x%llx/0x%llx",
                     (unsigned long long)c[0].errors, (unsigned long long)c[1].errors,
                     (unsigned long long)c[0].first_bad_addr,
                     (unsigned long long)c[1].first_bad_addr);
        if (c[0].passes >= want[0] && c[1].passes >= want[1])
            return;
        if (vs_clock_ns() > deadline)
            fail_msg("timed out after %.0f s: passes %llu/%llu, want %llu/%llu", WAIT_S,
                     (unsigned long long)c[0].passes, (unsigned long long)c[1].passes,
                     (unsigned long long)want[0], (unsigned long long)want[1]);
        vs_sleep_ns(20 * 1000 * 1000);
    }
}

/* Offset of the first section `tag` in a blob (its header), or fail. */
static size_t find_section(const struct vs_blob *b, uint32_t tag, uint32_t *len)
{
    size_t off = 0;
    while (off + 8 <= b->len) {
        uint32_t t, l;
        memcpy(&t, b->data + off, 4);
        memcpy(&l, b->data + off + 4, 4);
        if (t == tag) {
            *len = l;
            return off;
        }
        off += 8 + (((size_t)l + 7) & ~(size_t)7);
    }
    fail_msg("no section with tag %u in a %zu-byte blob", tag, b->len);
    return 0;
}

/* The first len bytes of b in a heap buffer of exactly len + extra bytes. */
static struct vs_blob copy_prefix(const struct vs_blob *b, size_t len, size_t extra)
{
    struct vs_blob c = { .data = malloc(len + extra), .len = len, .cap = len + extra };
    assert_non_null(c.data);
    memcpy(c.data, b->data, len);
    return c;
}

/* Offset of device `name`'s section in a machine blob (docs/device-state.md: a 40-byte
 * header, name first, length at 32). */
static size_t find_device(const struct vs_blob *b, const char *name)
{
    for (size_t off = 0; off + 40 <= b->len;) {
        uint32_t len;
        memcpy(&len, b->data + off + 32, 4);
        if (strcmp((const char *)b->data + off, name) == 0)
            return off;
        off += 40 + ((len + 7) & ~7u);
    }
    fail_msg("device %s is not in the machine blob", name);
    return 0;
}

static struct vs_blob copy_blob(const struct vs_blob *b, size_t extra)
{
    return copy_prefix(b, b->len, extra);
}

static void expect_load_error(struct vs_vcpu *v, const struct vs_blob *b, const char *what,
                              const char *needle)
{
    vs_clear_error();
    int rc = vs_vstate_load_vcpu(v, b->data, b->len);
    if (rc == 0)
        fail_msg("%s: load succeeded", what);
    if (!strstr(vs_last_error(), needle))
        fail_msg("%s: error \"%s\" does not mention \"%s\"", what, vs_last_error(), needle);
    printf("  %s -> %s\n", what, vs_last_error());
}

static void migrate_running_guest(void **state)
{
    (void)state;
    need_kvm();
    struct vs_vm *vm1 = make_vm(false);
    assert_int_equal(vs_vm_start(vm1), 0);
    struct vs_pvport_view v1;
    const uint64_t first[2] = { 2, 2 };
    wait_passes(vm1, first, &v1);

    /* a running vCPU cannot be saved */
    struct vs_blob vb[2] = { { 0 }, { 0 } }, mb = { 0 };
    assert_int_equal(vs_vstate_save_vcpu(&vm1->vcpus[0], &vb[0]), -EBUSY);
    assert_non_null(strstr(vs_last_error(), "pause the VM"));

    assert_int_equal(vs_vm_pause(vm1), 0);
    vs_pvport_view(&vm1->pvport, &v1);
    uint64_t clock_before = vs_pvport_clock_us(&vm1->pvport);
    for (unsigned i = 0; i < 2; i++)
        if (vs_vstate_save_vcpu(&vm1->vcpus[i], &vb[i]))
            fail_msg("save vCPU %u: %s", i, vs_last_error());
    if (vs_vstate_save_machine(vm1, &mb))
        fail_msg("save machine: %s", vs_last_error());
    printf("  blobs: vCPU0 %zu bytes, vCPU1 %zu bytes, machine %zu bytes\n", vb[0].len,
           vb[1].len, mb.len);
    /* the source still matches what it just saved */
    for (unsigned i = 0; i < 2; i++)
        if (vs_vstate_check_vcpu(&vm1->vcpus[i], vb[i].data, vb[i].len))
            fail_msg("check source vCPU %u: %s", i, vs_last_error());
    /* a vCPU that has run cannot take a state */
    assert_int_not_equal(vs_vstate_load_vcpu(&vm1->vcpus[0], vb[0].data, vb[0].len), 0);
    assert_non_null(strstr(vs_last_error(), "already run"));

    struct vs_vm *vm2 = make_vm(true);
    assert_int_equal(vm2->mem.size, vm1->mem.size);
    memcpy(vm2->mem.base, vm1->mem.base, vm1->mem.size);
    if (vs_vstate_load_machine(vm2, false, mb.data, mb.len))
        fail_msg("load machine: %s", vs_last_error());
    for (unsigned i = 0; i < 2; i++) {
        if (vs_vstate_load_vcpu(&vm2->vcpus[i], vb[i].data, vb[i].len))
            fail_msg("load vCPU %u: %s", i, vs_last_error());
        if (vs_vstate_check_vcpu(&vm2->vcpus[i], vb[i].data, vb[i].len))
            fail_msg("check vCPU %u: %s", i, vs_last_error());
    }
    struct vs_pvport_view v2;
    vs_pvport_view(&vm2->pvport, &v2);
    assert_true(v2.registered);
    assert_int_equal(v2.telemetry_gpa, v1.telemetry_gpa);
    assert_int_equal(v2.doorbells, v1.doorbells);
    assert_int_equal(v2.rate_override, v1.rate_override);
    assert_memory_equal(&v2.t, &v1.t, sizeof(v1.t));
    /* the guest clock continues from the saved value: it lost only the time between save
     * and load, so it lies between the value before the save and the source's clock now */
    uint64_t clock2 = vs_pvport_clock_us(&vm2->pvport);
    assert_true(clock2 >= clock_before);
    assert_true(clock2 <= vs_pvport_clock_us(&vm1->pvport));
    assert_int_equal(vm2->serial.lcr, vm1->serial.lcr);
    assert_int_equal(vm2->serial.bytes_out, vm1->serial.bytes_out);

    assert_int_equal(vs_vm_start(vm2), 0);
    const uint64_t more[2] = { v1.t.cpu[0].passes + 2, v1.t.cpu[1].passes + 2 };
    wait_passes(vm2, more, &v2);
    printf("  passes at pause %llu/%llu, after migration %llu/%llu, errors 0\n",
           (unsigned long long)v1.t.cpu[0].passes, (unsigned long long)v1.t.cpu[1].passes,
           (unsigned long long)v2.t.cpu[0].passes, (unsigned long long)v2.t.cpu[1].passes);

    vs_vm_destroy(vm2);
    vs_vm_destroy(vm1);
    vs_blob_free(&vb[0]);
    vs_blob_free(&vb[1]);
    vs_blob_free(&mb);
}

static void hostile_blobs_are_refused(void **state)
{
    (void)state;
    need_kvm();
    /* Neither VM runs: a skeleton's boot state is a valid state to save. */
    struct vs_vm *src = make_vm(true), *dst = make_vm(true);
    struct vs_vcpu *v = &dst->vcpus[1];
    struct vs_blob good = { 0 };
    if (vs_vstate_save_vcpu(&src->vcpus[1], &good))
        fail_msg("save: %s", vs_last_error());
    uint32_t regs_len = 0, cpuid_len = 0;
    size_t regs = find_section(&good, TAG_REGS, &regs_len);
    size_t cpuid = find_section(&good, TAG_CPUID, &cpuid_len);
    assert_int_equal(regs_len, sizeof(struct kvm_regs));
    assert_int_equal(cpuid, 0);

    /* Each hostile blob is an exact-size heap copy, so ASan catches any over-read. */
    struct vs_blob b = copy_prefix(&good, regs + 8 + 50, 0);
    expect_load_error(v, &b, "truncated", "REGS");
    vs_blob_free(&b);

    b = copy_blob(&good, 0);
    uint32_t huge = 0xfffffff0u;
    memcpy(b.data + regs + 4, &huge, 4);
    expect_load_error(v, &b, "length beyond the blob", "REGS");
    vs_blob_free(&b);

    b = copy_blob(&good, 0);
    uint32_t short_len = sizeof(struct kvm_regs) - 8;
    memcpy(b.data + regs + 4, &short_len, 4);
    expect_load_error(v, &b, "wrong REGS length", "REGS");
    vs_blob_free(&b);

    b = copy_blob(&good, 0);
    uint32_t unknown = 99;
    memcpy(b.data, &unknown, 4);
    expect_load_error(v, &b, "unknown tag", "tag 99");
    vs_blob_free(&b);

    b = copy_blob(&good, 8 + sizeof(struct kvm_regs));
    memcpy(b.data + b.len, good.data + regs, 8 + sizeof(struct kvm_regs));
    b.len += 8 + sizeof(struct kvm_regs);
    expect_load_error(v, &b, "duplicate REGS", "REGS");
    vs_blob_free(&b);

    size_t cpuid_end = 8 + (((size_t)cpuid_len + 7) & ~(size_t)7);
    struct vs_blob nocpuid = { .data = malloc(good.len - cpuid_end), .len = good.len - cpuid_end };
    assert_non_null(nocpuid.data);
    memcpy(nocpuid.data, good.data + cpuid_end, nocpuid.len);
    expect_load_error(v, &nocpuid, "missing CPUID", "CPUID");
    vs_blob_free(&nocpuid);

    /* machine blobs: a vCPU section in one, and a telemetry page outside RAM */
    struct vs_blob mb = { 0 };
    if (vs_vstate_save_machine(src, &mb))
        fail_msg("save machine: %s", vs_last_error());
    b = copy_blob(&mb, 8 + sizeof(struct kvm_regs));
    memcpy(b.data + b.len, good.data + regs, 8 + sizeof(struct kvm_regs));
    b.len += 8 + sizeof(struct kvm_regs);
    assert_int_not_equal(vs_vstate_load_machine(dst, false, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "device state"));
    printf("  vCPU section in the machine blob -> %s\n", vs_last_error());
    vs_blob_free(&b);
    b = copy_blob(&mb, 0);
    size_t pv = find_device(&b, "pvport");
    uint32_t one = 1;
    uint64_t bad_gpa = 64 * MiB;
    memcpy(b.data + pv + 40, &one, 4);                /* registered */
    memcpy(b.data + pv + 40 + 8, &bad_gpa, 8);        /* telemetry_gpa */
    assert_int_not_equal(vs_vstate_load_machine(dst, false, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "pvport"));
    printf("  bad telemetry page -> %s\n", vs_last_error());
    vs_blob_free(&b);
    vs_blob_free(&mb);

    /* None of that touched the vCPU: the real blob still loads and checks clean. */
    if (vs_vstate_load_vcpu(v, good.data, good.len))
        fail_msg("load after hostile blobs: %s", vs_last_error());
    if (vs_vstate_check_vcpu(v, good.data, good.len))
        fail_msg("check: %s", vs_last_error());

    /* check_vcpu notices a difference and names it */
    b = copy_blob(&good, 0);
    uint64_t rip;
    size_t rip_off = regs + 8 + offsetof(struct kvm_regs, rip);
    memcpy(&rip, b.data + rip_off, 8);
    rip += 0x10;
    memcpy(b.data + rip_off, &rip, 8);
    assert_int_not_equal(vs_vstate_check_vcpu(v, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "rip"));
    printf("  modified rip -> %s\n", vs_last_error());
    vs_blob_free(&b);

    vs_blob_free(&good);
    vs_vm_destroy(dst);
    vs_vm_destroy(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_blobs_are_refused),
        cmocka_unit_test(migrate_running_guest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
