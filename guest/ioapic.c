#include "ioapic.h"
#include "io.h"

#define IOREGSEL      0x00
#define IOWIN         0x10
#define REG_VERSION   0x01
#define REG_REDIR(p)  (0x10 + 2 * (p))
#define REDIR_MASKED  0x10000

static uint64_t base;
static unsigned pins;

static uint32_t rd(uint32_t reg)
{
    mmio_write32(base + IOREGSEL, reg);
    return mmio_read32(base + IOWIN);
}

static void wr(uint32_t reg, uint32_t v)
{
    mmio_write32(base + IOREGSEL, reg);
    mmio_write32(base + IOWIN, v);
}

int vs_ioapic_setup(uint32_t paddr)
{
    uint32_t version;

    base = paddr;
    version = rd(REG_VERSION);
    if (version == 0xffffffffu || (version & 0xff) == 0) {
        base = 0;
        return -1;
    }
    pins = ((version >> 16) & 0xff) + 1;
    for (unsigned p = 0; p < pins; p++) {
        wr(REG_REDIR(p), REDIR_MASKED);
        wr(REG_REDIR(p) + 1, 0);
    }
    return 0;
}

uint32_t vs_ioapic_version(void)
{
    return base ? rd(REG_VERSION) : 0;
}

unsigned vs_ioapic_pins(void)
{
    return pins;
}

int vs_ioapic_route(unsigned pin, uint8_t vector, uint8_t dest)
{
    if (!base || pin >= pins)
        return -1;
    /* Destination first, so the entry is never live with a stale one. */
    wr(REG_REDIR(pin), REDIR_MASKED | vector);
    wr(REG_REDIR(pin) + 1, (uint32_t)dest << 24);
    wr(REG_REDIR(pin), vector);
    return 0;
}
