#include "pit.h"
#include "io.h"

#define PORT_PIT_CH0 0x40
#define PORT_PIT_CMD 0x43
#define CMD_CH0_LOHI_MODE2 0x34     /* channel 0, lobyte/hibyte, mode 2, binary */

uint64_t vs_pit_periodic(uint32_t hz)
{
    uint32_t divisor = (VS_PIT_HZ + hz / 2) / hz;

    if (divisor > 0xffff)
        divisor = 0xffff;
    if (divisor < 2)
        divisor = 2;
    outb(PORT_PIT_CMD, CMD_CH0_LOHI_MODE2);
    outb(PORT_PIT_CH0, (uint8_t)divisor);
    outb(PORT_PIT_CH0, (uint8_t)(divisor >> 8));
    return (uint64_t)VS_PIT_HZ * 1000 / divisor;
}
