#include "vmm/virtio/virtio_blk.h"
#include "common/error.h"
#include "common/log.h"
#include "vmm/memory.h"

#include <endian.h>
#include <stdio.h>
#include <string.h>

#define DISCARD_MAX_SECTORS (1u << 22)   /* 2 GiB per segment */
#define DISCARD_ALIGN_SECTORS 8           /* 4 KiB: what file systems deallocate */
#define REFUSALS_LOGGED 8                 /* per disk, then debug only */

/* ---- The slots: free -> (taken by the queue) -> submitted -> (I/O) -> done -> free ---- */

static void append(struct vs_blk_slot **head, struct vs_blk_slot **tail, struct vs_blk_slot *s)
{
    s->next = NULL;
    if (*tail)
        (*tail)->next = s;
    else
        *head = s;
    *tail = s;
}

static void release_slot(struct vs_virtio_blk *d, struct vs_blk_slot *s)
{
    s->next = d->free;
    d->free = s;
    d->in_use--;
    pthread_cond_broadcast(&d->cond);
}

static void release_list(struct vs_virtio_blk *d, struct vs_blk_slot **head, struct vs_blk_slot **tail)
{
    while (*head) {
        struct vs_blk_slot *s = *head;
        *head = s->next;
        release_slot(d, s);
    }
    *tail = NULL;
}

/* ---- Serving one request (the I/O thread, or the queue for what needs no file) ---- */

static void count(struct vs_virtio_blk *d, const struct vs_blk_slot *s)
{
    struct vs_virtio_blk_stats *st = &d->stats;
    const struct vs_blk_request *r = &s->req;
    if (r->status != VS_BLK_S_OK) {
        if (r->why[0])
            st->refused++;
        else
            st->io_errors++;
        return;
    }
    switch (r->type) {
    case VS_BLK_T_IN: st->reads++; st->bytes_read += r->data_len; break;
    case VS_BLK_T_OUT: st->writes++; st->bytes_written += r->data_len; break;
    case VS_BLK_T_FLUSH: st->flushes++; break;
    case VS_BLK_T_GET_ID: st->get_ids++; break;
    case VS_BLK_T_DISCARD: st->discards++; break;
    case VS_BLK_T_WRITE_ZEROES: st->write_zeroes++; break;
    default: break;
    }
}

/* What the device wrote into the chain's writable buffers is sent again by a migration. */
static void note_written(struct vs_virtio_blk *d, const struct vs_vq_chain *c)
{
    for (unsigned i = c->nr_read; i < c->nr_segs; i++)
        vs_memory_note_write(d->mem, c->seg[i].gpa, c->seg[i].len);
}

/* A migration copying the disk sends what the guest wrote again (after the write landed). */
static void note_disk_written(struct vs_virtio_blk *d, uint64_t off, uint64_t len)
{
    struct vs_blk_dirty *dirty = atomic_load(&d->dirty);
    if (dirty)
        vs_blk_dirty_mark(dirty, off, len);
}

void vs_virtio_blk_track_writes(struct vs_virtio_blk *d, struct vs_blk_dirty *dirty)
{
    atomic_store(&d->dirty, dirty);
}

static int serve_ranges(struct vs_virtio_blk *d, const struct vs_blk_request *r)
{
    for (unsigned i = 0; i < r->nr_ranges; i++) {
        uint64_t off = r->range[i].sector * VS_BLK_SECTOR;
        uint64_t len = r->range[i].nr_sectors * VS_BLK_SECTOR;
        int rc = r->type == VS_BLK_T_DISCARD
                     ? vs_blk_backend_discard(&d->backend, off, len)
                     : vs_blk_backend_write_zeroes(&d->backend, off, len, r->range[i].unmap);
        note_disk_written(d, off, len);   /* even a failed one may have changed some */
        if (rc)
            return rc;
    }
    return 0;
}

