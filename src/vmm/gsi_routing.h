/* The pc machine's GSI routing, as on PCs and as its MP table (mptable.h) describes it:
 * GSI 0 (the PIT, ISA IRQ 0) -> IOAPIC pin 2 and 8259 master pin 0; GSI 1-15 but 2 ->
 * IOAPIC pin n and 8259 pin n (master 0-7, slave 8-15); GSI 16-23 -> IOAPIC pin n only;
 * GSI 2 (the cascade) -> nothing. KVM's default table would send GSI 0 to IOAPIC pin 0. */
#ifndef VS_GSI_ROUTING_H
#define VS_GSI_ROUTING_H

#include <linux/kvm.h>
#include <stddef.h>

#define VS_PC_GSI_ROUTES 38     /* 15 to the 8259s + 23 to the IOAPIC */

/* Fill out[0..VS_PC_GSI_ROUTES) with the table; returns the number of entries. */
size_t vs_pc_gsi_routes(struct kvm_irq_routing_entry *out);

/* Install the table on vm_fd (KVM_SET_GSI_ROUTING), after KVM_CREATE_IRQCHIP. */
int vs_pc_gsi_routing_set(int vm_fd);

#endif
