/* Unit tests: page tables and initial vCPU state for both boot protocols (src/vmm/boot.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/boot.h"
#include "page_walk.h"
#include "vmshift/guest_abi.h"


static void page_tables_identity_map_all_ram(void **state)
{
    (void)state;
    const uint64_t ram_size = 3ULL << 30; /* 3 GiB: three page directories */
    uint8_t *ram = calloc(1, VS_BOOT_PT_END);
    assert_non_null(ram);
    uint64_t cr3 = vs_boot_build_page_tables(ram, ram_size);
    assert_int_equal(cr3, VS_BOOT_PT_ADDR);
    const uint64_t probes[] = { 0, 0x1000, 0x100000, 0x3fffff, 1ULL << 30, ram_size - 8 };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        int ok;
        assert_int_equal(page_walk(ram, cr3, probes[i], &ok, NULL), probes[i]);
        assert_true(ok);
    }
    int ok;
    page_walk(ram, cr3, 4ULL << 30, &ok, NULL); /* beyond the rounded-up RAM: unmapped */
    assert_false(ok);
    free(ram);
}

static void page_tables_refuse_too_much_ram(void **state)
{
    (void)state;
    uint8_t *ram = calloc(1, VS_BOOT_PT_END);
    assert_non_null(ram);
    assert_int_equal(vs_boot_build_page_tables(ram, 1ULL << 40), 0);
    assert_int_not_equal(vs_boot_build_page_tables(ram, 64ULL << 30), 0);
    free(ram);
}

static void long_mode_state(void **state)
{
    (void)state;
    struct vs_boot_entry e = { VS_BOOT_LONG, 0x100123 };
    struct kvm_sregs s;
    struct kvm_regs r;
    memset(&s, 0, sizeof(s));
    vs_boot_initial_state(&e, 3, VS_BOOT_PT_ADDR, &s, &r);
    assert_int_equal(r.rip, 0x100123);
    assert_int_equal(r.rsi, 3);
    assert_int_equal(r.rdi, VS_BOOT_INFO_ADDR);
    assert_int_equal(r.rsp, VS_BOOT_STACKS_ADDR + 4 * VS_BOOT_STACK_SIZE);
    assert_int_equal(s.cr3, VS_BOOT_PT_ADDR);
    assert_true(s.cr0 & 0x80000001ULL);         /* PG and PE */
    assert_true(s.cr4 & 0x20);                   /* PAE */
    assert_int_equal(s.efer & 0x500, 0x500);     /* LME and LMA */
    assert_int_equal(s.cs.l, 1);
    assert_int_equal(s.cs.db, 0);
    assert_int_equal(s.ss.present, 1);
}

static void pvh_state(void **state)
{
    (void)state;
    struct vs_boot_entry e = { VS_BOOT_PVH, 0x100010 };
    struct kvm_sregs s;
    struct kvm_regs r;
    memset(&s, 0, sizeof(s));
    vs_boot_initial_state(&e, 0, 0, &s, &r);
    assert_int_equal(r.rip, 0x100010);
    assert_int_equal(r.rbx, VS_BOOT_INFO_ADDR);
    assert_int_equal(s.cr0 & 0x80000001ULL, 1);  /* protected mode, paging off */
    assert_int_equal(s.efer, 0);
    assert_int_equal(s.cs.l, 0);
    assert_int_equal(s.cs.db, 1);
    assert_int_equal(s.cs.limit, 0xffffffff);
}

static void parses_modes(void **state)
{
    (void)state;
    enum vs_boot_mode m;
    assert_int_equal(vs_boot_parse_mode("pvh", &m), 0);
    assert_int_equal(m, VS_BOOT_PVH);
    assert_int_equal(vs_boot_parse_mode("long", &m), 0);
    assert_int_equal(m, VS_BOOT_LONG);
    assert_true(vs_boot_parse_mode("bios", &m) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(page_tables_identity_map_all_ram),
        cmocka_unit_test(page_tables_refuse_too_much_ram),
        cmocka_unit_test(long_mode_state),
        cmocka_unit_test(pvh_state),
        cmocka_unit_test(parses_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
