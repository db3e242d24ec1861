/* Unit tests: the pc machine's GSI routing table (src/vmm/gsi_routing.c) is the wiring the
 * MP table (src/vmm/mptable.c) describes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/gsi_routing.h"
#include "vmm/mptable.h"
#include "vmshift/mptable.h"

struct routes {
    int pic_chip[24], pic_pin[24];      /* -1: none */
    int ioapic_pin[24];
    unsigned per_gsi[24];
};

static void collect(struct routes *r)
{
    struct kvm_irq_routing_entry e[VS_PC_GSI_ROUTES + 8];
    memset(e, 0x5a, sizeof(e));
    size_t n = vs_pc_gsi_routes(e);
    assert_int_equal(n, VS_PC_GSI_ROUTES);
    memset(r, 0, sizeof(*r));
    for (int g = 0; g < 24; g++)
        r->pic_chip[g] = r->pic_pin[g] = r->ioapic_pin[g] = -1;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(e[i].type, KVM_IRQ_ROUTING_IRQCHIP);
        assert_true(e[i].gsi < 24);
        r->per_gsi[e[i].gsi]++;
        if (e[i].u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
            assert_int_equal(r->ioapic_pin[e[i].gsi], -1);
            r->ioapic_pin[e[i].gsi] = (int)e[i].u.irqchip.pin;
        } else {
            assert_int_equal(r->pic_chip[e[i].gsi], -1);
            r->pic_chip[e[i].gsi] = (int)e[i].u.irqchip.irqchip;
            r->pic_pin[e[i].gsi] = (int)e[i].u.irqchip.pin;
        }
    }
    assert_int_equal(e[n].gsi, 0x5a5a5a5a);     /* nothing beyond the count */
}

static void pit_reaches_ioapic_pin_2_and_pic_pin_0(void **state)
{
    (void)state;
    struct routes r;
    collect(&r);
    assert_int_equal(r.ioapic_pin[0], VS_MP_PIT_PIN);
    assert_int_equal(r.ioapic_pin[0], 2);
    assert_int_equal(r.pic_chip[0], KVM_IRQCHIP_PIC_MASTER);
    assert_int_equal(r.pic_pin[0], 0);
}

static void cascade_has_no_route(void **state)
{
    (void)state;
    struct routes r;
    collect(&r);
    assert_int_equal(r.per_gsi[2], 0);
    /* and no GSI but 0 reaches pin 2, so the PIT has it alone */
    for (int g = 1; g < 24; g++)
        assert_int_not_equal(r.ioapic_pin[g], 2);
}

static void isa_and_pci_gsis_are_one_to_one(void **state)
{
    (void)state;
    struct routes r;
    collect(&r);
    for (int g = 1; g < 24; g++) {
        if (g == 2)
            continue;
        assert_int_equal(r.ioapic_pin[g], g);
        if (g < 8) {
            assert_int_equal(r.pic_chip[g], KVM_IRQCHIP_PIC_MASTER);
            assert_int_equal(r.pic_pin[g], g);
        } else if (g < 16) {
            assert_int_equal(r.pic_chip[g], KVM_IRQCHIP_PIC_SLAVE);
            assert_int_equal(r.pic_pin[g], g - 8);
        } else {
            assert_int_equal(r.pic_chip[g], -1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pit_reaches_ioapic_pin_2_and_pic_pin_0),
        cmocka_unit_test(cascade_has_no_route),
        cmocka_unit_test(isa_and_pci_gsis_are_one_to_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
