/* Unit tests for the guest's MP table reader (guest/mp.c), built hosted and fed the
 * table the monitor writes (src/vmm/mptable.c) and damaged copies of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mp.h"
#include "vmm/mptable.h"

#define AREA 0x10000u                   /* the BIOS area 0xF0000-0xFFFFF */

static uint8_t area[AREA] __attribute__((aligned(16)));

static void fix_checksum(uint8_t *p, size_t n, uint8_t *field)
{
    uint8_t s = 0;
    *field = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    *field = (uint8_t)(0x100 - s);
}

/* The monitor's table for nr_vcpus at offset off of the area; returns its header. */
static struct vs_mp_config *write_table(unsigned nr_vcpus, uint32_t off)
{
    memset(area, 0, sizeof(area));
    assert_int_equal(vs_mptable_build(area + off, AREA - off, VS_MP_SCAN_START + off, nr_vcpus), 0);
    return (struct vs_mp_config *)(area + off + sizeof(struct vs_mp_floating));
}

static const struct vs_mp_config *find_config(void)
{
    const struct vs_mp_floating *fp = vs_mp_find(area, AREA);
    assert_non_null(fp);
    assert_true(fp->config_paddr >= VS_MP_SCAN_START && fp->config_paddr < VS_MP_SCAN_END);
    return (const struct vs_mp_config *)(area + (fp->config_paddr - VS_MP_SCAN_START));
}

static void parse_ok(const struct vs_mp_config *cfg, struct vs_mp_info *mp)
{
    const char *why = "unset";
    uint32_t avail = AREA - (uint32_t)((const uint8_t *)cfg - area);
    assert_int_equal(vs_mp_parse(cfg, avail, mp, &why), 0);
}

static void parse_bad(const struct vs_mp_config *cfg, uint32_t avail, const char *needle)
{
    struct vs_mp_info mp;
    const char *why = "";
    assert_int_equal(vs_mp_parse(cfg, avail, &mp, &why), -1);
    assert_non_null(strstr(why, needle));
}

static void reads_what_the_monitor_writes(void **state)
{
    (void)state;
    unsigned counts[] = { 1, 4, 32 };
    for (unsigned k = 0; k < 3; k++) {
        struct vs_mp_info mp;
        write_table(counts[k], 0);
        parse_ok(find_config(), &mp);
        assert_int_equal(mp.from_table, 1);
        assert_int_equal(mp.lapic_paddr, 0xFEE00000u);
        assert_int_equal(mp.ioapic_paddr, 0xFEC00000u);
        assert_int_equal(mp.ioapic_id, counts[k]);
        assert_int_equal(mp.nr_cpus, counts[k]);
        assert_int_equal(mp.bsp_lapic_id, 0);
        assert_int_equal(mp.isa_pin[0], 2);
        assert_int_equal(mp.isa_pin[2], VS_MP_NO_PIN);
        for (unsigned irq = 1; irq < 16; irq++)
            if (irq != 2)
                assert_int_equal(mp.isa_pin[irq], irq);
    }
}

static void defaults_are_the_pc_wiring(void **state)
{
    (void)state;
    struct vs_mp_info mp;
    memset(&mp, 0xab, sizeof(mp));
    vs_mp_defaults(&mp);
    assert_int_equal(mp.from_table, 0);
    assert_int_equal(mp.lapic_paddr, 0xFEE00000u);
    assert_int_equal(mp.ioapic_paddr, 0xFEC00000u);
    assert_int_equal(mp.isa_pin[0], 2);
    assert_int_equal(mp.isa_pin[1], 1);
    assert_int_equal(mp.isa_pin[15], 15);
}

