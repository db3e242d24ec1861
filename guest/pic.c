#include "pic.h"
#include "io.h"
#include "irq.h"

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xA0
#define PIC2_DATA 0xA1
#define ICW1_INIT_ICW4 0x11
#define ICW4_8086      0x01

void vs_pic_disable(void)
{
    outb(PIC1_CMD, ICW1_INIT_ICW4);
    outb(PIC2_CMD, ICW1_INIT_ICW4);
    outb(PIC1_DATA, VS_VEC_PIC_BASE);       /* ICW2: vector base */
    outb(PIC2_DATA, VS_VEC_PIC_BASE + 8);
    outb(PIC1_DATA, 1 << 2);                /* ICW3: the slave on IRQ 2 */
    outb(PIC2_DATA, 2);                     /* ICW3: the slave's cascade identity */
    outb(PIC1_DATA, ICW4_8086);
    outb(PIC2_DATA, ICW4_8086);
    outb(PIC1_DATA, 0xff);                  /* mask everything */
    outb(PIC2_DATA, 0xff);
}
