/* The PC machine's interrupt controllers and timer, all in KVM: the PIC pair, the IOAPIC,
 * a LAPIC per vCPU (KVM_CREATE_IRQCHIP) and the PIT (KVM_CREATE_PIT2, speaker port
 * dummy). Created before any vCPU. Their state is machine state in the device registry:
 * "pic" instances 0 (master) and 1 (slave), "ioapic", "pit" (docs/device-state.md); each
 * vCPU's LAPIC travels in its vCPU state (migrate/state/vstate.c). Devices reach the
 * controllers only through a struct vs_irq_line (irq.h) or an irqfd made here. */
#ifndef VS_IRQCHIP_H
#define VS_IRQCHIP_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include "vmm/irq.h"

struct vs_kvm;
struct vs_vmstate_registry;

/* The highest GSI the in-kernel IOAPIC routes (24 pins). */
#define VS_IRQCHIP_MAX_GSI 23u

struct vs_pic_unit {                  /* one 8259: its state record */
    int vm_fd;
    uint32_t chip_id;                 /* KVM_IRQCHIP_PIC_MASTER or _SLAVE */
    struct kvm_pic_state rec;
};

struct vs_irqchip {
    int vm_fd;                        /* -1: no irqchip (flat machine) */
    struct vs_pic_unit pic[2];
    struct kvm_ioapic_state ioapic;   /* state records, filled on save, applied on load */
    struct kvm_pit_state2 pit;
};

/* Create the irqchip and the PIT on kvm's VM and register their state (in restore order:
 * PICs, IOAPIC, PIT). */
int vs_irqchip_create(struct vs_irqchip *c, const struct vs_kvm *kvm,
                      struct vs_vmstate_registry *r);

/* A line that drives `gsi` of the in-kernel PIC/IOAPIC (KVM_IRQ_LINE). */
int vs_irqchip_line(struct vs_irqchip *c, uint32_t gsi, struct vs_irq_line *out);
/* An eventfd whose write raises `gsi` (an edge) without a trip through user space
 * (KVM_IRQFD); *fd is the eventfd. Release it with vs_irqchip_irqfd_release(). */
int vs_irqchip_irqfd(struct vs_irqchip *c, uint32_t gsi, int *fd);
int vs_irqchip_irqfd_release(struct vs_irqchip *c, uint32_t gsi, int fd);

extern const struct vs_vmstate vs_pic_vmstate, vs_ioapic_vmstate, vs_pit_vmstate;

#endif