/* The I/O thread: one request against the file (no lock held). */
static void serve_io(struct vs_virtio_blk *d, struct vs_blk_slot *s)
{
    struct vs_blk_request *r = &s->req;
    struct iovec iov[VS_VQ_MAX_SEGS];
    int rc = 0;
    switch (r->type) {
    case VS_BLK_T_IN:
    case VS_BLK_T_OUT: {
        unsigned n = vs_blk_data_iov(&s->chain, r, iov, VS_VQ_MAX_SEGS);
        uint64_t off = r->sector * VS_BLK_SECTOR;
        rc = r->type == VS_BLK_T_IN ? vs_blk_backend_read(&d->backend, iov, n, off)
                                    : vs_blk_backend_write(&d->backend, iov, n, off);
        if (r->type == VS_BLK_T_OUT)
            note_disk_written(d, off, r->data_len);
        if (r->type == VS_BLK_T_IN) {
            note_written(d, &s->chain);
            s->written = rc ? 0 : (uint32_t)r->data_len;
        }
        break;
    }
    case VS_BLK_T_FLUSH: rc = vs_blk_backend_flush(&d->backend); break;
    default: rc = serve_ranges(d, r); break;
    }
    if (rc) {
        vs_warn("disk %s: %s of sector %llu failed: %s", d->backend.spec.path,
                r->type == VS_BLK_T_IN ? "read" : r->type == VS_BLK_T_FLUSH ? "flush" : "write",
                (unsigned long long)r->sector, strerror(-rc));
        r->status = VS_BLK_S_IOERR;
    }
}

static bool needs_file(const struct vs_blk_request *r)
{
    return r->status == VS_BLK_S_OK && r->type != VS_BLK_T_GET_ID &&
           !((r->type == VS_BLK_T_IN || r->type == VS_BLK_T_OUT) && r->data_len == 0);
}

/* Requests answered by the queue itself: refusals, GET_ID, empty reads and writes. */
static void serve_inline(struct vs_virtio_blk *d, struct vs_virtqueue *vq, struct vs_blk_slot *s)
{
    struct vs_blk_request *r = &s->req;
    if (r->status == VS_BLK_S_OK && r->type == VS_BLK_T_GET_ID) {
        size_t n = r->data_len < VS_BLK_ID_BYTES ? (size_t)r->data_len : VS_BLK_ID_BYTES;
        s->written = (uint32_t)vs_vq_chain_write(vq, &s->chain, 0, d->id, n);
    }
    if (r->status != VS_BLK_S_OK && d->stats.refused < REFUSALS_LOGGED)
        vs_warn("disk %s: request refused: %s", d->backend.spec.path, r->why);
    else if (r->status != VS_BLK_S_OK)
        vs_debug("disk %s: request refused: %s", d->backend.spec.path, r->why);
}

/* Return a served chain with its status (transport lock held). */
static void complete(struct vs_virtio_blk *d, struct vs_virtqueue *vq, struct vs_blk_slot *s)
{
    uint8_t status = s->req.status;
    vs_vq_chain_write(vq, &s->chain, vs_blk_status_offset(&s->chain), &status, 1);
    vs_vq_push(vq, s->chain.head, s->written + 1);
    pthread_mutex_lock(&d->lock);
    count(d, s);
    if (s->req.type == VS_BLK_T_OUT || s->req.type == VS_BLK_T_DISCARD ||
        s->req.type == VS_BLK_T_WRITE_ZEROES)
        d->unflushed = true;
    release_slot(d, s);
    pthread_mutex_unlock(&d->lock);
}

/* ---- The queue: take chains while slots are free (transport lock held) ---- */

static struct vs_blk_slot *take_slot(struct vs_virtio_blk *d)
{
    pthread_mutex_lock(&d->lock);
    struct vs_blk_slot *s = d->running && !d->stop ? d->free : NULL;
    if (s) {
        d->free = s->next;
        d->in_use++;
    }
    pthread_mutex_unlock(&d->lock);
    return s;
}

