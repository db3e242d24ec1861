/* A device's interrupt line. In a VM it drives a GSI of the in-kernel IOAPIC/PIC
 * (KVM_IRQ_LINE, or an irqfd); in unit tests any function can stand behind it. Devices
 * raise and lower their line; they never talk to KVM about interrupts themselves. */
#ifndef VS_IRQ_H
#define VS_IRQ_H

#include <stdbool.h>
#include <stdint.h>

struct vs_irq_line {
    void (*set)(void *ctx, uint32_t gsi, bool level);   /* NULL: not connected */
    void *ctx;
    uint32_t gsi;
};

static inline void vs_irq_set_level(const struct vs_irq_line *l, bool level)
{
    if (l && l->set)
        l->set(l->ctx, l->gsi, level);
}

/* An edge: raise, then lower. */
static inline void vs_irq_pulse(const struct vs_irq_line *l)
{
    vs_irq_set_level(l, true);
    vs_irq_set_level(l, false);
}

#endif
