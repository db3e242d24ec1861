#include "vmm/devices/pvport.h"
#include "common/clock.h"
#include "common/log.h"

#include <string.h>

#define MAX_STALL_US 1000000u   /* a single stall request is capped at 1 s */

void vs_pvport_init(struct vs_pvport *p, const struct vs_memory *mem)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    p->mem = mem;
    atomic_store(&p->rate_override, VS_RATE_NO_OVERRIDE);
}

void vs_pvport_destroy(struct vs_pvport *p)
{
    pthread_mutex_destroy(&p->lock);
}

uint64_t vs_pvport_clock_us(struct vs_pvport *p)
{
    return (uint64_t)((int64_t)(vs_clock_ns() / 1000) + p->clock_offset_us);
}

/* Copy the header and vCPU `vcpu`'s record: only that vCPU writes its record and it is
 * stopped in this exit, so the copy is consistent. Guest RAM is read without the lock
 * held: on a post-copy destination the read may wait for the page to arrive, and status
 * requests (which take the lock) must not wait with it. */
static void take_snapshot(struct vs_pvport *p, unsigned vcpu)
{
    pthread_mutex_lock(&p->lock);
    bool registered = p->registered;
    uint64_t gpa = p->telemetry_gpa;
    pthread_mutex_unlock(&p->lock);
    if (!registered || vcpu >= VS_MAX_VCPUS)
        return;
    const struct vs_telemetry *t = vs_memory_gpa_ptr(p->mem, gpa, 4096);
    if (!t)
        return; /* checked at registration; a migrated-in address may still be bad */
    struct vs_telemetry head;
    struct vs_cpu_counters mine;
    memcpy(&head, t, offsetof(struct vs_telemetry, cpu));
    mine = t->cpu[vcpu];
    if (head.magic != VS_TELEMETRY_MAGIC || head.version != VS_TELEMETRY_VERSION)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->registered && p->telemetry_gpa == gpa) {
        memcpy(&p->snapshot, &head, offsetof(struct vs_telemetry, cpu));
        p->snapshot.cpu[vcpu] = mine;
        p->doorbells++;
    }
    pthread_mutex_unlock(&p->lock);
}

static void do_register(struct vs_pvport *p, uint32_t gpa)
{
    if (gpa % 4096 || !vs_memory_gpa_ptr(p->mem, gpa, 4096)) {
        vs_warn("guest registered telemetry at 0x%x, which is not a page inside RAM; ignored", gpa);
        p->registered = false;
        return;
    }
    p->registered = true;
    p->telemetry_gpa = gpa;
    memset(&p->snapshot, 0, sizeof(p->snapshot));
}

void vs_pvport_io(struct vs_pvport *p, unsigned vcpu, uint16_t port, bool is_write,
                  uint32_t *value, uint64_t *stall_us)
{
    *stall_us = 0;
    if (!is_write) {
        switch (port) {
        case VS_PVPORT_MAGIC: *value = VS_PVPORT_MAGIC_VALUE; break;
        case VS_PVPORT_CLOCK_US: *value = (uint32_t)vs_pvport_clock_us(p); break;
        case VS_PVPORT_RATE: *value = atomic_load(&p->rate_override); break;
        default: *value = 0xffffffff; break;
        }
        return;
    }
    switch (port) {
    case VS_PVPORT_REGISTER:
        pthread_mutex_lock(&p->lock);
        do_register(p, *value);
        pthread_mutex_unlock(&p->lock);
        break;
    case VS_PVPORT_DOORBELL:
        take_snapshot(p, vcpu); /* the exiting vCPU, whatever index the guest wrote */
        break;
    case VS_PVPORT_SLEEP_US:
        *stall_us = *value < MAX_STALL_US ? *value : MAX_STALL_US;
        break;
    default:
        break;
    }
}

void vs_pvport_view(struct vs_pvport *p, struct vs_pvport_view *out)
{
    pthread_mutex_lock(&p->lock);
    out->registered = p->registered;
    out->telemetry_gpa = p->telemetry_gpa;
    out->doorbells = p->doorbells;
    out->t = p->snapshot;
    pthread_mutex_unlock(&p->lock);
    out->rate_override = atomic_load(&p->rate_override);
}

void vs_pvport_set_rate(struct vs_pvport *p, uint32_t rate)
{
    atomic_store(&p->rate_override, rate);
}
