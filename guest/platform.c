#include "platform.h"
#include "fmt.h"
#include "ioapic.h"
#include "lapic.h"
#include "paging.h"
#include "pic.h"
#include "serial.h"

#define LAPIC_SIZE  0x1000
#define IOAPIC_SIZE 0x20
#define NO_CHIP " (the timer workload needs the pc machine's irqchip)"
#define NO_MAP  " (it crosses a 2 MiB page, or the spare page tables are used up)"

static struct vs_mp_info mp;
static uint64_t mp_table_paddr;     /* 0: none found */

const struct vs_mp_info *vs_platform_mp(void)
{
    return &mp;
}

/* The MP table in the BIOS area, if any; otherwise the PC defaults. */
static void find_mp(void)
{
    const struct vs_mp_floating *fp;
    const char *why = "";

    vs_mp_defaults(&mp);
    fp = vs_mp_find((const void *)(uintptr_t)VS_MP_SCAN_START, VS_MP_SCAN_END - VS_MP_SCAN_START);
    if (!fp)
        return;
    /* BIOSes put the configuration table below 1 MiB, which both boot paths map. */
    if (fp->config_paddr == 0 || fp->config_paddr >= VS_MP_SCAN_END) {
        vs_puts("vmshift-guest: warning: MP table without a configuration table below 1 MiB; "
                "using the PC defaults");
        return;
    }
    if (vs_mp_parse((const void *)(uintptr_t)fp->config_paddr,
                    VS_MP_SCAN_END - fp->config_paddr, &mp, &why)) {
        struct vs_line l;

        vs_line_start(&l);
        vs_line_str(&l, "vmshift-guest: warning: MP table ignored (");
        vs_line_str(&l, why);
        vs_line_str(&l, "); using the PC defaults");
        vs_line_end(&l);
        vs_mp_defaults(&mp);
        return;
    }
    mp_table_paddr = (uint64_t)(uintptr_t)fp;
}

static int failure(char *err, unsigned errlen, const char *what, uint64_t addr,
                   const char *hint)
{
    struct vs_buf e;

    vs_buf_init(&e, err, errlen);
    vs_buf_puts(&e, what);
    vs_buf_hex(&e, addr);
    vs_buf_puts(&e, hint);
    return -1;
}

static void print_platform(void)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: ");
    if (mp_table_paddr) {
        vs_line_str(&l, "MP table at ");
        vs_line_hex(&l, mp_table_paddr);
        vs_line_str(&l, " cpus=");
        vs_line_dec(&l, mp.nr_cpus);
    } else {
        vs_line_str(&l, "no MP table, PC defaults");
    }
    vs_line_str(&l, " lapic=");
    vs_line_hex(&l, mp.lapic_paddr);
    vs_line_str(&l, " (id ");
    vs_line_dec(&l, vs_lapic_id());
    vs_line_str(&l, ", version ");
    vs_line_hex(&l, vs_lapic_version());
    vs_line_str(&l, ") ioapic=");
    vs_line_hex(&l, mp.ioapic_paddr);
    vs_line_str(&l, " (id ");
    vs_line_dec(&l, mp.ioapic_id);
    vs_line_str(&l, ", ");
    vs_line_dec(&l, vs_ioapic_pins());
    vs_line_str(&l, " pins) irq0->pin ");
    vs_line_dec(&l, mp.isa_pin[0]);
    vs_line_end(&l);
}

int vs_platform_setup(char *err, unsigned errlen)
{
    find_mp();
    if (vs_map_mmio(mp.lapic_paddr, LAPIC_SIZE))
        return failure(err, errlen, "cannot map the LAPIC at ", mp.lapic_paddr, NO_MAP);
    if (vs_map_mmio(mp.ioapic_paddr, IOAPIC_SIZE))
        return failure(err, errlen, "cannot map the IOAPIC at ", mp.ioapic_paddr, NO_MAP);
    if (vs_lapic_setup(mp.lapic_paddr))
        return failure(err, errlen, "no local APIC answers at ", mp.lapic_paddr, NO_CHIP);
    if (vs_ioapic_setup(mp.ioapic_paddr))
        return failure(err, errlen, "no IOAPIC answers at ", mp.ioapic_paddr, NO_CHIP);
    vs_pic_disable();
    vs_lapic_enable();
    print_platform();
    return 0;
}

int vs_platform_route_isa(unsigned irq, uint8_t vector, char *err, unsigned errlen)
{
    struct vs_buf e;
    unsigned pin = irq < VS_MP_ISA_IRQS ? mp.isa_pin[irq] : VS_MP_NO_PIN;

    if (pin != VS_MP_NO_PIN && !vs_ioapic_route(pin, vector, (uint8_t)vs_lapic_id()))
        return 0;
    vs_buf_init(&e, err, errlen);
    vs_buf_puts(&e, "ISA IRQ ");
    vs_buf_dec(&e, irq);
    if (pin == VS_MP_NO_PIN) {
        vs_buf_puts(&e, " has no IOAPIC pin in the MP table");
    } else {
        vs_buf_puts(&e, " -> IOAPIC pin ");
        vs_buf_dec(&e, pin);
        vs_buf_puts(&e, ", which the IOAPIC does not have (pins: ");
        vs_buf_dec(&e, vs_ioapic_pins());
        vs_buf_puts(&e, ")");
    }
    return -1;
}

int vs_platform_route_gsi(unsigned gsi, uint8_t vector, char *err, unsigned errlen)
{
    struct vs_buf e;

    if (gsi < VS_MP_ISA_IRQS)
        return vs_platform_route_isa(gsi, vector, err, errlen);
    if (!vs_ioapic_route(gsi, vector, (uint8_t)vs_lapic_id()))
        return 0;
    vs_buf_init(&e, err, errlen);
    vs_buf_puts(&e, "GSI ");
    vs_buf_dec(&e, gsi);
    vs_buf_puts(&e, " is beyond the IOAPIC's pins (");
    vs_buf_dec(&e, vs_ioapic_pins());
    vs_buf_puts(&e, ")");
    return -1;
}
