#include "lapic.h"
#include "io.h"
#include "irq.h"
#include "timing.h"

#define REG_ID        0x020
#define REG_VERSION   0x030
#define REG_TPR       0x080
#define REG_EOI       0x0B0
#define REG_SVR       0x0F0
#define REG_ESR       0x280
#define REG_LVT_TIMER 0x320
#define REG_LVT_LINT0 0x350
#define REG_LVT_LINT1 0x360
#define REG_LVT_ERROR 0x370
#define REG_TIMER_ICR 0x380
#define REG_TIMER_CCR 0x390
#define REG_TIMER_DCR 0x3E0

#define SVR_ENABLE     0x100
#define LVT_MASKED     0x10000
#define LVT_NMI        0x400
#define LVT_PERIODIC   0x20000
#define DCR_DIVIDE_16  0x3
#define CALIBRATE_US   10000

static uint64_t base;               /* 0 until vs_lapic_setup */

static uint32_t rd(uint32_t reg)
{
    return mmio_read32(base + reg);
}

static void wr(uint32_t reg, uint32_t v)
{
    mmio_write32(base + reg, v);
}

int vs_lapic_setup(uint32_t paddr)
{
    uint32_t version;

    base = paddr;
    version = rd(REG_VERSION) & 0xff;
    if (version < 0x10 || version > 0x1f) {
        base = 0;
        return -1;
    }
    return 0;
}

void vs_lapic_enable(void)
{
    wr(REG_TPR, 0);
    wr(REG_LVT_TIMER, LVT_MASKED);
    wr(REG_LVT_LINT0, LVT_MASKED);
    wr(REG_LVT_LINT1, LVT_NMI);
    wr(REG_LVT_ERROR, VS_VEC_LAPIC_ERROR);
    wr(REG_ESR, 0);                 /* write before read: latches and clears errors */
    wr(REG_SVR, SVR_ENABLE | VS_VEC_SPURIOUS);
}

uint32_t vs_lapic_id(void)
{
    return rd(REG_ID) >> 24;
}

uint32_t vs_lapic_version(void)
{
    return rd(REG_VERSION);
}

void vs_lapic_eoi(void)
{
    if (base)
        wr(REG_EOI, 0);
}

int vs_lapic_timer_start(uint8_t vector, uint32_t hz)
{
    uint32_t t0, elapsed, counted;
    uint64_t per_tick;

    if (!vs_timing_usable())
        return -1;
    wr(REG_TIMER_DCR, DCR_DIVIDE_16);
    wr(REG_LVT_TIMER, LVT_MASKED | vector);
    t0 = vs_now_us();
    wr(REG_TIMER_ICR, 0xffffffffu);
    vs_sleep_us(CALIBRATE_US);
    counted = 0xffffffffu - rd(REG_TIMER_CCR);
    elapsed = vs_now_us() - t0;
    wr(REG_TIMER_ICR, 0);
    if (counted == 0 || elapsed == 0)
        return -1;
    per_tick = (uint64_t)counted * 1000000 / ((uint64_t)elapsed * hz);
    if (per_tick == 0 || per_tick > 0xffffffffu)
        return -1;
    wr(REG_LVT_TIMER, LVT_PERIODIC | vector);
    wr(REG_TIMER_ICR, (uint32_t)per_tick);
    return 0;
}
