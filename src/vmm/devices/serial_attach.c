/* Connecting the UART to a machine: its interrupt line, its ports on the device bus and
 * its state in the vmstate registry. Apart from serial.c so that code using the UART
 * model alone (its unit test) needs neither the bus nor the registry. */
#include "vmm/devices/serial.h"
#include "vmm/bus.h"
#include "vmm/vmstate.h"

int vs_serial_attach(struct vs_serial *s, struct vs_bus *bus, struct vs_vmstate_registry *reg,
                     struct vs_irq_line irq)
{
    pthread_mutex_lock(&s->lock);
    s->irq = irq;
    s->irq_level = false;
    vs_irq_set_level(&s->irq, false);
    pthread_mutex_unlock(&s->lock);
    int rc = vs_bus_register(bus, VS_BUS_PIO, VS_SERIAL_BASE, VS_SERIAL_PORTS, "serial0",
                             serial_bus_io, s);
    if (!rc)
        rc = vs_vmstate_register(reg, &vs_serial_vmstate, 0, s);
    return rc;
}
