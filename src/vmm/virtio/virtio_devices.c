/* Putting virtio devices into a VM: a transport's MMIO window on the device bus, its state
 * (and its device's) in the VM's state registry, and one constructor per device type.
 * Kept apart from the devices so that they can be tested without a bus or registry.
 * A failure here fails the VM's construction (ranges and sections already registered
 * point at freed memory then: the VM must not run). */
#include "vmm/virtio/virtio_mmio.h"
#include "vmm/virtio/virtio_blk.h"
#include "vmm/virtio/virtio_net.h"
#include "vmm/virtio/virtio_rng.h"
#include "common/error.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>

static int register_state(struct vs_virtio_mmio *t, const struct vs_virtio_mmio_params *p)
{
    if (!p->vmstate)
        return 0;
    int rc = vs_vmstate_register(p->vmstate, &vs_virtio_mmio_vmstate, p->instance, t);
    if (rc == 0 && t->ops->vmstate)
        rc = vs_vmstate_register(p->vmstate, t->ops->vmstate, p->instance, t->dev);
    return rc < 0 ? vs_fail_context(rc, "%s: registering its migration state", t->name) : 0;
}

int vs_virtio_mmio_create(struct vs_virtio_mmio **out, const struct vs_virtio_mmio_params *p,
                          const struct vs_virtio_device_ops *ops, void *dev)
{
    *out = NULL;
    struct vs_virtio_mmio *t = calloc(1, sizeof(*t));
    if (!t)
        return vs_fail(ENOMEM, "out of memory for virtio device %s", ops->name);
    char name[24];
    snprintf(name, sizeof(name), "%s%u", ops->name, p->instance);
    int rc = vs_virtio_mmio_init(t, name, ops, dev, p->mem, p->irq);
    if (rc < 0) {
        free(t);
        return rc;
    }
    if (p->bus) {
        rc = vs_bus_register(p->bus, VS_BUS_MMIO, p->base, VS_VIRTIO_MMIO_SIZE, t->name,
                             vs_virtio_mmio_io, t);
        if (rc < 0) {
            vs_virtio_mmio_free(t);
            return vs_fail_context(rc, "%s at MMIO 0x%llx", name, (unsigned long long)p->base);
        }
    }
    rc = register_state(t, p);
    if (rc < 0) {
        vs_virtio_mmio_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void vs_virtio_mmio_free(struct vs_virtio_mmio *t)
{
    if (!t)
        return;
    vs_virtio_mmio_destroy(t);
    free(t);
}

int vs_virtio_rng_create(struct vs_virtio_rng **out, const struct vs_virtio_mmio_params *p)
{
    *out = NULL;
    struct vs_virtio_rng *rng = calloc(1, sizeof(*rng));
    if (!rng)
        return vs_fail(ENOMEM, "out of memory for virtio-rng");
    int rc = vs_virtio_mmio_create(&rng->transport, p, &vs_virtio_rng_ops, rng);
    if (rc < 0) {
        free(rng);
        return rc;
    }
    *out = rng;
    return 0;
}

void vs_virtio_rng_free(struct vs_virtio_rng *rng)
{
    if (!rng)
        return;
    vs_virtio_mmio_free(rng->transport);
    free(rng);
}

int vs_virtio_blk_create(struct vs_virtio_blk **out, const struct vs_virtio_mmio_params *p,
                         const char *spec, bool incoming)
{
    *out = NULL;
    struct vs_virtio_blk *d = malloc(sizeof(*d));
    if (!d)
        return vs_fail(ENOMEM, "out of memory for virtio-blk");
    int rc = vs_virtio_blk_open(d, spec, incoming, p->mem);
    if (rc) {
        free(d);
        return rc;
    }
    rc = vs_virtio_mmio_create(&d->transport, p, &d->ops, d);
    if (!rc && (rc = vs_virtio_blk_start(d, d->transport)))
        vs_virtio_mmio_free(d->transport);
    if (rc) {
        vs_virtio_blk_close(d);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void vs_virtio_blk_free(struct vs_virtio_blk *d)
{
    if (!d)
        return;
    vs_virtio_blk_close(d);
    vs_virtio_mmio_free(d->transport);
    free(d);
}

int vs_virtio_net_create(struct vs_virtio_net **out, const struct vs_virtio_mmio_params *p,
                         const char *spec, bool incoming)
{
    *out = NULL;
    struct vs_net_spec s;
    struct vs_tap tap;
    int rc = vs_net_spec_parse(spec, &s);
    if (rc)
        return rc;   /* the message names --nic and the field */
    if ((rc = vs_tap_open(&tap, s.tap, s.bridge, incoming)))
        return vs_fail_context(rc, "--nic %s", spec);
    struct vs_virtio_net *n;
    if ((rc = vs_virtio_net_new(&n, &s, tap.fd, tap.name)))
        return rc;
    n->tap = tap;
    rc = vs_virtio_mmio_create(&n->transport, p, &vs_virtio_net_ops, n);
    if (!rc)
        rc = vs_virtio_net_io_start(n);
    if (rc) {
        vs_virtio_net_free(n);
        return vs_fail_context(rc, "--nic %s", spec);
    }
    char mac[18];
    vs_info("%s: TAP %s%s%s, MAC %s, VLAN %u", n->transport->name, tap.name,
            tap.bridge[0] ? " on bridge " : "", tap.bridge,
            vs_net_mac_string(n->mac, mac, sizeof(mac)), n->vlan);
    *out = n;
    return 0;
}

void vs_virtio_net_free(struct vs_virtio_net *n)
{
    if (!n)
        return;
    if (n->transport)
        vs_virtio_net_io_stop(n);
    vs_virtio_mmio_free(n->transport);
    vs_virtio_net_delete(n);
}