static void find_needs_alignment_length_and_checksum(void **state)
{
    (void)state;
    memset(area, 0, sizeof(area));
    assert_null(vs_mp_find(area, AREA));

    write_table(2, 0x800);
    /* decoys: unaligned, bad checksum, bad length */
    memcpy(area + 0x104, area + 0x800, 16);
    memcpy(area + 0x200, area + 0x800, 16);
    area[0x200 + 10] ^= 1;
    memcpy(area + 0x300, area + 0x800, 16);
    area[0x300 + 8] = 2;
    fix_checksum(area + 0x300, 16, area + 0x300 + 10);
    assert_ptr_equal(vs_mp_find(area, AREA), area + 0x800);
    /* not found when the scan stops before it */
    assert_null(vs_mp_find(area, 0x800));
    assert_null(vs_mp_find(area, 0x80f));
    assert_ptr_equal(vs_mp_find(area, 0x810), area + 0x800);
}

static void rejects_damaged_tables(void **state)
{
    (void)state;
    struct vs_mp_config *cfg = write_table(2, 0);
    uint32_t avail = AREA - 16;
    uint8_t *raw = (uint8_t *)cfg;

    cfg->signature[0] = 'X';
    parse_bad(cfg, avail, "PCMP");
    cfg = write_table(2, 0);
    raw = (uint8_t *)cfg;
    raw[50] ^= 0x40;
    parse_bad(cfg, avail, "checksum");

    cfg = write_table(2, 0);
    parse_bad(cfg, cfg->length - 1, "length");
    parse_bad(cfg, 20, "PCMP");

    cfg = write_table(2, 0);
    cfg->entry_count++;
    fix_checksum((uint8_t *)cfg, cfg->length, &cfg->checksum);
    parse_bad(cfg, avail, "more entries");

    cfg = write_table(2, 0);
    raw = (uint8_t *)cfg;
    raw[sizeof(*cfg) + 2 * sizeof(struct vs_mp_processor)] = 9;   /* the bus entry */
    fix_checksum(raw, cfg->length, &cfg->checksum);
    parse_bad(cfg, avail, "bad or truncated");

    /* the IOAPIC disabled: nothing to route through */
    cfg = write_table(2, 0);
    raw = (uint8_t *)cfg;
    struct vs_mp_ioapic *io = (struct vs_mp_ioapic *)(raw + sizeof(*cfg) +
                              2 * sizeof(struct vs_mp_processor) + sizeof(struct vs_mp_bus));
    assert_int_equal(io->type, VS_MP_ENTRY_IOAPIC);
    io->flags = 0;
    fix_checksum(raw, cfg->length, &cfg->checksum);
    parse_bad(cfg, avail, "IOAPIC");
}

static void interrupts_of_other_buses_or_ioapics_are_ignored(void **state)
{
    (void)state;
    struct vs_mp_config *cfg = write_table(1, 0);
    uint8_t *raw = (uint8_t *)cfg;
    struct vs_mp_irq *irq = (struct vs_mp_irq *)(raw + sizeof(*cfg) +
                            sizeof(struct vs_mp_processor) + sizeof(struct vs_mp_bus) +
                            sizeof(struct vs_mp_ioapic));
    struct vs_mp_info mp;

    assert_int_equal(irq[0].src_irq, 0);
    irq[0].dst_apic = 7;                 /* some other IOAPIC */
    assert_int_equal(irq[1].src_irq, 1);
    irq[1].src_bus = 3;                  /* some other bus */
    irq[2].dst_pin = 9;                  /* ISA IRQ 3 rewired */
    fix_checksum(raw, cfg->length, &cfg->checksum);
    parse_ok(cfg, &mp);
    assert_int_equal(mp.isa_pin[0], VS_MP_NO_PIN);
    assert_int_equal(mp.isa_pin[1], VS_MP_NO_PIN);
    assert_int_equal(mp.isa_pin[3], 9);
    assert_int_equal(mp.isa_pin[4], 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_what_the_monitor_writes),
        cmocka_unit_test(defaults_are_the_pc_wiring),
        cmocka_unit_test(find_needs_alignment_length_and_checksum),
        cmocka_unit_test(rejects_damaged_tables),
        cmocka_unit_test(interrupts_of_other_buses_or_ioapics_are_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
