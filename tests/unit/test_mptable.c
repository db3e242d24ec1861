/* Unit tests: the MP table the monitor writes for pc VMs (src/vmm/mptable.c), read back
 * here byte by byte as a guest would, independently of the writer's structures' order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "vmm/memory.h"
#include "vmm/mptable.h"
#include "vmshift/guest_abi.h"
#include "vmshift/mptable.h"

#define GPA 0xF0000u

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }

/* What a parse of one table found. */
struct parsed {
    unsigned cpus, bsps, buses, ioapics, ioints, localints;
    int cpu_id_seen[VS_MAX_VCPUS];
    int pin_of_irq[16];             /* -1: no entry */
    int lint_of[4];                 /* by irq type, -1: no entry */
    uint8_t ioapic_id, ioapic_version;
    uint32_t ioapic_addr;
};

/* Checks the floating pointer and the header; returns the first entry's offset in buf. */
static const uint8_t *check_headers(const uint8_t *buf, unsigned nr_vcpus, uint16_t *count,
                                    const uint8_t **end)
{
    assert_memory_equal(buf, "_MP_", 4);
    uint32_t cfg_gpa = rd32(buf + 4);
    assert_int_equal(buf[8], 1);             /* length: one 16-byte paragraph */
    assert_int_equal(buf[9], 4);             /* spec 1.4 */
    assert_int_equal(sum(buf, 16), 0);
    assert_int_equal(buf[11], 0);            /* feature byte 1: a table, not a default config */
    assert_true(cfg_gpa >= GPA + 16 && cfg_gpa < 0x100000);

    const uint8_t *cfg = buf + (cfg_gpa - GPA);
    uint16_t len = rd16(cfg + 4);
    assert_memory_equal(cfg, "PCMP", 4);
    assert_int_equal(cfg[6], 4);
    assert_int_equal(sum(cfg, len), 0);
    assert_int_equal(rd32(cfg + 36), 0xFEE00000u);  /* LAPIC address */
    assert_int_equal(rd16(cfg + 40), 0);            /* no extended entries */
    assert_int_equal((size_t)(cfg - buf) + len, vs_mptable_size(nr_vcpus));
    *count = rd16(cfg + 34);
    *end = cfg + len;
    return cfg + 44;
}

static void parse_entries(const uint8_t *e, const uint8_t *end, uint16_t count, struct parsed *p)
{
    int last_type = -1;

    memset(p, 0, sizeof(*p));
    memset(p->pin_of_irq, -1, sizeof(p->pin_of_irq));
    memset(p->lint_of, -1, sizeof(p->lint_of));
    for (unsigned i = 0; i < count; i++) {
        assert_true(e < end);
        assert_true(e[0] >= last_type);      /* entries sorted by type, as the spec wants */
        last_type = e[0];
        switch (e[0]) {
        case 0:
            assert_true(e + 20 <= end);
            assert_true(e[3] & 1);           /* enabled */
            assert_true(e[1] < VS_MAX_VCPUS);
            p->cpu_id_seen[e[1]]++;
            p->bsps += (e[3] & 2) ? 1 : 0;
            if (e[3] & 2)
                assert_int_equal(e[1], 0);
            p->cpus++;
            e += 20;
            continue;
        case 1:
            assert_int_equal(e[1], 0);
            assert_memory_equal(e + 2, "ISA   ", 6);
            p->buses++;
            break;
        case 2:
            p->ioapics++;
            p->ioapic_id = e[1];
            p->ioapic_version = e[2];
            assert_int_equal(e[3] & 1, 1);
            p->ioapic_addr = rd32(e + 4);
            break;
        case 3:
            p->ioints++;
            assert_int_equal(e[1], 0);       /* INT */
            assert_int_equal(e[4], 0);       /* from the ISA bus */
            assert_true(e[5] < 16);
            assert_int_equal(p->pin_of_irq[e[5]], -1);
            assert_int_equal(e[6], p->ioapic_id);
            p->pin_of_irq[e[5]] = e[7];
            break;
        case 4:
            p->localints++;
            assert_true(e[1] < 4);
            assert_int_equal(e[6], 0xFF);    /* every LAPIC */
            p->lint_of[e[1]] = e[7];
            break;
        default:
            fail_msg("unknown entry type %u", e[0]);
        }
        e += 8;
    }
    assert_ptr_equal(e, end);
}

