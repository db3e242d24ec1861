#include "vmm/virtio/virtio_mmio.h"
#include "common/error.h"
#include "common/log.h"

#include <endian.h>
#include <stdio.h>
#include <string.h>

#define TRANSPORT_FEATURES (VS_VIRTIO_F_VERSION_1 | VS_VIRTIO_F_INDIRECT_DESC | VS_VIRTIO_F_EVENT_IDX)

/* The line follows InterruptStatus: high while any bit is set. */
static void update_irq(struct vs_virtio_mmio *t, bool force)
{
    bool level = t->interrupt_status != 0;
    if (level == t->irq_level && !force)
        return;
    t->irq_level = level;
    vs_irq_set_level(&t->irq, level);
}

static void raise_interrupt(struct vs_virtio_mmio *t, uint32_t bits)
{
    t->interrupt_status |= bits;
    update_irq(t, false);
}

static void queue_broken(void *ctx, struct vs_virtqueue *vq)
{
    struct vs_virtio_mmio *t = ctx;
    (void)vq;
    t->status |= VS_VIRTIO_STATUS_NEEDS_RESET;
    if (t->status & VS_VIRTIO_STATUS_DRIVER_OK)
        raise_interrupt(t, VS_VIRTIO_INT_CONFIG);
}

static void queue_interrupt(void *ctx, struct vs_virtqueue *vq)
{
    (void)vq;
    raise_interrupt(ctx, VS_VIRTIO_INT_VRING);
}

void vs_virtio_mmio_config_changed(struct vs_virtio_mmio *t)
{
    t->config_generation++;
    if (t->status & VS_VIRTIO_STATUS_DRIVER_OK)
        raise_interrupt(t, VS_VIRTIO_INT_CONFIG);
}

static void apply_queue_features(struct vs_virtio_mmio *t)
{
    for (unsigned i = 0; i < t->ops->nr_queues; i++) {
        t->vq[i].event_idx = t->driver_features & VS_VIRTIO_F_EVENT_IDX;
        t->vq[i].indirect = t->driver_features & VS_VIRTIO_F_INDIRECT_DESC;
    }
}

static void reset_device(struct vs_virtio_mmio *t)
{
    t->driver_features = 0;
    t->status = 0;
    t->device_features_sel = t->driver_features_sel = t->queue_sel = 0;
    t->interrupt_status = 0;
    for (unsigned i = 0; i < VS_VIRTIO_MAX_QUEUES; i++)
        vs_vq_reset(&t->vq[i]);
    update_irq(t, false);
    if (t->ops->reset)
        t->ops->reset(t->dev);
}

int vs_virtio_mmio_init(struct vs_virtio_mmio *t, const char *name,
                        const struct vs_virtio_device_ops *ops, void *dev, struct vs_memory *mem,
                        struct vs_irq_line irq)
{
    memset(t, 0, sizeof(*t));
    if (ops->nr_queues == 0 || ops->nr_queues > VS_VIRTIO_MAX_QUEUES)
        return vs_fail(EINVAL, "%s: %u virtqueues; a virtio-mmio device has 1 to %u", name,
                       ops->nr_queues, VS_VIRTIO_MAX_QUEUES);
    if (ops->queue_max == 0 || ops->queue_max > VS_VQ_MAX_SIZE ||
        (ops->queue_max & (ops->queue_max - 1)))
        return vs_fail(EINVAL, "%s: queue size %u is not a power of two from 1 to %u", name,
                       ops->queue_max, VS_VQ_MAX_SIZE);
    if (ops->config_size > VS_VIRTIO_CONFIG_MAX)
        return vs_fail(EINVAL, "%s: %u bytes of configuration space; virtio-mmio has room for %u",
                       name, ops->config_size, VS_VIRTIO_CONFIG_MAX);
    pthread_mutex_init(&t->lock, NULL);
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ops = ops;
    t->dev = dev;
    t->mem = mem;
    t->irq = irq;
    t->device_features = ops->features | TRANSPORT_FEATURES;
    struct vs_vq_owner owner = { .on_broken = queue_broken, .on_interrupt = queue_interrupt,
                                 .ctx = t };
    for (unsigned i = 0; i < VS_VIRTIO_MAX_QUEUES; i++)
        vs_vq_init(&t->vq[i], mem, i, owner);
    return 0;
}

void vs_virtio_mmio_destroy(struct vs_virtio_mmio *t)
{
    pthread_mutex_destroy(&t->lock);
}

