#include "fuzz_common.h"
#include "common/log.h"
#include "wire/format.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

/* The bytes payload_sum covers: all of it, except PAGES with META_SUM (header and list). */
static size_t summed_length(const struct vs_wire_header *h, const uint8_t *p, size_t avail)
{
    if (h->type == VS_REC_PAGES && (h->flags & VS_WIRE_FLAG_META_SUM) && avail >= 4) {
        uint32_t count;
        memcpy(&count, p, 4);
        size_t meta = sizeof(struct vs_wire_pages) + (size_t)count * 8;
        return meta < avail ? meta : avail;
    }
    return avail;
}

void fuzz_fix_records(uint8_t *buf, size_t len, unsigned flags)
{
    size_t off = 0;
    uint64_t seq = 0;
    while (off + sizeof(struct vs_wire_header) <= len) {
        struct vs_wire_header h;
        memcpy(&h, buf + off, sizeof(h));
        size_t avail = len - off - sizeof(h);
        if (h.length < avail)
            avail = h.length;
        const uint8_t *p = buf + off + sizeof(h);
        if (flags & FUZZ_FIX_SEQ)
            h.seq = seq++;
        if (flags & FUZZ_FIX_SUMS) {
            h.payload_sum = h.length ? XXH3_64bits(p, summed_length(&h, p, avail)) : 0;
            h.header_sum = 0;
            h.header_sum = XXH32(&h, sizeof(h), 0);
        }
        memcpy(buf + off, &h, sizeof(h));
        off += sizeof(h) + avail;
    }
}

uint8_t *fuzz_ram(void)
{
    static uint8_t *ram;
    if (!ram) {
        ram = mmap(NULL, FUZZ_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ram == MAP_FAILED)
            abort();
    }
    return ram;
}

void fuzz_quiet(void)
{
    static bool quiet;
    if (!quiet) {
        vs_log_set_level(VS_LOG_ERROR);
        quiet = true;
    }
}

uint8_t *fuzz_copy(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    return buf;
}

#include "vmm/irqchip.h"
#include "vmm/kvmclock.h"
#include "vmm/vmstate.h"
#include "vmm/devices/pvport.h"
#include "vmm/devices/serial.h"

/* The registries vm.c builds, in its order; validation never reaches the opaque pointers. */
const struct vs_vmstate_registry *fuzz_machine_registry(int pc)
{
    static struct vs_vmstate_registry regs[2];
    static bool built;
    static int dummy;
    if (!built) {
        for (int m = 0; m < 2; m++) {
            struct vs_vmstate_registry *r = &regs[m];
            vs_vmstate_init(r);
            if (m == 1) {
                vs_vmstate_register(r, &vs_pic_vmstate, 0, &dummy);
                vs_vmstate_register(r, &vs_pic_vmstate, 1, &dummy);
                vs_vmstate_register(r, &vs_ioapic_vmstate, 0, &dummy);
                vs_vmstate_register(r, &vs_pit_vmstate, 0, &dummy);
            }
            vs_vmstate_register(r, &vs_pvport_vmstate, 0, &dummy);
            vs_vmstate_register(r, &vs_serial_vmstate, 0, &dummy);
            vs_vmstate_register(r, &vs_kvmclock_vmstate, 0, &dummy);
        }
        built = true;
    }
    return &regs[pc ? 1 : 0];
}
