/* The virtio-mmio transport, virtio 1.2 section 4.2 ("version 2" registers, no legacy):
 * one 0x200-byte MMIO window per device with the register file at 0x000-0x0ff and the
 * device's configuration space from 0x100, one level-triggered interrupt line (high while
 * InterruptStatus is not 0), and the device's split virtqueues (virtqueue.h).
 *
 * A device (virtio_rng.c, virtio-net, virtio-blk) fills a struct vs_virtio_device_ops and
 * never sees registers: the transport negotiates features, sets queues up, forwards
 * QueueNotify to ops->queue_notify, and resets. All transport and queue state is guarded by
 * the transport's lock, which is held around every ops callback; a device that completes
 * requests from another thread takes it with vs_virtio_mmio_lock().
 *
 * Migration: the transport and every queue are one vs_vmstate section "virtio-mmio"
 * (struct vs_virtio_mmio_record below); a device with state of its own adds its own
 * section (ops->vmstate), registered right after the transport's.
 *
 * Adding a device to a VM (one line where the VM creates its devices):
 *     vs_virtio_rng_create(&rng, &(struct vs_virtio_mmio_params){ .bus = ..., .base = ...,
 *                          .irq = ..., .mem = ..., .vmstate = ..., .instance = N });
 * and the guest learns about it the usual way for virtio-mmio (kernel command line
 * "virtio_mmio.device=0x200@0xBASE:IRQ", or a device tree / ACPI entry). */
#ifndef VS_VIRTIO_MMIO_H
#define VS_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/irq.h"
#include "vmm/virtio/virtqueue.h"
#include "vmm/vmstate.h"

#define VS_VIRTIO_MMIO_SIZE 0x200
#define VS_VIRTIO_MMIO_CONFIG 0x100          /* device configuration space starts here */
#define VS_VIRTIO_CONFIG_MAX (VS_VIRTIO_MMIO_SIZE - VS_VIRTIO_MMIO_CONFIG)
#define VS_VIRTIO_MAX_QUEUES 8              /* sizes the migration record: changing it
                                                changes the "virtio-mmio" section */
#define VS_VIRTIO_MMIO_MAGIC 0x74726976u     /* "virt" */
#define VS_VIRTIO_VENDOR_ID 0x53564d56u      /* "VMVS": vmshift's vendor id */

/* Device status bits (virtio 1.2, 2.1). */
#define VS_VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VS_VIRTIO_STATUS_DRIVER 2u
#define VS_VIRTIO_STATUS_DRIVER_OK 4u
#define VS_VIRTIO_STATUS_FEATURES_OK 8u
#define VS_VIRTIO_STATUS_NEEDS_RESET 64u
#define VS_VIRTIO_STATUS_FAILED 128u

/* InterruptStatus bits. */
#define VS_VIRTIO_INT_VRING 1u     /* used buffer notification */
#define VS_VIRTIO_INT_CONFIG 2u    /* configuration change notification */

/* Transport feature bits (virtio 1.2, 6) the transport itself offers to every device. */
#define VS_VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VS_VIRTIO_F_EVENT_IDX (1ull << 29)
#define VS_VIRTIO_F_VERSION_1 (1ull << 32)