static void build_and_parse(unsigned nr_vcpus, struct parsed *p)
{
    size_t n = vs_mptable_size(nr_vcpus);
    uint8_t *buf = malloc(n + 64);
    assert_non_null(buf);
    memset(buf, 0xAA, n + 64);
    assert_int_equal(vs_mptable_build(buf, n, GPA, nr_vcpus), 0);
    for (size_t i = n; i < n + 64; i++)
        assert_int_equal(buf[i], 0xAA);      /* nothing written beyond the size */
    uint16_t count;
    const uint8_t *end;
    const uint8_t *e = check_headers(buf, nr_vcpus, &count, &end);
    parse_entries(e, end, count, p);
    free(buf);
}

static void one_vcpu_pc_layout(void **state)
{
    (void)state;
    struct parsed p;
    build_and_parse(1, &p);
    assert_int_equal(p.cpus, 1);
    assert_int_equal(p.bsps, 1);
    assert_int_equal(p.buses, 1);
    assert_int_equal(p.ioapics, 1);
    assert_int_equal(p.ioapic_id, 1);
    assert_int_equal(p.ioapic_version, 0x11);
    assert_int_equal(p.ioapic_addr, 0xFEC00000u);
    assert_int_equal(p.ioints, 15);
    assert_int_equal(p.pin_of_irq[0], 2);    /* the PIT */
    assert_int_equal(p.pin_of_irq[2], -1);   /* the cascade has no pin */
    for (int irq = 1; irq < 16; irq++)
        if (irq != 2)
            assert_int_equal(p.pin_of_irq[irq], irq);
    assert_int_equal(p.localints, 2);
    assert_int_equal(p.lint_of[3], 0);       /* ExtINT -> LINT0 */
    assert_int_equal(p.lint_of[1], 1);       /* NMI -> LINT1 */
}

static void every_vcpu_once_with_its_index(void **state)
{
    (void)state;
    unsigned counts[] = { 2, 7, VS_MAX_VCPUS };
    for (unsigned k = 0; k < 3; k++) {
        struct parsed p;
        build_and_parse(counts[k], &p);
        assert_int_equal(p.cpus, counts[k]);
        assert_int_equal(p.bsps, 1);
        for (unsigned i = 0; i < VS_MAX_VCPUS; i++)
            assert_int_equal(p.cpu_id_seen[i], i < counts[k] ? 1 : 0);
        assert_int_equal(p.ioapic_id, counts[k]);
    }
}

static void refuses_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[2048];
    assert_true(vs_mptable_build(buf, sizeof(buf), GPA, 0) < 0);
    assert_non_null(strstr(vs_last_error(), "out of range"));
    assert_true(vs_mptable_build(buf, sizeof(buf), GPA, VS_MAX_VCPUS + 1) < 0);
    assert_true(vs_mptable_build(buf, sizeof(buf), GPA + 8, 1) < 0);
    assert_non_null(strstr(vs_last_error(), "aligned"));
    assert_true(vs_mptable_build(buf, vs_mptable_size(4) - 1, GPA, 4) < 0);
    assert_non_null(strstr(vs_last_error(), "bytes needed"));
}

static void written_into_guest_ram_at_f0000(void **state)
{
    (void)state;
    struct vs_memory m;
    assert_int_equal(vs_memory_create(&m, VS_MIN_RAM), 0);
    assert_int_equal(vs_mptable_write(&m, 3), 0);
    const uint8_t *buf = vs_memory_ptr(&m, VS_MPTABLE_ADDR);
    uint16_t count;
    const uint8_t *end;
    const uint8_t *e = check_headers(buf, 3, &count, &end);
    struct parsed p;
    parse_entries(e, end, count, &p);
    assert_int_equal(p.cpus, 3);
    /* The whole table lies in the BIOS area the e820 map keeps out of RAM. */
    assert_true(VS_MPTABLE_ADDR >= 0xA0000 && VS_MPTABLE_ADDR + vs_mptable_size(VS_MAX_VCPUS) <= 0x100000);
    vs_memory_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_vcpu_pc_layout),
        cmocka_unit_test(every_vcpu_once_with_its_index),
        cmocka_unit_test(refuses_bad_arguments),
        cmocka_unit_test(written_into_guest_ram_at_f0000),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