void vs_virtio_mmio_lock(struct vs_virtio_mmio *t) { pthread_mutex_lock(&t->lock); }
void vs_virtio_mmio_unlock(struct vs_virtio_mmio *t) { pthread_mutex_unlock(&t->lock); }

/* FEATURES_OK: the driver may only take features offered, and must take VERSION_1 (this
 * transport has no legacy interface). */
static bool features_acceptable(struct vs_virtio_mmio *t)
{
    uint64_t f = t->driver_features;
    if (f & ~t->device_features) {
        vs_debug("%s: driver asked for features 0x%llx not offered; FEATURES_OK refused", t->name,
                 (unsigned long long)(f & ~t->device_features));
        return false;
    }
    if (!(f & VS_VIRTIO_F_VERSION_1)) {
        vs_debug("%s: driver did not accept VIRTIO_F_VERSION_1; FEATURES_OK refused", t->name);
        return false;
    }
    return !t->ops->features_ok || t->ops->features_ok(t->dev, f) == 0;
}

static void write_status(struct vs_virtio_mmio *t, uint32_t v)
{
    if (v == 0) {
        reset_device(t);
        return;
    }
    uint32_t old = t->status;
    v = (v | old) & 0xff;   /* bits are only cleared by a reset */
    if ((v & VS_VIRTIO_STATUS_FEATURES_OK) && !(old & VS_VIRTIO_STATUS_FEATURES_OK)) {
        if (features_acceptable(t))
            apply_queue_features(t);
        else
            v &= ~VS_VIRTIO_STATUS_FEATURES_OK;
    }
    t->status = v;
}

static struct vs_virtqueue *selected_queue(struct vs_virtio_mmio *t)
{
    return t->queue_sel < t->ops->nr_queues ? &t->vq[t->queue_sel] : NULL;
}

static void write_queue_ready(struct vs_virtio_mmio *t, struct vs_virtqueue *vq, uint32_t v)
{
    if (!v) {
        vq->ready = false;
        return;
    }
    if (vq->ready)
        return;
    vq->ready = true;
    vq->event_idx = t->driver_features & VS_VIRTIO_F_EVENT_IDX;
    vq->indirect = t->driver_features & VS_VIRTIO_F_INDIRECT_DESC;
    vs_vq_check_layout(vq, t->ops->queue_max);   /* breaks the queue if unusable */
}

static void set_half(uint64_t *field, bool high, uint32_t v)
{
    if (high)
        *field = (*field & 0xffffffffull) | (uint64_t)v << 32;
    else
        *field = (*field & ~0xffffffffull) | v;
}

/* QueueNum and the ring addresses: ignored while the queue is ready (virtio 1.2, 4.2.2.2). */
static void write_queue_setup(struct vs_virtqueue *vq, uint64_t reg, uint32_t v)
{
    if (!vq || vq->ready)
        return;
    switch (reg) {
    case VS_VMMIO_QUEUE_NUM: vq->size = v > 0xffff ? 0 : (uint16_t)v; break;
    case VS_VMMIO_QUEUE_DESC_LOW: case VS_VMMIO_QUEUE_DESC_HIGH:
        set_half(&vq->desc_gpa, reg == VS_VMMIO_QUEUE_DESC_HIGH, v);
        break;
    case VS_VMMIO_QUEUE_DRIVER_LOW: case VS_VMMIO_QUEUE_DRIVER_HIGH:
        set_half(&vq->avail_gpa, reg == VS_VMMIO_QUEUE_DRIVER_HIGH, v);
        break;
    case VS_VMMIO_QUEUE_DEVICE_LOW: case VS_VMMIO_QUEUE_DEVICE_HIGH:
        set_half(&vq->used_gpa, reg == VS_VMMIO_QUEUE_DEVICE_HIGH, v);
        break;
    default: break;
    }
}

static void notify_queue(struct vs_virtio_mmio *t, uint32_t index)
{
    if (index >= t->ops->nr_queues) {
        t->bad_accesses++;
        return;
    }
    struct vs_virtqueue *vq = &t->vq[index];
    if (!(t->status & VS_VIRTIO_STATUS_DRIVER_OK) || !vs_vq_usable(vq))
        return;
    t->ops->queue_notify(t->dev, t, vq);
}