/* Register offsets. */
enum vs_virtio_mmio_reg {
    VS_VMMIO_MAGIC = 0x000, VS_VMMIO_VERSION = 0x004, VS_VMMIO_DEVICE_ID = 0x008,
    VS_VMMIO_VENDOR_ID = 0x00c, VS_VMMIO_DEVICE_FEATURES = 0x010,
    VS_VMMIO_DEVICE_FEATURES_SEL = 0x014, VS_VMMIO_DRIVER_FEATURES = 0x020,
    VS_VMMIO_DRIVER_FEATURES_SEL = 0x024, VS_VMMIO_QUEUE_SEL = 0x030,
    VS_VMMIO_QUEUE_NUM_MAX = 0x034, VS_VMMIO_QUEUE_NUM = 0x038, VS_VMMIO_QUEUE_READY = 0x044,
    VS_VMMIO_QUEUE_NOTIFY = 0x050, VS_VMMIO_INTERRUPT_STATUS = 0x060,
    VS_VMMIO_INTERRUPT_ACK = 0x064, VS_VMMIO_STATUS = 0x070,
    VS_VMMIO_QUEUE_DESC_LOW = 0x080, VS_VMMIO_QUEUE_DESC_HIGH = 0x084,
    VS_VMMIO_QUEUE_DRIVER_LOW = 0x090, VS_VMMIO_QUEUE_DRIVER_HIGH = 0x094,
    VS_VMMIO_QUEUE_DEVICE_LOW = 0x0a0, VS_VMMIO_QUEUE_DEVICE_HIGH = 0x0a4,
    VS_VMMIO_SHM_SEL = 0x0ac, VS_VMMIO_SHM_LEN_LOW = 0x0b0, VS_VMMIO_SHM_LEN_HIGH = 0x0b4,
    VS_VMMIO_SHM_BASE_LOW = 0x0b8, VS_VMMIO_SHM_BASE_HIGH = 0x0bc,
    VS_VMMIO_QUEUE_RESET = 0x0c0, VS_VMMIO_CONFIG_GENERATION = 0x0fc,
};

struct vs_virtio_mmio;

/* What a virtio device implements. `dev` is the pointer given at creation. Every callback
 * runs with the transport's lock held. */
struct vs_virtio_device_ops {
    const char *name;             /* "virtio-rng": messages, and the device's state section */
    uint32_t device_id;           /* virtio 1.2, 5: 1 net, 2 block, 4 entropy, ... */
    uint64_t features;            /* device-specific feature bits offered (the transport adds
                                     VERSION_1, INDIRECT_DESC and EVENT_IDX) */
    unsigned nr_queues;           /* 1..VS_VIRTIO_MAX_QUEUES */
    uint16_t queue_max;           /* QueueNumMax of each queue: a power of two <= 32768 */
    uint32_t config_size;         /* bytes of configuration space, <= VS_VIRTIO_CONFIG_MAX */
    /* Configuration space accesses inside [0, config_size) (may be NULL: reads 0). */
    void (*config_read)(void *dev, uint32_t offset, uint8_t *data, unsigned size);
    void (*config_write)(void *dev, uint32_t offset, const uint8_t *data, unsigned size);
    /* The driver accepted `features` (FEATURES_OK): 0, or <0 to refuse (may be NULL). */
    int (*features_ok)(void *dev, uint64_t features);
    /* The driver made buffers available on queue `vq` (ready, not broken, DRIVER_OK). */
    void (*queue_notify)(void *dev, struct vs_virtio_mmio *t, struct vs_virtqueue *vq);
    /* The driver reset the device: forget requests and device state (may be NULL). */
    void (*reset)(void *dev);
    /* Optional state of the device's own, saved in a section of its own after the
     * transport's (NULL: none); its record/pre_save/post_load get `dev`. */
    const struct vs_vmstate *vmstate;
};

/* The migratable state of the transport and its queues, one vs_vmstate section
 * "virtio-mmio" (see vs_virtio_mmio_vmstate). Per-queue fields are arrays indexed by
 * queue number; queues the device does not have stay 0. */
