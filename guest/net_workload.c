#include "net_workload.h"
#include "fmt.h"
#include "guest.h"
#include "serial.h"
#include "telemetry.h"
#include "virtio_net.h"

int vs_net_workload_start(const struct vs_guest_params *p, char *err, unsigned errlen)
{
    struct vs_buf e;
    int rc;

    vs_buf_init(&e, err, errlen);
    if (!p->has_ip) {
        vs_buf_puts(&e, "workload=net needs the guest's address: ip=A.B.C.D");
        return -1;
    }
    rc = vs_net_start(p->ip, err, errlen);
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