static void write_register(struct vs_virtio_mmio *t, uint64_t reg, uint32_t v)
{
    switch (reg) {
    case VS_VMMIO_DEVICE_FEATURES_SEL: t->device_features_sel = v; break;
    case VS_VMMIO_DRIVER_FEATURES_SEL: t->driver_features_sel = v; break;
    case VS_VMMIO_DRIVER_FEATURES:
        /* Fixed once FEATURES_OK is set; only words 0 and 1 exist. */
        if (!(t->status & VS_VIRTIO_STATUS_FEATURES_OK) && t->driver_features_sel < 2)
            set_half(&t->driver_features, t->driver_features_sel == 1, v);
        break;
    case VS_VMMIO_QUEUE_SEL: t->queue_sel = v; break;
    case VS_VMMIO_QUEUE_READY:
        if (selected_queue(t))
            write_queue_ready(t, selected_queue(t), v);
        break;
    case VS_VMMIO_QUEUE_NOTIFY: notify_queue(t, v); break;
    case VS_VMMIO_INTERRUPT_ACK:
        t->interrupt_status &= ~v;
        update_irq(t, false);
        break;
    case VS_VMMIO_STATUS: write_status(t, v); break;
    case VS_VMMIO_QUEUE_NUM:
    case VS_VMMIO_QUEUE_DESC_LOW: case VS_VMMIO_QUEUE_DESC_HIGH:
    case VS_VMMIO_QUEUE_DRIVER_LOW: case VS_VMMIO_QUEUE_DRIVER_HIGH:
    case VS_VMMIO_QUEUE_DEVICE_LOW: case VS_VMMIO_QUEUE_DEVICE_HIGH:
        write_queue_setup(selected_queue(t), reg, v);
        break;
    default: t->bad_accesses++; break;   /* read-only or unknown; SHMSel: no regions */
    }
}

static uint32_t read_queue_register(struct vs_virtio_mmio *t, uint64_t reg)
{
    struct vs_virtqueue *vq = selected_queue(t);
    if (!vq)
        return 0;   /* QueueNumMax 0: no such queue */
    switch (reg) {
    case VS_VMMIO_QUEUE_NUM_MAX: return t->ops->queue_max;
    case VS_VMMIO_QUEUE_NUM: return vq->size;
    case VS_VMMIO_QUEUE_READY: return vq->ready;
    case VS_VMMIO_QUEUE_DESC_LOW: return (uint32_t)vq->desc_gpa;
    case VS_VMMIO_QUEUE_DESC_HIGH: return (uint32_t)(vq->desc_gpa >> 32);
    case VS_VMMIO_QUEUE_DRIVER_LOW: return (uint32_t)vq->avail_gpa;
    case VS_VMMIO_QUEUE_DRIVER_HIGH: return (uint32_t)(vq->avail_gpa >> 32);
    case VS_VMMIO_QUEUE_DEVICE_LOW: return (uint32_t)vq->used_gpa;
    case VS_VMMIO_QUEUE_DEVICE_HIGH: return (uint32_t)(vq->used_gpa >> 32);
    default: return 0;
    }
}

static uint32_t read_register(struct vs_virtio_mmio *t, uint64_t reg)
{
    switch (reg) {
    case VS_VMMIO_MAGIC: return VS_VIRTIO_MMIO_MAGIC;
    case VS_VMMIO_VERSION: return 2;
    case VS_VMMIO_DEVICE_ID: return t->ops->device_id;
    case VS_VMMIO_VENDOR_ID: return VS_VIRTIO_VENDOR_ID;
    case VS_VMMIO_DEVICE_FEATURES:
        return t->device_features_sel < 2
                   ? (uint32_t)(t->device_features >> (32 * t->device_features_sel)) : 0;
    case VS_VMMIO_INTERRUPT_STATUS: return t->interrupt_status;
    case VS_VMMIO_STATUS: return t->status;
    case VS_VMMIO_CONFIG_GENERATION: return t->config_generation;
    /* No shared memory regions: length and base of every region read as -1. */
    case VS_VMMIO_SHM_LEN_LOW: case VS_VMMIO_SHM_LEN_HIGH:
    case VS_VMMIO_SHM_BASE_LOW: case VS_VMMIO_SHM_BASE_HIGH: return 0xffffffffu;
    case VS_VMMIO_QUEUE_NUM_MAX: case VS_VMMIO_QUEUE_NUM: case VS_VMMIO_QUEUE_READY:
    case VS_VMMIO_QUEUE_DESC_LOW: case VS_VMMIO_QUEUE_DESC_HIGH:
    case VS_VMMIO_QUEUE_DRIVER_LOW: case VS_VMMIO_QUEUE_DRIVER_HIGH:
    case VS_VMMIO_QUEUE_DEVICE_LOW: case VS_VMMIO_QUEUE_DEVICE_HIGH:
        return read_queue_register(t, reg);
    default: return 0;   /* write-only, QueueReset (not offered) and unknown */
    }
}

