#include "telemetry.h"
#include "guest.h"
#include "pvport.h"

/* A page of its own, so the monitor can map or copy exactly that page. The kernel is
 * linked at 1 MiB, so the address fits the 32-bit register port. */
static union {
    struct vs_telemetry t;
    uint8_t page[4096];
} telemetry_page __attribute__((aligned(4096)));

#define TEL ((volatile struct vs_telemetry *)&telemetry_page.t)

void vs_telemetry_boot(void)
{
    TEL->magic = VS_TELEMETRY_MAGIC;
    TEL->version = VS_TELEMETRY_VERSION;
    if (vs_guest.pvport)
        vs_pvport_register((uint32_t)(uintptr_t)&telemetry_page);
}

void vs_telemetry_describe(const struct vs_guest_params *p)
{
    TEL->workload = p->workload;
    TEL->nr_cpus = p->cpus;
    TEL->fill = p->fill;
    TEL->range_start = p->start;
    TEL->range_pages = p->size / 4096;
    TEL->rate = p->rate;
    TEL->seed = p->seed;
}

void vs_telemetry_virtio(uint32_t slots, uint32_t devices, uint32_t ids)
{
    TEL->virtio_slots = (uint16_t)slots;
    TEL->virtio_devices = (uint16_t)devices;
    TEL->virtio_ids = ids;
}

volatile struct vs_cpu_counters *vs_telemetry_cpu(unsigned cpu)
{
    return &TEL->cpu[cpu];
}

void vs_telemetry_doorbell(unsigned cpu)
{
    if (vs_guest.pvport)
        vs_pvport_doorbell(cpu);
}

void vs_telemetry_set_state(unsigned cpu, uint32_t state)
{
    TEL->cpu[cpu].state = state;
    vs_telemetry_doorbell(cpu);
}
