#include "vmm/mptable.h"
#include "common/error.h"
#include "vmshift/guest_abi.h"
#include "vmshift/mptable.h"

#include <string.h>

#define ISA_BUS_ID   0
/* ISA IRQs with an IOAPIC pin: all but IRQ 2 (the cascade). */
#define NR_ISA_PINS  (VS_MP_ISA_IRQS - 1)
/* What the processor entries claim: family 6, and CPUID 1 EDX FPU and APIC. */
#define CPU_SIGNATURE 0x600
#define CPU_FEATURES  ((1u << 0) | (1u << 9))

static size_t config_size(unsigned nr_vcpus)
{
    return sizeof(struct vs_mp_config) + nr_vcpus * sizeof(struct vs_mp_processor) +
           sizeof(struct vs_mp_bus) + sizeof(struct vs_mp_ioapic) +
           (NR_ISA_PINS + 2) * sizeof(struct vs_mp_irq);
}

size_t vs_mptable_size(unsigned nr_vcpus)
{
    return sizeof(struct vs_mp_floating) + config_size(nr_vcpus);
}

static uint8_t checksum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t sum = 0;

    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + b[i]);
    return (uint8_t)(0x100 - sum);
}

/* Appends entries at *at. */
struct writer {
    uint8_t *at;
    uint16_t count;
};

static void put(struct writer *w, const void *entry, size_t n)
{
    memcpy(w->at, entry, n);
    w->at += n;
    w->count++;
}

static void put_irq(struct writer *w, uint8_t type, uint8_t irq_type, uint8_t src_irq,
                    uint8_t dst_apic, uint8_t dst_pin)
{
    struct vs_mp_irq e = {
        .type = type, .irq_type = irq_type, .flags = 0, .src_bus = ISA_BUS_ID,
        .src_irq = src_irq, .dst_apic = dst_apic, .dst_pin = dst_pin,
    };
    put(w, &e, sizeof(e));
}

static uint16_t put_entries(uint8_t *first, unsigned nr_vcpus)
{
    struct writer w = { .at = first };
    uint8_t ioapic_id = (uint8_t)nr_vcpus;

    for (unsigned i = 0; i < nr_vcpus; i++) {
        struct vs_mp_processor cpu = {
            .type = VS_MP_ENTRY_PROCESSOR, .lapic_id = (uint8_t)i,
            .lapic_version = VS_MP_LAPIC_VERSION,
            .flags = VS_MP_CPU_ENABLED | (i == 0 ? VS_MP_CPU_BSP : 0),
            .signature = CPU_SIGNATURE, .features = CPU_FEATURES,
        };
        put(&w, &cpu, sizeof(cpu));
    }
    struct vs_mp_bus isa = { .type = VS_MP_ENTRY_BUS, .bus_id = ISA_BUS_ID };
    memcpy(isa.bus_type, "ISA   ", sizeof(isa.bus_type));
    put(&w, &isa, sizeof(isa));
    struct vs_mp_ioapic ioapic = {
        .type = VS_MP_ENTRY_IOAPIC, .id = ioapic_id, .version = VS_MP_IOAPIC_VERSION,
        .flags = VS_MP_IOAPIC_ENABLED, .paddr = VS_MP_IOAPIC_ADDR,
    };
    put(&w, &ioapic, sizeof(ioapic));
    for (uint8_t irq = 0; irq < VS_MP_ISA_IRQS; irq++) {
        if (irq == 2)
            continue;
        put_irq(&w, VS_MP_ENTRY_IOINT, VS_MP_INT, irq, ioapic_id,
                irq == 0 ? VS_MP_PIT_PIN : irq);
    }
    put_irq(&w, VS_MP_ENTRY_LOCALINT, VS_MP_EXTINT, 0, VS_MP_ALL_LAPICS, 0);
    put_irq(&w, VS_MP_ENTRY_LOCALINT, VS_MP_NMI, 0, VS_MP_ALL_LAPICS, 1);
    return w.count;
}

int vs_mptable_build(void *buf, size_t len, uint32_t gpa, unsigned nr_vcpus)
{
    if (nr_vcpus < 1 || nr_vcpus > VS_MAX_VCPUS)
        return vs_fail(EINVAL, "MP table: %u vCPUs is out of range (1 to %d)", nr_vcpus,
                       VS_MAX_VCPUS);
    if (gpa % 16)
        return vs_fail(EINVAL, "MP table: address 0x%x is not 16-byte aligned", gpa);
    if (len < vs_mptable_size(nr_vcpus))
        return vs_fail(ENOSPC, "MP table: %zu bytes needed for %u vCPUs, %zu available",
                       vs_mptable_size(nr_vcpus), nr_vcpus, len);

    struct vs_mp_floating *fp = buf;
    struct vs_mp_config *cfg = (struct vs_mp_config *)(fp + 1);
    size_t cfg_len = config_size(nr_vcpus);

    memset(buf, 0, vs_mptable_size(nr_vcpus));
    memcpy(cfg->signature, "PCMP", 4);
    cfg->length = (uint16_t)cfg_len;
    cfg->spec_rev = VS_MP_SPEC_REV;
    memcpy(cfg->oem_id, "VMSHIFT ", sizeof(cfg->oem_id));
    memcpy(cfg->product_id, "PC          ", sizeof(cfg->product_id));
    cfg->lapic_paddr = VS_MP_LAPIC_ADDR;
    cfg->entry_count = put_entries((uint8_t *)(cfg + 1), nr_vcpus);
    cfg->checksum = checksum(cfg, cfg_len);

    memcpy(fp->signature, "_MP_", 4);
    fp->config_paddr = gpa + (uint32_t)sizeof(*fp);
    fp->length = 1;
    fp->spec_rev = VS_MP_SPEC_REV;
    fp->checksum = checksum(fp, sizeof(*fp));
    return 0;
}

int vs_mptable_write(struct vs_memory *m, unsigned nr_vcpus)
{
    size_t len = vs_mptable_size(nr_vcpus);
    void *dst = vs_memory_gpa_ptr(m, VS_MPTABLE_ADDR, len);

    if (!dst)
        return vs_fail(EINVAL, "MP table: [0x%x, 0x%zx) is not guest RAM",
                       VS_MPTABLE_ADDR, VS_MPTABLE_ADDR + len);
    int rc = vs_mptable_build(dst, len, VS_MPTABLE_ADDR, nr_vcpus);
    return rc ? vs_fail_context(rc, "writing the MP table") : 0;
}
