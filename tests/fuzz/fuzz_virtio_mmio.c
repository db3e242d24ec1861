/* Fuzz target: the virtio-mmio transport (src/vmm/virtio/virtio_mmio.c) with a virtio-rng
 * behind it, driven by a hostile guest driver: any register or configuration access, in
 * any order, width and alignment, over guest RAM the input also chooses.
 *   bytes 0-1  le16 length L of the RAM image (capped at what the input holds)
 *   L bytes    the guest's RAM from address 0 (FUZZ_MMIO_RAM bytes, zero beyond)
 *   then       accesses of 7 bytes each: u8 op (bit 0: write; bits 1-2: width 1, 2, 4
 *              or 8), le16 offset in the 0x200-byte window (masked), le32 value
 * Checks the line follows InterruptStatus after every access. Guest RAM is a heap block of
 * exactly its size, so ASan catches any access outside it. */
#include "fuzz_common.h"
#include "vmm/memory.h"
#include "vmm/ram_layout.h"
#include "vmm/virtio/virtio_mmio.h"
#include "vmm/virtio/virtio_rng.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MMIO_RAM (64u << 10)
#define MAX_ACCESSES 4096

static void line_set(void *ctx, uint32_t gsi, bool level)
{
    (void)gsi;
    *(bool *)ctx = level;
}

static void access(struct vs_virtio_mmio *t, const uint8_t *a)
{
    uint8_t data[8] = { 0 };
    memcpy(data, a + 3, 4);
    struct vs_bus_io io = {
        .offset = (uint64_t)(a[1] | a[2] << 8) % VS_VIRTIO_MMIO_SIZE,
        .data = data,
        .size = 1u << ((a[0] >> 1) & 3),
        .is_write = a[0] & 1,
    };
    vs_virtio_mmio_io(t, &io);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 2)
        return 0;
    size_t image = (size_t)(data[0] | data[1] << 8);
    if (image > size - 2)
        image = size - 2;
    if (image > FUZZ_MMIO_RAM)
        image = FUZZ_MMIO_RAM;
    struct vs_memory mem = { .memfd = -1, .size = FUZZ_MMIO_RAM };
    vs_ram_layout_init(&mem.layout, FUZZ_MMIO_RAM, false);   /* flat: gpa = RAM offset */
    mem.base = calloc(1, FUZZ_MMIO_RAM);
    struct vs_virtio_rng *rng = calloc(1, sizeof(*rng));
    struct vs_virtio_mmio *t = malloc(sizeof(*t));
    if (!mem.base || !rng || !t || vs_memory_track_writes(&mem, true) < 0)
        abort();
    memcpy(mem.base, data + 2, image);
    bool level = false;
    struct vs_irq_line irq = { .set = line_set, .ctx = &level, .gsi = 1 };
    if (vs_virtio_mmio_init(t, "virtio-rng0", &vs_virtio_rng_ops, rng, &mem, irq) < 0)
        abort();
    rng->transport = t;

    const uint8_t *a = data + 2 + image;
    size_t left = size - 2 - image;
    for (unsigned n = 0; left >= 7 && n < MAX_ACCESSES; n++, a += 7, left -= 7) {
        access(t, a);
        if (level != (t->interrupt_status != 0))
            abort();   /* the line must follow InterruptStatus */
    }
    vs_virtio_mmio_destroy(t);
    free(t);
    free(rng);
    free(mem.written);
    free(mem.base);
    return 0;
}
