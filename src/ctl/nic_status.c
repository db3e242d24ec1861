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

static void add_identity(struct json_object *o, const struct vs_virtio_net_view *v)
{
    char mac[18], ip[16];
    json_object_object_add(o, "name", json_object_new_string(v->name));
    json_object_object_add(o, "tap", json_object_new_string(v->tap));
    json_object_object_add(o, "bridge", json_object_new_string(v->bridge));
    json_object_object_add(o, "mac", json_object_new_string(vs_net_mac_string(v->mac, mac,
                                                                              sizeof(mac))));
    json_object_object_add(o, "vlan", json_object_new_int(v->vlan));
    add_u64(o, "rate_bytes_per_second", v->rate);
    if (v->ip_known) {
        snprintf(ip, sizeof(ip), "%u.%u.%u.%u", v->ip[0], v->ip[1], v->ip[2], v->ip[3]);
        json_object_object_add(o, "ip", json_object_new_string(ip));
    }
}

struct json_object *vm_nics_status(struct vs_vm *vm)
{
    struct json_object *nics = json_object_new_array();
    for (unsigned i = 0; i < vm->nr_nics; i++) {
        struct vs_virtio_net_view v;
        vs_virtio_net_view(vm->nics[i], &v);
        struct json_object *o = json_object_new_object();
        add_identity(o, &v);
        add_u64(o, "rx_frames", v.n.rx_frames);
        add_u64(o, "rx_bytes", v.n.rx_bytes);
        add_u64(o, "tx_frames", v.n.tx_frames);
        add_u64(o, "tx_bytes", v.n.tx_bytes);
        add_u64(o, "rx_dropped", v.n.rx_dropped);
        add_u64(o, "tx_dropped", v.n.tx_dropped);
        add_u64(o, "rx_discarded", v.n.rx_discarded);
        add_u64(o, "rx_filtered", v.n.rx_filtered);
        add_u64(o, "rx_throttled", v.n.rx_throttled);
        add_u64(o, "tx_throttled", v.n.tx_throttled);
        add_u64(o, "announce_acks", v.n.announce_acks);
        struct json_object *a = json_object_new_array();
        for (unsigned k = 0; k < v.nr_events; k++)
            json_object_array_add(a, event_json(&v.events[k]));
        json_object_object_add(o, "announces", a);
        json_object_array_add(nics, o);
    }
    return nics;
}

void vm_nics_note_announces(struct vs_vm *vm, struct vs_migration_stats *s)
{
    s->nr_announces = 0;
    for (unsigned i = 0; vm && i < vm->nr_nics; i++) {
        struct vs_virtio_net_view v;
        vs_virtio_net_view(vm->nics[i], &v);
        for (unsigned k = 0; k < v.nr_events && s->nr_announces < VS_REPORT_MAX_ANNOUNCES; k++) {
            struct vs_announce_report *r = &s->announces[s->nr_announces++];
            snprintf(r->nic, sizeof(r->nic), "%s", v.name);
            snprintf(r->tap, sizeof(r->tap), "%s", v.tap);
            r->round = v.events[k].round + 1;
            r->at_ms = (double)v.events[k].at_us / 1000;
            r->rarp = v.events[k].rarp;
            r->garp = v.events[k].garp;
            r->guest = v.events[k].guest;
        }
    }
}