struct vs_virtio_mmio_record {
    uint32_t device_id;              /* checked on load: the same kind of device */
    uint32_t nr_queues;              /* checked on load */
    uint64_t driver_features;        /* what the driver wrote (accepted if FEATURES_OK) */
    uint32_t status;
    uint32_t device_features_sel, driver_features_sel, queue_sel;
    uint32_t interrupt_status;
    uint32_t config_generation;
    uint64_t queue_desc[VS_VIRTIO_MAX_QUEUES];
    uint64_t queue_driver[VS_VIRTIO_MAX_QUEUES];
    uint64_t queue_device[VS_VIRTIO_MAX_QUEUES];
    uint16_t queue_num[VS_VIRTIO_MAX_QUEUES];
    uint16_t queue_last_avail_idx[VS_VIRTIO_MAX_QUEUES];  /* where the device resumes */
    uint16_t queue_used_idx[VS_VIRTIO_MAX_QUEUES];
    uint16_t queue_signalled_used[VS_VIRTIO_MAX_QUEUES];
    uint8_t queue_ready[VS_VIRTIO_MAX_QUEUES];
    uint8_t queue_broken[VS_VIRTIO_MAX_QUEUES];
    uint8_t queue_signalled_valid[VS_VIRTIO_MAX_QUEUES];
};

struct vs_virtio_mmio {
    pthread_mutex_t lock;
    char name[24];                   /* "virtio-rng0": bus range and messages */
    const struct vs_virtio_device_ops *ops;
    void *dev;
    struct vs_memory *mem;
    struct vs_irq_line irq;
    bool irq_level;                  /* what the line was last set to */
    uint64_t device_features;        /* ops->features plus the transport's */
    uint64_t driver_features;
    uint32_t status;
    uint32_t device_features_sel, driver_features_sel, queue_sel;
    uint32_t interrupt_status;
    uint32_t config_generation;
    uint64_t bad_accesses;           /* unaligned, wrong-size or unknown register accesses */
    struct vs_virtqueue vq[VS_VIRTIO_MAX_QUEUES];
    struct vs_virtio_mmio_record rec;   /* filled by pre_save, read by post_load */
};

/* Where a VM puts a device. */
struct vs_virtio_mmio_params {
    struct vs_bus *bus;                       /* NULL: not put on a bus (tests) */
    uint64_t base;                            /* VS_VIRTIO_MMIO_SIZE bytes of MMIO space */
    struct vs_irq_line irq;
    struct vs_memory *mem;
    struct vs_vmstate_registry *vmstate;      /* NULL: not migrated (tests) */
    uint32_t instance;                        /* this device's number among the VM's virtio
                                                 devices: its state sections' instance */
};

/* Initialise a transport in place for `ops`/`dev` (no bus, no state registration). */
int vs_virtio_mmio_init(struct vs_virtio_mmio *t, const char *name,
                        const struct vs_virtio_device_ops *ops, void *dev, struct vs_memory *mem,
                        struct vs_irq_line irq);
void vs_virtio_mmio_destroy(struct vs_virtio_mmio *t);

/* Allocate and initialise a transport, claim [base, base+0x200) of MMIO space on p->bus
 * and register its state (and the device's, if any) in p->vmstate. The name is
 * "<ops->name><instance>". Free with vs_virtio_mmio_free(). (virtio_devices.c) */
int vs_virtio_mmio_create(struct vs_virtio_mmio **out, const struct vs_virtio_mmio_params *p,
                          const struct vs_virtio_device_ops *ops, void *dev);
void vs_virtio_mmio_free(struct vs_virtio_mmio *t);

/* The bus handler: one register or configuration access (any width; registers want
 * aligned 32-bit accesses, others read as 0 and are counted). `opaque` is the transport. */
void vs_virtio_mmio_io(void *opaque, struct vs_bus_io *io);

/* For device code running outside a callback. */
void vs_virtio_mmio_lock(struct vs_virtio_mmio *t);
void vs_virtio_mmio_unlock(struct vs_virtio_mmio *t);
/* The device changed its configuration space: bump ConfigGeneration and interrupt. Lock held. */
void vs_virtio_mmio_config_changed(struct vs_virtio_mmio *t);
/* Negotiated features (valid once FEATURES_OK is set). */
static inline uint64_t vs_virtio_mmio_features(const struct vs_virtio_mmio *t)
{
    return t->driver_features;
}

/* The transport's state section (one per device instance). */
extern const struct vs_vmstate vs_virtio_mmio_vmstate;

#endif
