/* The vmshift paravirtual port (see VS_PVPORT_* in guest_abi.h). Callers check
 * vs_guest.pvport first: under QEMU the port does not exist. */
#ifndef VS_GUEST_PVPORT_H
#define VS_GUEST_PVPORT_H

#include <stdint.h>
#include "io.h"
#include "vmshift/guest_abi.h"

/* An unassigned port reads as all ones under QEMU, never as the magic. */
static inline int vs_pvport_detect(void)
{
    return inl(VS_PVPORT_MAGIC) == VS_PVPORT_MAGIC_VALUE;
}

static inline void vs_pvport_register(uint32_t telemetry_paddr)
{
    outl(VS_PVPORT_REGISTER, telemetry_paddr);
}

static inline void vs_pvport_doorbell(unsigned cpu)
{
    outl(VS_PVPORT_DOORBELL, cpu);
}

static inline uint32_t vs_pvport_clock_us(void)
{
    return inl(VS_PVPORT_CLOCK_US);
}

static inline void vs_pvport_sleep_us(uint32_t us)
{
    outl(VS_PVPORT_SLEEP_US, us);
}

static inline uint32_t vs_pvport_rate(void)
{
    return inl(VS_PVPORT_RATE);
}

#endif