static void config_access(struct vs_virtio_mmio *t, struct vs_bus_io *io)
{
    uint64_t off = io->offset - VS_VIRTIO_MMIO_CONFIG;
    bool inside = off < t->ops->config_size && io->size <= t->ops->config_size - off;
    if (!inside) {
        t->bad_accesses++;
        if (!io->is_write)
            memset(io->data, 0, io->size);
        return;
    }
    if (io->is_write) {
        if (t->ops->config_write)
            t->ops->config_write(t->dev, (uint32_t)off, io->data, io->size);
    } else if (t->ops->config_read) {
        t->ops->config_read(t->dev, (uint32_t)off, io->data, io->size);
    } else {
        memset(io->data, 0, io->size);
    }
}

void vs_virtio_mmio_io(void *opaque, struct vs_bus_io *io)
{
    struct vs_virtio_mmio *t = opaque;
    if (io->size == 0 || io->size > 8 || io->offset >= VS_VIRTIO_MMIO_SIZE)
        return;
    pthread_mutex_lock(&t->lock);
    if (io->offset >= VS_VIRTIO_MMIO_CONFIG) {
        config_access(t, io);
    } else if (io->size != 4 || io->offset % 4) {
        t->bad_accesses++;   /* registers take aligned 32-bit accesses only */
        if (!io->is_write)
            memset(io->data, 0, io->size);
    } else if (io->is_write) {
        uint32_t v;
        memcpy(&v, io->data, 4);
        write_register(t, io->offset, le32toh(v));
    } else {
        uint32_t v = htole32(read_register(t, io->offset));
        memcpy(io->data, &v, 4);
    }
    pthread_mutex_unlock(&t->lock);
}

/* ---- Migration: the transport and its queues as one section "virtio-mmio" ---- */

#define FIELD(member) VS_VMSTATE_FIELD(struct vs_virtio_mmio_record, member, 1)
static const struct vs_vmstate_field record_fields[] = {
    FIELD(device_id), FIELD(nr_queues), FIELD(driver_features), FIELD(status),
    FIELD(device_features_sel), FIELD(driver_features_sel), FIELD(queue_sel),
    FIELD(interrupt_status), FIELD(config_generation),
    FIELD(queue_desc), FIELD(queue_driver), FIELD(queue_device), FIELD(queue_num),
    FIELD(queue_last_avail_idx), FIELD(queue_used_idx), FIELD(queue_signalled_used),
    FIELD(queue_ready), FIELD(queue_broken), FIELD(queue_signalled_valid),
};
#undef FIELD

static void *record_of(void *opaque)
{
    return &((struct vs_virtio_mmio *)opaque)->rec;
}

static void fill_record(const struct vs_virtio_mmio *t, struct vs_virtio_mmio_record *r)
{
    memset(r, 0, sizeof(*r));
    r->device_id = t->ops->device_id;
    r->nr_queues = t->ops->nr_queues;
    r->driver_features = t->driver_features;
    r->status = t->status;
    r->device_features_sel = t->device_features_sel;
    r->driver_features_sel = t->driver_features_sel;
    r->queue_sel = t->queue_sel;
    r->interrupt_status = t->interrupt_status;
    r->config_generation = t->config_generation;
    for (unsigned i = 0; i < t->ops->nr_queues; i++) {
        const struct vs_virtqueue *vq = &t->vq[i];
        r->queue_desc[i] = vq->desc_gpa;
        r->queue_driver[i] = vq->avail_gpa;
        r->queue_device[i] = vq->used_gpa;
        r->queue_num[i] = vq->size;
        r->queue_last_avail_idx[i] = vq->last_avail_idx;
        r->queue_used_idx[i] = vq->used_idx;
        r->queue_signalled_used[i] = vq->signalled_used;
        r->queue_ready[i] = vq->ready;
        r->queue_broken[i] = vq->broken;
        r->queue_signalled_valid[i] = vq->signalled_valid;
    }
}

