/* virtio-net's own migration state: the "virtio-net" section (docs/device-state.md). The
 * queues are the transport's section; this one carries what the guest sees in the
 * configuration space (MAC, status), its address for the announcements, the counters, and
 * the VLAN and rate, which are the VM's and move with it. */
#include "vmm/virtio/virtio_net.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <string.h>

#define FIELD(member) VS_VMSTATE_FIELD(struct vs_virtio_net_record, member, 1)
static const struct vs_vmstate_field record_fields[] = {
    FIELD(mac), FIELD(status), FIELD(ip), FIELD(flags),
    FIELD(rx_frames), FIELD(rx_bytes), FIELD(tx_frames), FIELD(tx_bytes), FIELD(vlan),
    FIELD(pad), FIELD(rate),
};
#undef FIELD

static void *record_of(void *opaque)
{
    return &((struct vs_virtio_net *)opaque)->rec;
}

/* The VM is paused: no frame is on its way into the guest, none out of it. */
static int save_record(void *opaque)
{
    struct vs_virtio_net *n = opaque;
    struct vs_virtio_net_record *r = &n->rec;
    vs_virtio_mmio_lock(n->transport);
    memset(r, 0, sizeof(*r));
    memcpy(r->mac, n->mac, 6);
    r->status = n->status;
    memcpy(r->ip, n->ip, 4);
    r->flags = (n->ip_known ? VS_NET_REC_IP_KNOWN : 0) | (n->ip_learned ? VS_NET_REC_IP_LEARNED : 0);
    r->rx_frames = n->n.rx_frames;
    r->rx_bytes = n->n.rx_bytes;
    r->tx_frames = n->n.tx_frames;
    r->tx_bytes = n->n.tx_bytes;
    r->vlan = n->vlan;
    r->rate = n->tx_tb.rate;
    vs_virtio_mmio_unlock(n->transport);
    return 0;
}

static int check_record(const struct vs_virtio_net *n, const struct vs_virtio_net_record *r)
{
    char mac[18];
    if ((r->mac[0] & 1) || !(r->mac[0] | r->mac[1] | r->mac[2] | r->mac[3] | r->mac[4] | r->mac[5]))
        return vs_fail(EINVAL, "%s: the saved MAC %s is not a unicast address", n->transport->name,
                       vs_net_mac_string(r->mac, mac, sizeof(mac)));
    if (r->status & ~(VS_VIRTIO_NET_S_LINK_UP | VS_VIRTIO_NET_S_ANNOUNCE))
        return vs_fail(EINVAL, "%s: saved status 0x%x has bits this NIC does not know",
                       n->transport->name, r->status);
    if (r->flags & ~(VS_NET_REC_IP_KNOWN | VS_NET_REC_IP_LEARNED))
        return vs_fail(EINVAL, "%s: saved flags 0x%x are unknown", n->transport->name, r->flags);
    if (r->vlan > 4094 || r->pad[0] | r->pad[1] | r->pad[2])
        return vs_fail(EINVAL, "%s: saved VLAN %u is not 0 to 4094 (or padding is set)",
                       n->transport->name, r->vlan);
    if (r->rate > 1000000000000ull)
        return vs_fail(EINVAL, "%s: saved rate %llu bytes/s is more than 8 Tbit/s",
                       n->transport->name, (unsigned long long)r->rate);
    return 0;
}

static int load_record(void *opaque, uint32_t version)
{
    struct vs_virtio_net *n = opaque;
    const struct vs_virtio_net_record *r = &n->rec;
    (void)version;
    int rc = check_record(n, r);
    if (rc)
        return rc;
    vs_virtio_mmio_lock(n->transport);
    if (memcmp(n->mac, r->mac, 6)) {
        char a[18], b[18];
        vs_warn("%s: this host's --nic gave MAC %s; the VM keeps its MAC %s", n->transport->name,
                vs_net_mac_string(n->mac, a, sizeof(a)), vs_net_mac_string(r->mac, b, sizeof(b)));
        memcpy(n->mac, r->mac, 6);
    }
    if (n->vlan != r->vlan)
        vs_warn("%s: this host's --nic gave VLAN %u; the VM keeps its VLAN %u",
                n->transport->name, n->vlan, r->vlan);
    n->vlan = r->vlan;
    if (n->tx_tb.rate != r->rate) {
        vs_warn("%s: this host's --nic gave rate %llu bytes/s; the VM keeps its rate %llu "
                "bytes/s (0: none)", n->transport->name, (unsigned long long)n->tx_tb.rate,
                (unsigned long long)r->rate);
        vs_tb_init(&n->rx_tb, r->rate, vs_clock_ns());
        vs_tb_init(&n->tx_tb, r->rate, vs_clock_ns());
    }
    n->status = r->status;
    if (r->flags & VS_NET_REC_IP_KNOWN) {
        memcpy(n->ip, r->ip, 4);
        n->ip_known = true;
        n->ip_learned = r->flags & VS_NET_REC_IP_LEARNED;
    }
    n->n.rx_frames = r->rx_frames;
    n->n.rx_bytes = r->rx_bytes;
    n->n.tx_frames = r->tx_frames;
    n->n.tx_bytes = r->tx_bytes;
    n->arrived = true;
    n->rx_held = false;
    vs_virtio_mmio_unlock(n->transport);
    return 0;
}

const struct vs_vmstate vs_virtio_net_vmstate = {
    .name = "virtio-net",
    .version = 1,
    .min_version = 1,
    .fields = record_fields,
    .nr_fields = sizeof(record_fields) / sizeof(record_fields[0]),
    .record = record_of,
    .pre_save = save_record,
    .post_load = load_record,
};
