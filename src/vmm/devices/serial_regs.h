/* Private to serial.c and serial_state.c: the 16550A's register layout and bits, and the
 * derived state both need. Every function here expects s->lock held. */
#ifndef VS_SERIAL_REGS_H
#define VS_SERIAL_REGS_H

#include "vmm/devices/serial.h"

enum {
    REG_DATA = 0,   /* RBR (read) / THR (write), or DLL when LCR.DLAB */
    REG_IER = 1,    /* or DLM when LCR.DLAB */
    REG_IIR = 2,    /* IIR (read) / FCR (write) */
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7,
};

#define IER_RDI  0x01   /* received data available (and character timeout) */
#define IER_THRI 0x02   /* THR empty */
#define IER_RLSI 0x04   /* receiver line status */
#define IER_MSI  0x08   /* modem status */
#define IER_MASK 0x0f

#define IIR_NONE 0x01   /* no interrupt pending */
#define IIR_MSI  0x00
#define IIR_THRI 0x02
#define IIR_RDI  0x04
#define IIR_RLSI 0x06
#define IIR_CTI  0x0c   /* character timeout */
#define IIR_FIFO_ENABLED 0xc0

#define FCR_ENABLE    0x01
#define FCR_CLEAR_RX  0x02
#define FCR_CLEAR_TX  0x04
#define FCR_DMA       0x08
#define FCR_TRIGGER   0xc0
#define FCR_KEPT      (FCR_ENABLE | FCR_DMA | FCR_TRIGGER)

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR   0x01   /* data ready */
#define LSR_OE   0x02   /* overrun error */
#define LSR_PE   0x04
#define LSR_FE   0x08
#define LSR_BI   0x10
#define LSR_THRE 0x20   /* transmit holding register empty */
#define LSR_TEMT 0x40   /* transmitter empty */
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04   /* trailing edge of RI */
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80
#define MSR_LINES 0xf0

/* Receive FIFO size in the current mode: 16 with the FIFOs enabled, else 1 (RBR). */
static inline unsigned serial_rx_capacity(const struct vs_serial *s)
{
    return (s->fcr & FCR_ENABLE) ? VS_SERIAL_FIFO : 1;
}

/* The modem status inputs: in loopback, the MCR outputs; otherwise a terminal that is
 * always there (CTS, DSR and DCD active, no ring). */
uint8_t serial_modem_lines(const struct vs_serial *s);
/* LSR as a read would return it (without clearing anything). */
uint8_t serial_lsr(const struct vs_serial *s);
/* Set the interrupt line from the pending sources and OUT2; force: even if unchanged. */
void serial_update_irq(struct vs_serial *s, bool force);

#endif