static int save_record(void *opaque)
{
    struct vs_virtio_mmio *t = opaque;
    pthread_mutex_lock(&t->lock);
    fill_record(t, &t->rec);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

/* The queue a record describes, on this VM's memory (for checking it before use). */
static void queue_from_record(const struct vs_virtio_mmio_record *r, unsigned i,
                              struct vs_virtqueue *vq)
{
    vq->size = r->queue_num[i];
    vq->desc_gpa = r->queue_desc[i];
    vq->avail_gpa = r->queue_driver[i];
    vq->used_gpa = r->queue_device[i];
    vq->last_avail_idx = r->queue_last_avail_idx[i];
    vq->used_idx = r->queue_used_idx[i];
    vq->signalled_used = r->queue_signalled_used[i];
    vq->ready = r->queue_ready[i];
    vq->broken = r->queue_broken[i];
    vq->signalled_valid = r->queue_signalled_valid[i];
    snprintf(vq->broken_reason, sizeof(vq->broken_reason), "%s",
             vq->broken ? "stopped before the VM migrated" : "");
}

static int check_queue_record(const struct vs_virtio_mmio *t, const struct vs_virtio_mmio_record *r,
                              unsigned i)
{
    struct vs_virtqueue vq = t->vq[i];
    queue_from_record(r, i, &vq);
    char why[sizeof(vq.broken_reason)];
    if (!vq.ready || vq.broken)
        return 0;   /* not in use, or stopped until the driver resets the device */
    if (!vs_vq_layout_ok(&vq, t->ops->queue_max, why, sizeof(why)))
        return vs_fail(EINVAL, "%s: saved queue %u is in use but unusable here: %s", t->name, i, why);
    if ((uint16_t)(vq.last_avail_idx - vq.used_idx) > vq.size)
        return vs_fail(EINVAL, "%s: saved queue %u has taken %u chains but returned %u, more apart "
                       "than its %u entries", t->name, i, vq.last_avail_idx, vq.used_idx, vq.size);
    return 0;
}

/* Everything in a loaded record is checked before any of it is applied. */
static int check_record(struct vs_virtio_mmio *t, const struct vs_virtio_mmio_record *r)
{
    if (r->device_id != t->ops->device_id || r->nr_queues != t->ops->nr_queues)
        return vs_fail(EINVAL, "%s: saved state is of virtio device %u with %u queues, this VM "
                       "has device %u (%s) with %u here; both sides must add the same devices "
                       "in the same order", t->name, r->device_id, r->nr_queues,
                       t->ops->device_id, t->ops->name, t->ops->nr_queues);
    if (r->interrupt_status & ~(uint32_t)(VS_VIRTIO_INT_VRING | VS_VIRTIO_INT_CONFIG))
        return vs_fail(EINVAL, "%s: saved interrupt status 0x%x has undefined bits", t->name,
                       r->interrupt_status);
    if (r->status & ~0xffu)
        return vs_fail(EINVAL, "%s: saved device status 0x%x is not a status byte", t->name,
                       r->status);
    if ((r->status & VS_VIRTIO_STATUS_FEATURES_OK) && (r->driver_features & ~t->device_features))
        return vs_fail(EINVAL, "%s: the guest driver uses features 0x%llx that this vmshift does "
                       "not offer; migrate to a vmshift with the same device features", t->name,
                       (unsigned long long)(r->driver_features & ~t->device_features));
    for (unsigned i = 0; i < t->ops->nr_queues; i++) {
        int rc = check_queue_record(t, r, i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int load_record(void *opaque, uint32_t version)
{
    struct vs_virtio_mmio *t = opaque;
    (void)version;
    pthread_mutex_lock(&t->lock);
    const struct vs_virtio_mmio_record *r = &t->rec;
    int rc = check_record(t, r);
    if (rc == 0 && (r->status & VS_VIRTIO_STATUS_FEATURES_OK) && t->ops->features_ok &&
        t->ops->features_ok(t->dev, r->driver_features) < 0)
        rc = vs_fail_context(-EINVAL, "%s: the device refuses the saved features 0x%llx", t->name,
                             (unsigned long long)r->driver_features);
    if (rc == 0) {
        t->driver_features = r->driver_features;
        t->status = r->status;
        t->device_features_sel = r->device_features_sel;
        t->driver_features_sel = r->driver_features_sel;
        t->queue_sel = r->queue_sel;
        t->interrupt_status = r->interrupt_status;
        t->config_generation = r->config_generation;
        for (unsigned i = 0; i < t->ops->nr_queues; i++)
            queue_from_record(r, i, &t->vq[i]);
        apply_queue_features(t);
        update_irq(t, true);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

const struct vs_vmstate vs_virtio_mmio_vmstate = {
    .name = "virtio-mmio",
    .version = 1,
    .min_version = 1,
    .fields = record_fields,
    .nr_fields = sizeof(record_fields) / sizeof(record_fields[0]),
    .record = record_of,
    .pre_save = save_record,
    .post_load = load_record,
};
