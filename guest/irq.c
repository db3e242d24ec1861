#include "irq.h"
#include "io.h"
#include "lapic.h"
#include "serial.h"
#include "telemetry.h"
#include "boot.h"

#define NR_VECTORS     256
#define GATE_INTERRUPT 0x8E         /* present, DPL 0, 64-bit interrupt gate */
#define STUB_SIZE      16           /* entry.S aligns every stub to this */
#define MSR_GS_BASE    0xC0000101
/* Unexpected interrupts reported on serial, over all vCPUs. */
#define MAX_UNEXPECTED_REPORTS 4

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

struct idt_desc {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");
_Static_assert(sizeof(struct vs_irq_frame) == 22 * 8, "entry.S frame layout");

extern const uint8_t vs_isr_stubs[];    /* entry.S: NR_VECTORS stubs of STUB_SIZE bytes */

static struct idt_gate idt[NR_VECTORS] __attribute__((aligned(16)));
static vs_irq_handler handlers[NR_VECTORS];
static uint64_t unexpected;

static const char *const exception_names[] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available", "#DF double fault",
    "coprocessor segment overrun", "#TS invalid TSS", "#NP segment not present",
    "#SS stack fault", "#GP general protection", "#PF page fault", "reserved",
    "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
    "#VE virtualization", "#CP control protection",
};
#define NR_EXCEPTION_NAMES (sizeof(exception_names) / sizeof(exception_names[0]))

void vs_idt_init(void)
{
    for (unsigned v = 0; v < NR_VECTORS; v++) {
        uint64_t addr = (uint64_t)(uintptr_t)(vs_isr_stubs + v * STUB_SIZE);

        idt[v] = (struct idt_gate){
            .offset_low = (uint16_t)addr,
            .selector = VS_GDT_CODE64,
            .type = GATE_INTERRUPT,
            .offset_mid = (uint16_t)(addr >> 16),
            .offset_high = (uint32_t)(addr >> 32),
        };
    }
}

void vs_idt_load(unsigned cpu)
{
    struct idt_desc d = { .limit = sizeof(idt) - 1, .base = (uint64_t)(uintptr_t)idt };

    wrmsr(MSR_GS_BASE, cpu);
    __asm__ volatile("lidt %0" : : "m"(d) : "memory");
}

unsigned vs_cpu_index(void)
{
    return (unsigned)rdmsr(MSR_GS_BASE);
}

void vs_irq_set_handler(unsigned vector, vs_irq_handler h)
{
    if (vector < NR_VECTORS)
        handlers[vector] = h;
}

uint64_t vs_irq_unexpected(void)
{
    return __atomic_load_n(&unexpected, __ATOMIC_RELAXED);
}

static __attribute__((noreturn)) void report_exception(const struct vs_irq_frame *f)
{
    unsigned cpu = vs_cpu_index();
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: cpu");
    vs_line_dec(&l, cpu);
    vs_line_str(&l, ": exception ");
    vs_line_dec(&l, f->vector);
    vs_line_str(&l, " (");
    vs_line_str(&l, f->vector < NR_EXCEPTION_NAMES ? exception_names[f->vector] : "reserved");
    vs_line_str(&l, ") rip=");
    vs_line_hex(&l, f->rip);
    vs_line_str(&l, " error=");
    vs_line_hex(&l, f->error);
    vs_line_str(&l, " rsp=");
    vs_line_hex(&l, f->rsp);
    if (f->vector == 14) {
        vs_line_str(&l, " cr2=");
        vs_line_hex(&l, read_cr2());
    }
    vs_line_end(&l);
    if (cpu < VS_MAX_VCPUS)
        vs_telemetry_set_state(cpu, VS_GUEST_FAILED);
    halt_forever();
}

static void report_unexpected(const struct vs_irq_frame *f)
{
    struct vs_line l;

    if (__atomic_fetch_add(&unexpected, 1, __ATOMIC_RELAXED) >= MAX_UNEXPECTED_REPORTS)
        return;
    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: cpu");
    vs_line_dec(&l, vs_cpu_index());
    vs_line_str(&l, ": unexpected interrupt, vector ");
    vs_line_dec(&l, f->vector);
    vs_line_end(&l);
}

void vs_irq_dispatch(struct vs_irq_frame *f)
{
    unsigned v = (unsigned)f->vector;

    if (v < VS_VEC_PIC_BASE)
        report_exception(f);
    /* The 8259s are masked: what still comes from them is spurious (no EOI). The LAPIC's
     * spurious vector takes no EOI either. */
    if (v < VS_VEC_ISA_BASE || v == VS_VEC_SPURIOUS) {
        report_unexpected(f);
        return;
    }
    if (handlers[v])
        handlers[v](f);
    else
        report_unexpected(f);
    vs_lapic_eoi();
}
