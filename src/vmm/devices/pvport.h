/* The paravirtual control/telemetry port (see include/vmshift/guest_abi.h): the guest
 * registers its telemetry page and rings a doorbell when its counters change; the
 * monitor keeps the last snapshot, serves a clock and stalls, and passes a live dirty-rate
 * override to the guest. */
#ifndef VS_PVPORT_H
#define VS_PVPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "vmshift/guest_abi.h"
#include "vmm/memory.h"

struct vs_bus;
struct vs_vmstate_registry;

/* The migratable state (device "pvport", version 1; docs/device-state.md). */
struct vs_pvport_record {
    uint32_t registered;           /* 0 or 1 */
    uint32_t rate_override;
    uint64_t telemetry_gpa;
    uint64_t doorbells;
    uint64_t clock_us;             /* guest clock at save time */
    struct vs_telemetry snapshot;
};
_Static_assert(sizeof(struct vs_pvport_record) == 2144, "pvport version 1 layout");

struct vs_pvport {
    pthread_mutex_t lock;
    const struct vs_memory *mem;
    bool registered;
    uint64_t telemetry_gpa;
    struct vs_telemetry snapshot;   /* as of the last doorbell of each vCPU */
    uint64_t doorbells;
    int64_t clock_offset_us;        /* guest clock = host monotonic + offset */
    _Atomic uint32_t rate_override; /* VS_RATE_NO_OVERRIDE, 0 = full speed, else pages/s */
    struct vs_pvport_record rec;    /* saved and loaded state (VM paused) */
};

struct vs_pvport_view {             /* a consistent copy for status reports */
    bool registered;
    uint64_t telemetry_gpa;
    uint64_t doorbells;
    uint32_t rate_override;
    struct vs_telemetry t;
};

void vs_pvport_init(struct vs_pvport *p, const struct vs_memory *mem);
void vs_pvport_destroy(struct vs_pvport *p);

/* A 4-byte (or narrower) access from vCPU `vcpu` to port VS_PVPORT_BASE..+VS_PVPORT_SIZE.
 * On a SLEEP write, *stall_us is set to the requested stall (the caller performs it). */
void vs_pvport_io(struct vs_pvport *p, unsigned vcpu, uint16_t port, bool is_write,
                  uint32_t *value, uint64_t *stall_us);

/* Claim ports VS_PVPORT_BASE..+VS_PVPORT_SIZE on the bus and register the state. */
int vs_pvport_attach(struct vs_pvport *p, struct vs_bus *bus, struct vs_vmstate_registry *r);
extern const struct vs_vmstate vs_pvport_vmstate;

void vs_pvport_view(struct vs_pvport *p, struct vs_pvport_view *out);
void vs_pvport_set_rate(struct vs_pvport *p, uint32_t rate);

/* The guest clock value now (microseconds). */
uint64_t vs_pvport_clock_us(struct vs_pvport *p);

#endif
