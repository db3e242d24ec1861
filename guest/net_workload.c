#include "net_workload.h"
#include "fmt.h"
#include "guest.h"
#include "serial.h"
#include "telemetry.h"
#include "virtio_net.h"

int vs_net_workload_start(const struct vs_guest_params *p, char *err, unsigned errlen)
{
    struct vs_buf e;
    uint8_t ips[VS_NET_MAX_NICS][4];
    int rc;

    vs_buf_init(&e, err, errlen);
    if (!p->has_ip) {
        vs_buf_puts(&e, "workload=net needs the guest's address: ip=A.B.C.D");
        return -1;
    }
    if (p->workload == VS_WORKLOAD_NET_STREAM && !p->has_peer) {
        vs_buf_puts(&e, "workload=net-stream needs the collector: peer=A.B.C.D:PORT");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        ips[0][i] = p->ip[i];
        ips[1][i] = p->ip2[i];
    }
    rc = vs_net_start((const uint8_t (*)[4])ips, p->has_ip2 ? 2 : 1, err, errlen);
    if (rc == 1)
        vs_buf_puts(&e, "workload=net found no virtio-net device (give vmshift run a --nic)");
    return rc ? -1 : 0;
}

/* The net workload's meaning of vCPU 0's counters (docs/guide.md). */
static void publish(volatile struct vs_cpu_counters *c, const struct vs_net_counts *n)
{
    c->passes = n->rx_frames;
    c->pages_written = n->tx_frames;
    c->pages_checked = n->ping;
    c->max_gap_us = n->udp;
    c->rng_bytes = (uint32_t)n->arp;
    c->generation = n->announces;
    c->errors = n->errors;
}

void vs_net_workload_run(unsigned cpu)
{
    volatile struct vs_cpu_counters *c = vs_telemetry_cpu(cpu);
    struct vs_net_counts n;
    uint64_t last = ~0ull;

    vs_telemetry_set_state(cpu, VS_GUEST_RUNNING);
    vs_puts("vmshift-guest: net: serving");
    for (;;) {
        vs_net_poll();
        vs_net_counts(&n);
        if (n.rx_frames + n.tx_frames + n.errors + n.announces != last) {
            last = n.rx_frames + n.tx_frames + n.errors + n.announces;
            publish(c, &n);
            vs_telemetry_doorbell(cpu);
        }
        /* sti takes effect after hlt has begun: no interrupt slips in between. */
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    }
}
