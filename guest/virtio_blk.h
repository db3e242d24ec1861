/* A virtio-blk driver (virtio 1.2, 5.2) for the disk workload on a version 2 virtio-mmio
 * device: VERSION_1 plus RO, BLK_SIZE, SEG_MAX and FLUSH when offered; one split queue;
 * one request at a time (header, data, status: three descriptors), polled for on the used
 * ring with interrupts suppressed (an emulated interrupt costs milliseconds here). Every
 * used entry is checked (virtq.h) and so is the device's status. vCPU 0 only. */
#ifndef VS_GUEST_VIRTIO_BLK_H
#define VS_GUEST_VIRTIO_BLK_H

#include <stdint.h>

#define VS_BLK_T_IN 0u
#define VS_BLK_T_OUT 1u
#define VS_BLK_T_FLUSH 4u
#define VS_BLK_T_GET_ID 8u
#define VS_BLK_S_OK 0
#define VS_BLK_S_IOERR 1
#define VS_BLK_S_UNSUPP 2
#define VS_BLK_ID_BYTES 20

struct vs_blk_info {
    uint64_t base;          /* the device's registers */
    uint64_t capacity;      /* 512-byte sectors */
    int ro;                 /* the device offered VIRTIO_BLK_F_RO */
    char id[VS_BLK_ID_BYTES + 1];
};

/* vCPU 0 at boot: find the first block device the probe found and start it. Returns 1 if
 * there is none, 0 once it runs (with *info), or -1 with a message in err. */
int vs_blk_start(struct vs_blk_info *info, char *err, unsigned errlen);

/* One request, waited for: len bytes at buf (guest-physical = virtual) from or to sector.
 * Returns the device's status (VS_BLK_S_*), or -1 with *why when the device broke the
 * protocol (a used entry failing a check, no answer within 60 s, a reset needed): the
 * driver then stops. *us = the time the request took. */
int vs_blk_request(uint32_t type, uint64_t sector, void *buf, uint32_t len, uint32_t *us,
                   const char **why);

#endif
