#include "console_in.h"
#include "io.h"
#include "irq.h"
#include "platform.h"
#include "serial.h"

#define COM1         0x3f8
#define REG_RBR      0
#define REG_IER      1
#define REG_FCR      2
#define REG_LCR      3
#define REG_MCR      4
#define REG_LSR      5
#define IER_RDI      0x01
#define FCR_ENABLE   0x01           /* FIFOs on, trigger level 1 byte */
#define FCR_CLEAR_RX 0x02
#define LCR_8N1      0x03           /* DLAB off */
#define MCR_DTR_RTS  0x03
#define MCR_OUT2     0x08
#define LSR_DR       0x01
#define LSR_OE       0x02
#define COM1_IRQ     4

#define PENDING_SIZE 1024           /* bytes received, not yet echoed (a power of two) */
#define CONSOLE_LINE 64             /* echo a line at most this long */
#define IDLE_ECHO_US 1000000u

struct console {
    int running;
    uint8_t pending[PENDING_SIZE];  /* written by the handler, read by the loop */
    uint32_t head, tail;            /* free-running */
    char line[CONSOLE_LINE];
    unsigned line_len;
    uint32_t last_rx_us;
    struct vs_console_counts n;
};

static struct console con;

static void on_interrupt(const struct vs_irq_frame *f)
{
    uint8_t lsr;

    (void)f;
    while ((lsr = inb(COM1 + REG_LSR)) & LSR_DR) {
        uint8_t byte = inb(COM1 + REG_RBR);

        con.n.bytes++;
        if (lsr & LSR_OE)
            con.n.errors++;
        if (con.head - con.tail < PENDING_SIZE)
            con.pending[con.head++ % PENDING_SIZE] = byte;
        else
            con.n.errors++;
    }
    if (lsr & LSR_OE)
        con.n.errors++;
}

int vs_console_start(char *err, unsigned errlen)
{
    uint8_t vector = VS_VEC_ISA_BASE + COM1_IRQ;

    vs_irq_set_handler(vector, on_interrupt);
    if (vs_platform_route_isa(COM1_IRQ, vector, err, errlen))
        return -1;
    outb(COM1 + REG_LCR, LCR_8N1);
    outb(COM1 + REG_FCR, FCR_ENABLE | FCR_CLEAR_RX);
    outb(COM1 + REG_MCR, MCR_DTR_RTS | MCR_OUT2);
    outb(COM1 + REG_IER, IER_RDI);
    con.running = 1;
    /* Bytes that came before the interrupt was on raise no edge: take them now. */
    on_interrupt(0);
    vs_puts("vmshift-guest: console input on (COM1 IRQ 4, echoed as 'vmshift-guest: console:')");
    return 0;
}

static void echo_line(void)
{
    struct vs_line l;

    if (!con.line_len)
        return;
    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: console: ");
    vs_buf_putn(&l.b, con.line, con.line_len);
    vs_line_end(&l);
    con.line_len = 0;
}

void vs_console_echo(uint32_t now_us)
{
    if (!con.running)
        return;
    if (con.head != con.tail)
        con.last_rx_us = now_us;
    while (con.head != con.tail) {
        uint8_t c = con.pending[con.tail++ % PENDING_SIZE];

        if (c == '\n' || c == '\r') {
            echo_line();
            continue;
        }
        con.line[con.line_len++] = c >= 0x20 && c < 0x7f ? (char)c : '.';
        if (con.line_len == CONSOLE_LINE)
            echo_line();
    }
    if (con.line_len && now_us - con.last_rx_us >= IDLE_ECHO_US)
        echo_line();
}

void vs_console_counts(struct vs_console_counts *out)
{
    *out = con.n;
}
