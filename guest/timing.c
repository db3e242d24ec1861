#include "timing.h"
#include "io.h"
#include "pvport.h"

#define PIT_HZ        1193182
#define PIT_CAL_MS    10
#define PIT_CAL_COUNT (PIT_HZ * PIT_CAL_MS / 1000)
#define PORT_PIT_CH0  0x40
#define PORT_PIT_CH2  0x42
#define PORT_PIT_CMD  0x43
#define PORT_NMI_SC   0x61          /* bit 0: ch2 gate, bit 1: speaker, bit 5: ch2 out */
/* Give up on a PIT that never counts: ~1 s of TSC ticks even on a 2 GHz host. */
#define PIT_CAL_MAX_TSC 2000000000ULL

static int use_pvport;
static uint64_t tsc_per_us;         /* 0: TSC not calibrated */

/* Run PIT channel 2 in mode 0 for PIT_CAL_MS with the gate on and the speaker off, and
 * count TSC ticks until its output goes high. */
static int calibrate_tsc(void)
{
    uint8_t saved = inb(PORT_NMI_SC);
    uint64_t t0, t1;
    unsigned polls = 0;

    outb(PORT_NMI_SC, (uint8_t)((saved & ~0x02) | 0x01));
    outb(PORT_PIT_CMD, 0xb0);       /* channel 2, lobyte/hibyte, mode 0, binary */
    outb(PORT_PIT_CH2, PIT_CAL_COUNT & 0xff);
    outb(PORT_PIT_CH2, PIT_CAL_COUNT >> 8);
    t0 = t1 = rdtsc();
    while (!(inb(PORT_NMI_SC) & 0x20) && t1 - t0 < PIT_CAL_MAX_TSC) {
        polls++;
        t1 = rdtsc();
    }
    outb(PORT_NMI_SC, saved);
    /* Output high before the first poll means there is no counting PIT at all. */
    if (polls == 0 || t1 - t0 >= PIT_CAL_MAX_TSC)
        return -1;
    tsc_per_us = (t1 - t0) / (PIT_CAL_MS * 1000);
    return tsc_per_us ? 0 : -1;
}

static uint16_t read_ch0(void)
{
    uint8_t lo;

    outb(PORT_PIT_CMD, 0x00);       /* latch channel 0's count */
    lo = inb(PORT_PIT_CH0);
    return (uint16_t)(lo | inb(PORT_PIT_CH0) << 8);
}

/* Machines without the channel 2 gate on port 0x61 (QEMU microvm): let channel 0 count
 * down from 0xffff in mode 0 and read its count back until PIT_CAL_COUNT have passed.
 * Mode 0 raises IRQ 0 once at the end; nothing listens to it yet. */
static int calibrate_tsc_ch0(void)
{
    uint64_t t0, t1;
    uint16_t now;

    outb(PORT_PIT_CMD, 0x30);       /* channel 0, lobyte/hibyte, mode 0, binary */
    outb(PORT_PIT_CH0, 0xff);
    outb(PORT_PIT_CH0, 0xff);
    t0 = t1 = rdtsc();
    do {
        now = read_ch0();
        t1 = rdtsc();
    } while (0xffff - now < PIT_CAL_COUNT && t1 - t0 < PIT_CAL_MAX_TSC);
    if (t1 - t0 >= PIT_CAL_MAX_TSC)
        return -1;
    tsc_per_us = (t1 - t0) * PIT_CAL_COUNT / ((uint64_t)(0xffff - now) * PIT_CAL_MS * 1000);
    return tsc_per_us ? 0 : -1;
}

int vs_timing_init(int pvport)
{
    use_pvport = pvport;
    if (pvport)
        return 0;
    return calibrate_tsc() && calibrate_tsc_ch0() ? -1 : 0;
}

int vs_timing_usable(void)
{
    return use_pvport || tsc_per_us;
}

uint32_t vs_now_us(void)
{
    if (use_pvport)
        return vs_pvport_clock_us();
    return tsc_per_us ? (uint32_t)(rdtsc() / tsc_per_us) : 0;
}

void vs_sleep_us(uint32_t us)
{
    if (use_pvport) {
        vs_pvport_sleep_us(us);
    } else if (tsc_per_us) {
        uint64_t end = rdtsc() + (uint64_t)us * tsc_per_us;

        while ((int64_t)(rdtsc() - end) < 0)
            cpu_relax();
    }
}
