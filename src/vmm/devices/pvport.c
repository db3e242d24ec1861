#include "vmm/devices/pvport.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "vmm/bus.h"
#include "vmm/vmstate.h"

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

/* A bus access: up to 4 bytes of the port at VS_PVPORT_BASE + offset. */
static void pvport_bus_io(void *dev, struct vs_bus_io *io)
{
    unsigned n = io->size <= 4 ? io->size : 4;
    uint32_t value = 0;
    memcpy(&value, io->data, n);
    vs_pvport_io(dev, io->vcpu, (uint16_t)(VS_PVPORT_BASE + io->offset), io->is_write, &value,
                 &io->stall_us);
    if (!io->is_write) {
        memset(io->data, 0xff, io->size);
        memcpy(io->data, &value, n);
    }
}

/* ---- migratable state ---- */

static void *pvport_record(void *opaque)
{
    return &((struct vs_pvport *)opaque)->rec;
}

static int pvport_pre_save(void *opaque)
{
    struct vs_pvport *p = opaque;
    pthread_mutex_lock(&p->lock);
    p->rec = (struct vs_pvport_record){
        .registered = p->registered, .telemetry_gpa = p->telemetry_gpa,
        .doorbells = p->doorbells, .snapshot = p->snapshot, .clock_us = vs_pvport_clock_us(p),
        .rate_override = atomic_load(&p->rate_override),
    };
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static int pvport_post_load(void *opaque, uint32_t version)
{
    (void)version;
    struct vs_pvport *p = opaque;
    const struct vs_pvport_record *r = &p->rec;
    if (r->registered > 1)
        return vs_fail(EINVAL, "registered is %u, expected 0 or 1", r->registered);
    /* The rule do_register() applies: a whole page of RAM, below 4 GiB (32-bit port). */
    if (r->registered && (r->telemetry_gpa % 4096 || r->telemetry_gpa > UINT32_MAX ||
                          !vs_memory_gpa_ptr(p->mem, r->telemetry_gpa, 4096)))
        return vs_fail(EINVAL, "telemetry page 0x%llx is not a page inside this VM's RAM "
                       "(0x%llx bytes); give the destination the source's memory size",
                       (unsigned long long)r->telemetry_gpa, (unsigned long long)p->mem->size);
    pthread_mutex_lock(&p->lock);
    p->registered = r->registered;
    p->telemetry_gpa = r->telemetry_gpa;
    p->doorbells = r->doorbells;
    p->snapshot = r->snapshot;
    /* guest clock = host monotonic + offset: continue from the value at save time */
    p->clock_offset_us = (int64_t)r->clock_us - (int64_t)(vs_clock_ns() / 1000);
    pthread_mutex_unlock(&p->lock);
    atomic_store(&p->rate_override, r->rate_override);
    return 0;
}

static const struct vs_vmstate_field pvport_fields[] = {
    VS_VMSTATE_FIELD(struct vs_pvport_record, registered, 1),
    VS_VMSTATE_FIELD(struct vs_pvport_record, rate_override, 1),
    VS_VMSTATE_FIELD(struct vs_pvport_record, telemetry_gpa, 1),
    VS_VMSTATE_FIELD(struct vs_pvport_record, doorbells, 1),
    VS_VMSTATE_FIELD(struct vs_pvport_record, clock_us, 1),
    VS_VMSTATE_FIELD(struct vs_pvport_record, snapshot, 1),
};

const struct vs_vmstate vs_pvport_vmstate = {
    .name = "pvport", .version = 1, .min_version = 1,
    .fields = pvport_fields, .nr_fields = sizeof(pvport_fields) / sizeof(pvport_fields[0]),
    .record = pvport_record, .pre_save = pvport_pre_save, .post_load = pvport_post_load,
};

int vs_pvport_attach(struct vs_pvport *p, struct vs_bus *bus, struct vs_vmstate_registry *r)
{
    int rc = vs_bus_register(bus, VS_BUS_PIO, VS_PVPORT_BASE, VS_PVPORT_SIZE, "pvport",
                             pvport_bus_io, p);
    return rc ? rc : vs_vmstate_register(r, &vs_pvport_vmstate, 0, p);
}
