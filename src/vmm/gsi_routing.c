#include "vmm/gsi_routing.h"
#include "common/error.h"
#include "vmshift/mptable.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define NR_IOAPIC_PINS 24
#define CASCADE_GSI    2

static struct kvm_irq_routing_entry route(uint32_t gsi, uint32_t chip, uint32_t pin)
{
    return (struct kvm_irq_routing_entry){
        .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
        .u.irqchip = { .irqchip = chip, .pin = pin },
    };
}

size_t vs_pc_gsi_routes(struct kvm_irq_routing_entry *out)
{
    size_t n = 0;

    for (uint32_t gsi = 0; gsi < NR_IOAPIC_PINS; gsi++) {
        if (gsi == CASCADE_GSI)
            continue;
        if (gsi < 8)
            out[n++] = route(gsi, KVM_IRQCHIP_PIC_MASTER, gsi);
        else if (gsi < 16)
            out[n++] = route(gsi, KVM_IRQCHIP_PIC_SLAVE, gsi - 8);
        out[n++] = route(gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? VS_MP_PIT_PIN : gsi);
    }
    return n;
}

int vs_pc_gsi_routing_set(int vm_fd)
{
    struct kvm_irq_routing *table = calloc(1, sizeof(*table) +
                                           VS_PC_GSI_ROUTES * sizeof(table->entries[0]));
    if (!table)
        return vs_fail(ENOMEM, "out of memory for the GSI routing table");
    table->nr = (uint32_t)vs_pc_gsi_routes(table->entries);
    int rc = 0;
    if (ioctl(vm_fd, KVM_SET_GSI_ROUTING, table) < 0)
        rc = vs_fail(errno, "KVM_SET_GSI_ROUTING (PIT to IOAPIC pin 2, as the MP table "
                     "says): %s", strerror(errno));
    free(table);
    return rc;
}
