#include "ctl/nic_status.h"
#include "migrate/report.h"
#include "vmm/virtio/virtio_net.h"
#include "vmm/vm.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

static struct json_object *event_json(const struct vs_net_announce_event *e)
{
    struct json_object *o = json_object_new_object();
    add_u64(o, "round", e->round + 1);
    json_object_object_add(o, "at_ms", json_object_new_double((double)e->at_us / 1000));
    json_object_object_add(o, "rarp", json_object_new_boolean(e->rarp));
    json_object_object_add(o, "garp", json_object_new_boolean(e->garp));
    json_object_object_add(o, "guest", json_object_new_boolean(e->guest));
    return o;
}

/* Name, backend and addresses: fixed after creation or a load, read without the lock as
 * the status reply reads other device fields. */
static void add_identity(struct json_object *o, const struct vs_virtio_net *n)
{
    char mac[18], ip[16];
    json_object_object_add(o, "name", json_object_new_string(n->transport->name));
    json_object_object_add(o, "tap", json_object_new_string(n->backend));
    json_object_object_add(o, "bridge", json_object_new_string(n->tap.bridge));
    json_object_object_add(o, "mac", json_object_new_string(vs_net_mac_string(n->mac, mac,
                                                                              sizeof(mac))));
    if (n->ip_known) {
        snprintf(ip, sizeof(ip), "%u.%u.%u.%u", n->ip[0], n->ip[1], n->ip[2], n->ip[3]);
        json_object_object_add(o, "ip", json_object_new_string(ip));
    }
}

struct json_object *vm_nics_status(struct vs_vm *vm)
{
    struct json_object *nics = json_object_new_array();
    for (unsigned i = 0; i < vm->nr_nics; i++) {
        struct vs_virtio_net *n = vm->nics[i];
        struct vs_virtio_net_counters c;
        struct vs_net_announce_event ev[VS_VIRTIO_NET_MAX_EVENTS];
        unsigned nr = 0;
        vs_virtio_net_snapshot(n, &c, ev, &nr);
        struct json_object *o = json_object_new_object();
        add_identity(o, n);
        add_u64(o, "rx_frames", c.rx_frames);
        add_u64(o, "rx_bytes", c.rx_bytes);
        add_u64(o, "tx_frames", c.tx_frames);
        add_u64(o, "tx_bytes", c.tx_bytes);
        add_u64(o, "rx_dropped", c.rx_dropped);
        add_u64(o, "tx_dropped", c.tx_dropped);
        add_u64(o, "rx_discarded", c.rx_discarded);
        add_u64(o, "announce_acks", c.announce_acks);
        struct json_object *a = json_object_new_array();
        for (unsigned k = 0; k < nr; k++)
            json_object_array_add(a, event_json(&ev[k]));
        json_object_object_add(o, "announces", a);
        json_object_array_add(nics, o);
    }
    return nics;
}

void vm_nics_note_announces(struct vs_vm *vm, struct vs_migration_stats *s)
{
    s->nr_announces = 0;
    for (unsigned i = 0; vm && i < vm->nr_nics; i++) {
        struct vs_virtio_net_counters c;
        struct vs_net_announce_event ev[VS_VIRTIO_NET_MAX_EVENTS];
        unsigned nr = 0;
        vs_virtio_net_snapshot(vm->nics[i], &c, ev, &nr);
        for (unsigned k = 0; k < nr && s->nr_announces < VS_REPORT_MAX_ANNOUNCES; k++) {
            struct vs_announce_report *r = &s->announces[s->nr_announces++];
            snprintf(r->nic, sizeof(r->nic), "%s", vm->nics[i]->transport->name);
            snprintf(r->tap, sizeof(r->tap), "%s", vm->nics[i]->backend);
            r->round = ev[k].round + 1;
            r->at_ms = (double)ev[k].at_us / 1000;
            r->rarp = ev[k].rarp;
            r->garp = ev[k].garp;
            r->guest = ev[k].guest;
        }
    }
}
