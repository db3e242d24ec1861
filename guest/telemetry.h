/* The telemetry page the monitor reads (struct vs_telemetry in guest_abi.h). vCPU 0
 * writes the header; each vCPU writes only its own counters record. */
#ifndef VS_GUEST_TELEMETRY_H
#define VS_GUEST_TELEMETRY_H

#include "vmshift/guest_abi.h"
#include "params.h"

/* vCPU 0, first thing: magic and version, then registration with the pvport. */
void vs_telemetry_boot(void);
/* vCPU 0, once the parameters are known. */
void vs_telemetry_describe(const struct vs_guest_params *p);

/* vCPU 0, after the virtio-mmio probe. */
void vs_telemetry_virtio(uint32_t slots, uint32_t devices, uint32_t ids);

volatile struct vs_cpu_counters *vs_telemetry_cpu(unsigned cpu);
/* Tell the monitor that cpu's counters changed (no-op without the pvport). */
void vs_telemetry_doorbell(unsigned cpu);
void vs_telemetry_set_state(unsigned cpu, uint32_t state);

#endif
