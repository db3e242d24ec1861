/* Interrupts and exceptions: the IDT (an interrupt gate for each of the 256 vectors, all
 * entering through the stubs in entry.S), handlers by vector, the end-of-interrupt, and
 * the report of an exception on the serial console. */
#ifndef VS_GUEST_IRQ_H
#define VS_GUEST_IRQ_H

#include <stdint.h>

/* The vectors the guest uses. Exceptions are 0-31. */
#define VS_VEC_PIC_BASE     0x20    /* the 8259s, remapped here and masked */
#define VS_VEC_ISA_BASE     0x30    /* ISA IRQ n through the IOAPIC: 0x30 + n */
#define VS_VEC_LAPIC_TIMER  0xEF
#define VS_VEC_LAPIC_ERROR  0xFE
#define VS_VEC_SPURIOUS     0xFF    /* the LAPIC's spurious vector: no EOI */

/* What isr_common in entry.S pushes, lowest address first. */
struct vs_irq_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;         /* error is 0 for vectors without an error code */
    uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*vs_irq_handler)(const struct vs_irq_frame *f);

/* vCPU 0, before anything can fault: fill the IDT. */
void vs_idt_init(void);
/* Every vCPU: load the IDT and remember the vCPU index for exception reports. */
void vs_idt_load(unsigned cpu);
/* The vCPU index vs_idt_load recorded. */
unsigned vs_cpu_index(void);

/* Handler for an interrupt vector (>= VS_VEC_ISA_BASE); vCPU 0 before it enables
 * interrupts. The dispatcher sends the LAPIC its EOI after the handler returns. */
void vs_irq_set_handler(unsigned vector, vs_irq_handler h);
/* Interrupts that came on a vector without a handler, over all vCPUs. */
uint64_t vs_irq_unexpected(void);

/* Called by entry.S with interrupts off. */
void vs_irq_dispatch(struct vs_irq_frame *f);

#endif