static void submit(struct vs_virtio_blk *d, struct vs_blk_slot *s)
{
    pthread_mutex_lock(&d->lock);
    append(&d->submitted, &d->submitted_tail, s);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void give_back(struct vs_virtio_blk *d, struct vs_blk_slot *s)
{
    pthread_mutex_lock(&d->lock);
    release_slot(d, s);
    pthread_mutex_unlock(&d->lock);
}

static void pump(struct vs_virtio_blk *d, struct vs_virtqueue *vq)
{
    struct vs_blk_slot *s;
    while ((s = take_slot(d))) {
        if (vs_vq_pop(vq, &s->chain) <= 0) {
            give_back(d, s);
            break;
        }
        s->written = 0;
        if (vs_blk_parse(&s->chain, &d->limits, &s->req) < 0) {
            give_back(d, s);
            vs_vq_break(vq, "%s", s->req.why);
            break;
        }
        if (needs_file(&s->req)) {
            submit(d, s);
            continue;
        }
        serve_inline(d, vq, s);
        complete(d, vq, s);
    }
    vs_vq_notify_driver(vq);
}

static bool queue_live(struct vs_virtio_blk *d, struct vs_virtqueue *vq)
{
    return (d->transport->status & VS_VIRTIO_STATUS_DRIVER_OK) && vs_vq_usable(vq);
}

static void blk_queue_notify(void *dev, struct vs_virtio_mmio *t, struct vs_virtqueue *vq)
{
    (void)t;
    pump(dev, vq);
}

/* The I/O thread's completions go back to the driver; then more chains may be taken. */
static void complete_done(struct vs_virtio_blk *d)
{
    struct vs_virtio_mmio *t = d->transport;
    vs_virtio_mmio_lock(t);
    pthread_mutex_lock(&d->lock);
    struct vs_blk_slot *s = d->done;
    d->done = d->done_tail = NULL;
    pthread_mutex_unlock(&d->lock);
    struct vs_virtqueue *vq = &t->vq[0];
    while (s) {
        struct vs_blk_slot *next = s->next;
        complete(d, vq, s);
        s = next;
    }
    if (queue_live(d, vq))
        pump(d, vq);
    vs_virtio_mmio_unlock(t);
}

static void *io_thread(void *arg)
{
    struct vs_virtio_blk *d = arg;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        while (!d->stop && !d->submitted && !d->kick)
            pthread_cond_wait(&d->cond, &d->lock);
        if (d->kick && !d->submitted) {
            d->kick = false;
            pthread_mutex_unlock(&d->lock);
            complete_done(d);     /* takes the chains made available meanwhile */
            pthread_mutex_lock(&d->lock);
            continue;
        }
        struct vs_blk_slot *s = d->submitted;
        if (!s)
            break;   /* stopping, and nothing left */
        d->submitted = s->next;
        if (!d->submitted)
            d->submitted_tail = NULL;
        d->executing++;
        pthread_mutex_unlock(&d->lock);
        serve_io(d, s);
        pthread_mutex_lock(&d->lock);
        d->executing--;
        append(&d->done, &d->done_tail, s);
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        complete_done(d);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* The driver reset the device (transport lock held): requests not yet served are dropped,
 * those being served are waited for, and none is returned. */
static void blk_reset(void *dev)
{
    struct vs_virtio_blk *d = dev;
    pthread_mutex_lock(&d->lock);
    release_list(d, &d->submitted, &d->submitted_tail);
    while (d->executing)
        pthread_cond_wait(&d->cond, &d->lock);
    release_list(d, &d->done, &d->done_tail);
    pthread_mutex_unlock(&d->lock);
}

static void blk_config_read(void *dev, uint32_t offset, uint8_t *data, unsigned size)
{
    const struct vs_virtio_blk *d = dev;
    memcpy(data, d->config + offset, size);   /* the transport checked the range */
}

/* ---- The VM's life ---- */

/* Stop taking chains and wait until every request taken is returned. */
static void drain(struct vs_virtio_blk *d)
{
    pthread_mutex_lock(&d->lock);
    d->running = false;
    while (d->in_use)
        pthread_cond_wait(&d->cond, &d->lock);
    pthread_mutex_unlock(&d->lock);
}

static void flush_if_written(struct vs_virtio_blk *d)
{
    pthread_mutex_lock(&d->lock);
    bool unflushed = d->unflushed;
    d->unflushed = false;
    pthread_mutex_unlock(&d->lock);
    int rc = unflushed ? vs_blk_backend_flush(&d->backend) : 0;
    if (rc)
        vs_warn("disk %s: flushing it failed: %s", d->backend.spec.path, strerror(-rc));
}

void vs_virtio_blk_quiesce(struct vs_virtio_blk *d)
{
    drain(d);
    flush_if_written(d);
}

int vs_virtio_blk_activate(struct vs_virtio_blk *d)
{
    int rc = vs_blk_backend_open_for_writing(&d->backend);
    if (rc)
        return rc;
    /* Chains made available while the device was not taking any: the I/O thread takes
     * them. Not here: reading the queue touches guest RAM, and a post-copy destination
     * activates its disks with the lock of the stream that requests missing pages held
     * (until RESUMED is sent), so a ring on a missing page would wait forever. */
    pthread_mutex_lock(&d->lock);
    d->running = true;
    d->kick = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

void vs_virtio_blk_release(struct vs_virtio_blk *d)
{
    vs_virtio_blk_quiesce(d);
    vs_blk_backend_close(&d->backend);
}

void vs_virtio_blk_stats(struct vs_virtio_blk *d, struct vs_virtio_blk_stats *out)
{
    pthread_mutex_lock(&d->lock);
    *out = d->stats;
    out->in_flight = d->in_use;
    out->running = d->running;
    pthread_mutex_unlock(&d->lock);
    out->open = vs_blk_backend_is_open(&d->backend);
    out->writable = d->backend.writable;
    out->reconnects = __atomic_load_n(&d->backend.nbd_reconnects, __ATOMIC_RELAXED);
}

/* ---- Building the device ---- */

static void put_le16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put_le32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put_le64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

static void build_config(struct vs_virtio_blk *d)
{
    uint8_t *c = d->config;
    const struct vs_blk_limits *l = &d->limits;
    memset(c, 0, sizeof(d->config));
    put_le64(c + VS_VIRTIO_BLK_CFG_CAPACITY, l->capacity);
    put_le32(c + VS_VIRTIO_BLK_CFG_SEG_MAX, VS_VIRTIO_BLK_QUEUE_MAX - 2);
    put_le32(c + VS_VIRTIO_BLK_CFG_BLK_SIZE, VS_BLK_SECTOR);
    put_le16(c + VS_VIRTIO_BLK_CFG_NUM_QUEUES, 1);
    put_le32(c + VS_VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, l->max_discard_sectors);
    put_le32(c + VS_VIRTIO_BLK_CFG_MAX_DISCARD_SEG, l->max_discard_seg);
    put_le32(c + VS_VIRTIO_BLK_CFG_DISCARD_ALIGN, DISCARD_ALIGN_SECTORS);
    put_le32(c + VS_VIRTIO_BLK_CFG_MAX_WZ_SECTORS, l->max_write_zeroes_sectors);
    put_le32(c + VS_VIRTIO_BLK_CFG_MAX_WZ_SEG, l->max_write_zeroes_seg);
    c[VS_VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
}

/* The id the guest reads (GET_ID): the file's name without its directories; for an NBD
 * URI, the export's name (the URI's path, before any query). */
static void default_id(struct vs_virtio_blk *d)
{
    char path[VS_BLK_PATH_MAX];
    snprintf(path, sizeof(path), "%s", d->backend.spec.path);
    if (d->backend.is_nbd)
        path[strcspn(path, "?")] = '\0';
    const char *slash = strrchr(path, '/');
    const char *name = slash && slash[1] ? slash + 1 : path;
    memset(d->id, 0, sizeof(d->id));
    memcpy(d->id, name, strnlen(name, sizeof(d->id)));
}

static void init_ops(struct vs_virtio_blk *d, bool ro)
{
    uint64_t features = VS_VIRTIO_BLK_F_SEG_MAX | VS_VIRTIO_BLK_F_BLK_SIZE | VS_VIRTIO_BLK_F_FLUSH;
    features |= ro ? VS_VIRTIO_BLK_F_RO : VS_VIRTIO_BLK_F_DISCARD | VS_VIRTIO_BLK_F_WRITE_ZEROES;
    d->ops = (struct vs_virtio_device_ops){
        .name = "virtio-blk",
        .device_id = VS_VIRTIO_ID_BLOCK,
        .features = features,
        .nr_queues = 1,
        .queue_max = VS_VIRTIO_BLK_QUEUE_MAX,
        .config_size = VS_VIRTIO_BLK_CONFIG_BYTES,
        .config_read = blk_config_read,
        .queue_notify = blk_queue_notify,
        .reset = blk_reset,
        .vmstate = &vs_virtio_blk_vmstate,
    };
}

int vs_virtio_blk_open(struct vs_virtio_blk *d, const char *spec, bool incoming,
                       struct vs_memory *mem)
{
    memset(d, 0, sizeof(*d));
    d->backend.fd = -1;
    struct vs_blk_spec s;
    int rc = vs_blk_spec_parse(spec, &s);
    if (!rc)
        rc = vs_blk_backend_open(&d->backend, &s, !incoming);
    if (rc)
        return rc;
    d->mem = mem;
    d->limits = (struct vs_blk_limits){
        .capacity = d->backend.size / VS_BLK_SECTOR, .ro = s.ro,
        .max_discard_sectors = DISCARD_MAX_SECTORS, .max_discard_seg = VS_BLK_MAX_RANGES,
        .max_write_zeroes_sectors = DISCARD_MAX_SECTORS, .max_write_zeroes_seg = VS_BLK_MAX_RANGES,
    };
    build_config(d);
    default_id(d);
    init_ops(d, s.ro);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->running = !incoming;
    for (unsigned i = VS_VIRTIO_BLK_MAX_INFLIGHT; i-- > 0;) {
        d->slots[i].next = d->free;
        d->free = &d->slots[i];
    }
    return 0;
}

int vs_virtio_blk_start(struct vs_virtio_blk *d, struct vs_virtio_mmio *transport)
{
    d->transport = transport;
    int err = pthread_create(&d->thread, NULL, io_thread, d);
    if (err)
        return vs_fail(err, "disk %s: cannot start its I/O thread: %s", d->backend.spec.path,
                       strerror(err));
    d->thread_started = true;
    pthread_setname_np(d->thread, "disk-io");
    return 0;
}

void vs_virtio_blk_close(struct vs_virtio_blk *d)
{
    if (d->thread_started) {
        drain(d);
        pthread_mutex_lock(&d->lock);
        d->stop = true;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
        d->thread_started = false;
    }
    flush_if_written(d);
    vs_blk_backend_close(&d->backend);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
}

/* ---- Migration: the section "virtio-blk" ---- */

#define FIELD(member) VS_VMSTATE_FIELD(struct vs_virtio_blk_record, member, 1)
static const struct vs_vmstate_field record_fields[] = {
    FIELD(capacity), FIELD(ro), FIELD(in_flight), FIELD(id), FIELD(pad),
};
#undef FIELD

static void *record_of(void *opaque)
{
    return &((struct vs_virtio_blk *)opaque)->rec;
}

static int save_record(void *opaque)
{
    struct vs_virtio_blk *d = opaque;
    struct vs_virtio_blk_record *r = &d->rec;
    pthread_mutex_lock(&d->lock);
    unsigned in_use = d->in_use;
    pthread_mutex_unlock(&d->lock);
    if (in_use)
        return vs_fail(EBUSY, "disk %s: %u requests are in flight; its state is saved only "
                       "once the VM is paused (which completes them)", d->backend.spec.path,
                       in_use);
    memset(r, 0, sizeof(*r));
    r->capacity = d->limits.capacity;
    r->ro = d->limits.ro;
    memcpy(r->id, d->id, sizeof(r->id));
    return 0;
}

static int load_record(void *opaque, uint32_t version)
{
    struct vs_virtio_blk *d = opaque;
    const struct vs_virtio_blk_record *r = &d->rec;
    (void)version;
    if (r->in_flight || r->pad || r->ro > 1)
        return vs_fail(EINVAL, "disk %s: the saved state has %u requests in flight (or "
                       "undefined fields set); a source drains its disks before saving",
                       d->backend.spec.path, r->in_flight);
    if (r->capacity != d->limits.capacity || r->ro != d->limits.ro)
        return vs_fail(EINVAL, "disk %s has %llu sectors%s here, the source's disk %llu%s: "
                       "give the destination the same disk", d->backend.spec.path,
                       (unsigned long long)d->limits.capacity, d->limits.ro ? " (ro)" : "",
                       (unsigned long long)r->capacity, r->ro ? " (ro)" : "");
    memcpy(d->id, r->id, sizeof(d->id));
    return 0;
}

const struct vs_vmstate vs_virtio_blk_vmstate = {
    .name = "virtio-blk",
    .version = 1,
    .min_version = 1,
    .fields = record_fields,
    .nr_fields = sizeof(record_fields) / sizeof(record_fields[0]),
    .record = record_of,
    .pre_save = save_record,
    .post_load = load_record,
};
