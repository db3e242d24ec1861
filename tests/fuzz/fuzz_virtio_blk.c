/* Fuzz target: virtio-blk requests (src/vmm/virtio/blk_request.c) read out of a hostile
 * guest's queue and served against a disk (blk_backend.c on a 1 MiB memfd). Everything the
 * guest controls comes from the input:
 *   byte 0     flags: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bits 2-5 log2 of the queue
 *              size (capped at 256)
 *   bytes 1-4  the device's last_avail_idx and used_idx (le16 each)
 *   byte 5     bit 0: the disk is read-only
 *   the rest   the guest's RAM image from address 0 (FUZZ_BLK_RAM bytes, zero beyond),
 *              descriptor table at 0x0, available ring at 0x1000, used ring at 0x1800.
 * Each chain is parsed; a request the parser lets through must lie inside the disk, in
 * whole sectors, with its data inside the chain, and is then really served; every chain
 * gets its status byte and goes back. Guest RAM is a heap block of exactly its size, so
 * ASan catches any access outside it. */
#include "fuzz_common.h"
#include "vmm/memory.h"
#include "vmm/ram_layout.h"
#include "vmm/virtio/blk_backend.h"
#include "vmm/virtio/blk_request.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_BLK_RAM (64u << 10)
#define FUZZ_BLK_DISK (1u << 20)
#define HEADER 6

static struct vs_blk_backend *disk(void)
{
    static struct vs_blk_backend b = { .fd = -1 };
    if (b.fd < 0) {
        b.fd = memfd_create("fuzz-disk", MFD_CLOEXEC);
        if (b.fd < 0 || ftruncate(b.fd, FUZZ_BLK_DISK) < 0)
            abort();
        b.writable = true;
        b.size = FUZZ_BLK_DISK;
    }
    return &b;
}

static void check_served(const struct vs_vq_chain *c, const struct vs_blk_limits *lim,
                         const struct vs_blk_request *r, struct iovec *iov)
{
    if (r->type == VS_BLK_T_IN || r->type == VS_BLK_T_OUT) {
        if (r->data_len % VS_BLK_SECTOR || r->sector > lim->capacity ||
            r->data_len / VS_BLK_SECTOR > lim->capacity - r->sector)
            abort();
        unsigned n = vs_blk_data_iov(c, r, iov, VS_VQ_MAX_SEGS);
        uint64_t sum = 0;
        for (unsigned i = 0; i < n; i++)
            sum += iov[i].iov_len;
        if (sum != r->data_len)
            abort();   /* the data must lie inside the chain, before the status byte */
        if (r->type == VS_BLK_T_OUT && lim->ro)
            abort();
    }
    for (unsigned i = 0; i < r->nr_ranges; i++)
        if (r->range[i].sector > lim->capacity ||
            r->range[i].nr_sectors > lim->capacity - r->range[i].sector)
            abort();
}

static void serve(struct vs_blk_backend *b, const struct vs_blk_request *r, struct iovec *iov,
                  const struct vs_vq_chain *c)
{
    unsigned n = vs_blk_data_iov(c, r, iov, VS_VQ_MAX_SEGS);
    switch (r->type) {
    case VS_BLK_T_IN: vs_blk_backend_read(b, iov, n, r->sector * VS_BLK_SECTOR); break;
    case VS_BLK_T_OUT: vs_blk_backend_write(b, iov, n, r->sector * VS_BLK_SECTOR); break;
    case VS_BLK_T_DISCARD:
    case VS_BLK_T_WRITE_ZEROES:
        for (unsigned i = 0; i < r->nr_ranges; i++) {
            uint64_t off = r->range[i].sector * VS_BLK_SECTOR;
            uint64_t len = r->range[i].nr_sectors * VS_BLK_SECTOR;
            if (r->type == VS_BLK_T_DISCARD)
                vs_blk_backend_discard(b, off, len);
            else
                vs_blk_backend_write_zeroes(b, off, len, r->range[i].unmap);
        }
        break;
    default: break;
    }
}

static void run_queue(struct vs_virtqueue *vq, struct vs_vq_chain *chain, bool ro)
{
    struct vs_blk_limits lim = {
        .capacity = FUZZ_BLK_DISK / VS_BLK_SECTOR, .ro = ro,
        .max_discard_sectors = 1u << 22, .max_discard_seg = VS_BLK_MAX_RANGES,
        .max_write_zeroes_sectors = 1u << 22, .max_write_zeroes_seg = VS_BLK_MAX_RANGES,
    };
    static struct vs_blk_request req;
    static struct iovec iov[VS_VQ_MAX_SEGS];
    for (unsigned n = 0; n <= vq->size; n++) {
        if (vs_vq_pop(vq, chain) <= 0)
            break;
        if (vs_blk_parse(chain, &lim, &req) < 0) {
            vs_vq_break(vq, "%s", req.why);
            break;
        }
        if (req.status == VS_BLK_S_OK) {
            check_served(chain, &lim, &req, iov);
            serve(disk(), &req, iov, chain);
        }
        uint8_t status = req.status;
        if (vs_vq_chain_write(vq, chain, vs_blk_status_offset(chain), &status, 1) != 1)
            abort();   /* the parser promised a status byte */
        if (vs_vq_push(vq, chain->head, 1) < 0)
            break;
        vs_vq_notify_driver(vq);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < HEADER)
        return 0;
    struct vs_memory mem = { .memfd = -1, .size = FUZZ_BLK_RAM };
    vs_ram_layout_init(&mem.layout, FUZZ_BLK_RAM, false);   /* flat: gpa = RAM offset */
    mem.base = calloc(1, FUZZ_BLK_RAM);
    struct vs_vq_chain *chain = malloc(sizeof(*chain));
    if (!mem.base || !chain || vs_memory_track_writes(&mem, true) < 0)
        abort();
    size_t image = size - HEADER < FUZZ_BLK_RAM ? size - HEADER : FUZZ_BLK_RAM;
    memcpy(mem.base, data + HEADER, image);

    struct vs_virtqueue vq;
    vs_vq_init(&vq, &mem, 0, (struct vs_vq_owner){ 0 });
    unsigned log2 = (data[0] >> 2) & 15;
    vq.size = (uint16_t)(1u << (log2 > 8 ? 8 : log2));
    vq.indirect = data[0] & 1;
    vq.event_idx = data[0] & 2;
    vq.desc_gpa = 0x0;
    vq.avail_gpa = 0x1000;
    vq.used_gpa = 0x1800;
    vq.last_avail_idx = (uint16_t)(data[1] | data[2] << 8);
    vq.used_idx = (uint16_t)(data[3] | data[4] << 8);
    vq.ready = true;
    if (vs_vq_check_layout(&vq, 256) == 0)
        run_queue(&vq, chain, data[5] & 1);

    free(mem.written);
    free(mem.base);
    free(chain);
    return 0;
}
