/* Polled 16550 output on COM1. No initialisation: emulated UARTs accept THR writes as
 * they come out of reset, and a divisor write to a UART model without DLAB would
 * print garbage. */
#include "serial.h"
#include "io.h"

#define COM1     0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20
/* A model whose LSR never shows THRE must not hang the guest. */
#define THRE_MAX_POLLS 100000

static uint32_t serial_lock;

static void put_char(char c)
{
    for (unsigned i = 0; i < THRE_MAX_POLLS && !(inb(COM1_LSR) & LSR_THRE); i++)
        cpu_relax();
    outb(COM1, (uint8_t)c);
}

static void write_locked(const char *s, unsigned n)
{
    while (__atomic_exchange_n(&serial_lock, 1, __ATOMIC_ACQUIRE))
        cpu_relax();
    for (unsigned i = 0; i < n; i++)
        put_char(s[i]);
    __atomic_store_n(&serial_lock, 0, __ATOMIC_RELEASE);
}

void vs_line_start(struct vs_line *l)
{
    /* One byte of text stays free for the newline. */
    vs_buf_init(&l->b, l->text, VS_LINE_MAX);
}

void vs_line_end(struct vs_line *l)
{
    l->text[l->b.len] = '\n';
    write_locked(l->text, l->b.len + 1);
}

void vs_puts(const char *s)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, s);
    vs_line_end(&l);
}
