#include "mp.h"

void vs_mp_defaults(struct vs_mp_info *out)
{
    out->from_table = 0;
    out->lapic_paddr = VS_MP_LAPIC_ADDR;
    out->ioapic_paddr = VS_MP_IOAPIC_ADDR;
    out->ioapic_id = 0;
    out->nr_cpus = 0;
    out->bsp_lapic_id = 0;
    for (unsigned i = 0; i < VS_MP_ISA_IRQS; i++)
        out->isa_pin[i] = (uint8_t)i;
    out->isa_pin[0] = VS_MP_PIT_PIN;
}

static uint8_t sum_bytes(const uint8_t *p, uint32_t n)
{
    uint8_t s = 0;

    for (uint32_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static int same4(const char *a, const char *b)
{
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

const struct vs_mp_floating *vs_mp_find(const void *area, uint32_t len)
{
    const uint8_t *p = area;

    for (uint32_t off = 0; off + sizeof(struct vs_mp_floating) <= len; off += 16) {
        const struct vs_mp_floating *fp = (const struct vs_mp_floating *)(p + off);

        if (same4(fp->signature, "_MP_") && fp->length == 1 &&
            sum_bytes(p + off, sizeof(*fp)) == 0)
            return fp;
    }
    return 0;
}

static int is_isa(const struct vs_mp_bus *b)
{
    static const char isa[6] = { 'I', 'S', 'A', ' ', ' ', ' ' };

    for (unsigned i = 0; i < 6; i++)
        if (b->bus_type[i] != isa[i])
            return 0;
    return 1;
}

/* Sizes by entry type; 0 = unknown type. */
static uint32_t entry_size(uint8_t type)
{
    switch (type) {
    case VS_MP_ENTRY_PROCESSOR: return sizeof(struct vs_mp_processor);
    case VS_MP_ENTRY_BUS:
    case VS_MP_ENTRY_IOAPIC:
    case VS_MP_ENTRY_IOINT:
    case VS_MP_ENTRY_LOCALINT: return 8;
    }
    return 0;
}

/* The pass over the entries for one kind of information (buses and IOAPICs must be
 * known before the interrupt entries that name them are understood). */
static void take_entry(const uint8_t *e, struct vs_mp_info *out, int *isa_bus, int *have_ioapic)
{
    switch (e[0]) {
    case VS_MP_ENTRY_PROCESSOR: {
        const struct vs_mp_processor *c = (const void *)e;

        if (c->flags & VS_MP_CPU_ENABLED)
            out->nr_cpus++;
        if (c->flags & VS_MP_CPU_BSP)
            out->bsp_lapic_id = c->lapic_id;
        break;
    }
    case VS_MP_ENTRY_BUS:
        if (*isa_bus < 0 && is_isa((const void *)e))
            *isa_bus = ((const struct vs_mp_bus *)e)->bus_id;
        break;
    case VS_MP_ENTRY_IOAPIC: {
        const struct vs_mp_ioapic *a = (const void *)e;

        /* The first enabled IOAPIC is the one the ISA IRQs go to. */
        if (!*have_ioapic && (a->flags & VS_MP_IOAPIC_ENABLED)) {
            *have_ioapic = 1;
            out->ioapic_id = a->id;
            out->ioapic_paddr = a->paddr;
        }
        break;
    }
    }
}

static void take_irq(const struct vs_mp_irq *r, struct vs_mp_info *out, int isa_bus)
{
    if (r->type != VS_MP_ENTRY_IOINT || r->irq_type != VS_MP_INT || isa_bus < 0 ||
        r->src_bus != isa_bus || r->src_irq >= VS_MP_ISA_IRQS)
        return;
    if (r->dst_apic == out->ioapic_id || r->dst_apic == VS_MP_ALL_LAPICS)
        out->isa_pin[r->src_irq] = r->dst_pin;
}

int vs_mp_parse(const void *cfg, uint32_t avail, struct vs_mp_info *out, const char **why)
{
    const struct vs_mp_config *h = cfg;
    const uint8_t *base = cfg, *e;
    int isa_bus = -1, have_ioapic = 0;

    if (avail < sizeof(*h) || !same4(h->signature, "PCMP"))
        return *why = "no PCMP signature", -1;
    if (h->length < sizeof(*h) || h->length > avail)
        return *why = "bad configuration table length", -1;
    if (sum_bytes(base, h->length) != 0)
        return *why = "bad configuration table checksum", -1;

    vs_mp_defaults(out);
    out->lapic_paddr = h->lapic_paddr;
    for (unsigned i = 0; i < VS_MP_ISA_IRQS; i++)
        out->isa_pin[i] = VS_MP_NO_PIN;
    for (int pass = 0; pass < 2; pass++) {
        e = base + sizeof(*h);
        for (unsigned i = 0; i < h->entry_count; i++) {
            uint32_t off = (uint32_t)(e - base), n;

            if (off >= h->length)
                return *why = "more entries than the length holds", -1;
            n = entry_size(e[0]);
            if (n == 0 || off + n > h->length)
                return *why = "bad or truncated entry", -1;
            if (pass == 0)
                take_entry(e, out, &isa_bus, &have_ioapic);
            else
                take_irq((const struct vs_mp_irq *)e, out, isa_bus);
            e += n;
        }
    }
    if (!have_ioapic)
        return *why = "no enabled IOAPIC", -1;
    out->from_table = 1;
    return 0;
}
