/* Fuzz target: the device side of a split virtqueue (src/vmm/virtio/virtqueue.c) serving a
 * hostile guest. Everything the guest controls comes from the input:
 *   byte 0     flags: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bits 2-5 log2 of the queue
 *              size (capped at 256)
 *   bytes 1-4  the device's last_avail_idx and used_idx (le16 each), as after a migration
 *   the rest   the guest's RAM image from address 0 (FUZZ_VQ_RAM bytes, zero beyond),
 *              with the descriptor table at 0x0, the available ring at 0x1000 and the
 *              used ring at 0x1800.
 * The device takes every chain, reads its readable bytes, fills its writable ones and
 * returns it, until the ring is empty or the queue broken. Guest RAM is a heap block of
 * exactly its size, so ASan catches any access outside it. */
#include "fuzz_common.h"
#include "vmm/memory.h"
#include "vmm/ram_layout.h"
#include "vmm/virtio/virtqueue.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_VQ_RAM (64u << 10)
#define FUZZ_VQ_DESC 0x0u
#define FUZZ_VQ_AVAIL 0x1000u
#define FUZZ_VQ_USED 0x1800u
#define HEADER 5

static void serve(struct vs_virtqueue *vq, struct vs_vq_chain *chain, uint8_t *scratch)
{
    /* At most one pass over the ring (plus one), whatever the indices claim. */
    for (unsigned n = 0; n <= vq->size; n++) {
        if (vs_vq_pop(vq, chain) <= 0)
            break;
        vs_vq_chain_read(chain, 0, scratch, FUZZ_VQ_RAM);
        size_t want = chain->write_bytes < FUZZ_VQ_RAM ? (size_t)chain->write_bytes : FUZZ_VQ_RAM;
        size_t written = vs_vq_chain_write(vq, chain, 0, scratch, want);
        if (written != want)
            abort();   /* the chain's writable bytes must all be reachable */
        if (vs_vq_push(vq, chain->head, (uint32_t)written) < 0)
            break;
        vs_vq_notify_driver(vq);
    }
    vs_vq_pending(vq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < HEADER)
        return 0;
    struct vs_memory mem = { .memfd = -1, .size = FUZZ_VQ_RAM };
    vs_ram_layout_init(&mem.layout, FUZZ_VQ_RAM, false);   /* flat: gpa = RAM offset */
    mem.base = calloc(1, FUZZ_VQ_RAM);
    struct vs_vq_chain *chain = malloc(sizeof(*chain));
    uint8_t *scratch = malloc(FUZZ_VQ_RAM);
    if (!mem.base || !chain || !scratch || vs_memory_track_writes(&mem, true) < 0)
        abort();
    size_t image = size - HEADER < FUZZ_VQ_RAM ? size - HEADER : FUZZ_VQ_RAM;
    memcpy(mem.base, data + HEADER, image);

    struct vs_virtqueue vq;
    vs_vq_init(&vq, &mem, 0, (struct vs_vq_owner){ 0 });
    unsigned log2 = (data[0] >> 2) & 15;
    vq.size = (uint16_t)(1u << (log2 > 8 ? 8 : log2));
    vq.indirect = data[0] & 1;
    vq.event_idx = data[0] & 2;
    vq.desc_gpa = FUZZ_VQ_DESC;
    vq.avail_gpa = FUZZ_VQ_AVAIL;
    vq.used_gpa = FUZZ_VQ_USED;
    vq.last_avail_idx = (uint16_t)(data[1] | data[2] << 8);
    vq.used_idx = (uint16_t)(data[3] | data[4] << 8);
    vq.ready = true;
    if (vs_vq_check_layout(&vq, 256) == 0)
        serve(&vq, chain, scratch);

    free(mem.written);
    free(mem.base);
    free(chain);
    free(scratch);
    return 0;
}
