/* The net workload: vCPU 0 drives the first virtio-net NIC (virtio_net.h) at the address
 * ip= gives, answering ARP, ping and UDP echo, and waits for its interrupts in sti; hlt.
 * The other vCPUs idle. */
#ifndef VS_GUEST_NET_WORKLOAD_H
#define VS_GUEST_NET_WORKLOAD_H

#include "params.h"

/* vCPU 0 at boot, after vs_platform_setup. Returns 0, or -1 with a message in err. */
int vs_net_workload_start(const struct vs_guest_params *p, char *err, unsigned errlen);

/* vCPU 0: serve the NIC forever, publishing its counters in the telemetry page. */
void vs_net_workload_run(unsigned cpu) __attribute__((noreturn));

#endif
