/* Unit tests: the 16550A UART (src/vmm/devices/serial*.c), driven through its bus handler
 * as a vCPU would, with a fake interrupt line that records what the UART sets it to. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "expect_error.h"
#include "vmm/bus.h"
#include "vmm/vmstate.h"
#include "vmm/devices/serial.h"

enum { DATA, IER, IIR, LCR, MCR, LSR, MSR, SCR };
#define FCR IIR
#define DLL DATA
#define DLM IER

struct fake_irq {
    unsigned sets;     /* calls of the line's set() */
    bool level;
    uint32_t gsi;
};

static void fake_set(void *ctx, uint32_t gsi, bool level)
{
    struct fake_irq *f = ctx;
    f->sets++;
    f->level = level;
    f->gsi = gsi;
}

struct uart {
    struct vs_serial s;
    struct fake_irq irq;
};

static void uart_open(struct uart *u, const char *target)
{
    memset(&u->irq, 0, sizeof(u->irq));
    assert_int_equal(vs_serial_open(&u->s, target), 0);
    u->s.irq = (struct vs_irq_line){ .set = fake_set, .ctx = &u->irq, .gsi = VS_SERIAL_IRQ };
}

static void out8(struct uart *u, unsigned reg, uint8_t v)
{
    struct vs_bus_io io = { .offset = reg, .data = &v, .size = 1, .is_write = true };
    serial_bus_io(&u->s, &io);
}

static uint8_t in8(struct uart *u, unsigned reg)
{
    uint8_t v = 0x5a;
    struct vs_bus_io io = { .offset = reg, .data = &v, .size = 1, .is_write = false };
    serial_bus_io(&u->s, &io);
    return v;
}

static size_t input_str(struct uart *u, const char *text)
{
    return vs_serial_input(&u->s, (const uint8_t *)text, strlen(text));
}

static void divisor_latch(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    out8(&u, LCR, 0x83);   /* DLAB, 8N1 */
    out8(&u, DLL, 0x0c);   /* 9600 baud */
    out8(&u, DLM, 0x01);
    assert_int_equal(in8(&u, DLL), 0x0c);
    assert_int_equal(in8(&u, DLM), 0x01);
    assert_int_equal(in8(&u, LCR), 0x83);
    assert_int_equal(u.s.bytes_out, 0);      /* the DLL write sent nothing */
    out8(&u, LCR, 0x03);
    out8(&u, IER, 0x05);                     /* IER, not DLM, without DLAB */
    assert_int_equal(in8(&u, IER), 0x05);
    out8(&u, IER, 0xff);                     /* bits 7-4 do not exist */
    assert_int_equal(in8(&u, IER), 0x0f);
    out8(&u, LCR, 0x83);
    assert_int_equal(in8(&u, DLM), 0x01);    /* the latch kept its value */
    /* a 16-bit access reaches DLL and DLM as two byte cycles */
    uint8_t two[2] = { 0 };
    struct vs_bus_io io = { .offset = DLL, .data = two, .size = 2, .is_write = false };
    serial_bus_io(&u.s, &io);
    assert_int_equal(two[0], 0x0c);
    assert_int_equal(two[1], 0x01);
    out8(&u, SCR, 0xa5);
    assert_int_equal(in8(&u, SCR), 0xa5);
    vs_serial_close(&u.s);
}

static void thr_output_to_file(void **state)
{
    (void)state;
    char path[] = "/tmp/vs-serial-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct uart u;
    uart_open(&u, path);
    assert_int_equal(in8(&u, LSR), 0x60);    /* THRE | TEMT: the guest's poll loop goes on */
    for (const char *c = "hello\n"; *c; c++)
        out8(&u, DATA, (uint8_t)*c);
    assert_int_equal(in8(&u, LSR), 0x60);
    assert_int_equal(u.s.bytes_out, 6);
    vs_serial_close(&u.s);
    char buf[32] = { 0 };
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    unlink(path);
    assert_int_equal(n, 6);
    assert_string_equal(buf, "hello\n");
    /* a target that cannot be opened is an error naming it */
    expect_msg(vs_serial_open(&u.s, "/nonexistent-dir/serial.log"),
               "/nonexistent-dir/serial.log", "cannot open");
}

static void iir_priorities(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    /* a modem status change: loopback with RTS only drops DSR, leaving it raises DSR */
    out8(&u, MCR, 0x10 | 0x02 | 0x08);
    out8(&u, MCR, 0x08);
    out8(&u, FCR, 0x01);                     /* FIFOs on, trigger 1 */
    assert_int_equal(input_str(&u, "0123456789abcdefXY"), 16);   /* 2 lost: overrun */
    out8(&u, IER, 0x0f);                     /* every source enabled (THRE pends now) */
    assert_true(u.irq.level);
    assert_int_equal(in8(&u, IIR), 0xc6);    /* line status first */
    assert_int_equal(in8(&u, IIR), 0xc6);    /* reading IIR does not clear it */
    assert_int_equal(in8(&u, LSR), 0x63);    /* DR | OE | THRE | TEMT; the read clears OE */
    assert_int_equal(in8(&u, IIR), 0xc4);    /* then received data */
    for (int i = 0; i < 16; i++)
        assert_int_equal(in8(&u, DATA), (uint8_t)"0123456789abcdef"[i]);
    assert_int_equal(in8(&u, IIR), 0xc2);    /* then THR empty; this read acknowledges it */
    assert_true(u.irq.level);
    assert_int_equal(in8(&u, IIR), 0xc0);    /* then modem status */
    assert_int_equal(in8(&u, MSR), 0xb2);    /* CTS DSR DCD, DSR changed; read clears it */
    assert_int_equal(in8(&u, IIR), 0xc1);    /* nothing */
    assert_false(u.irq.level);
    assert_int_equal(in8(&u, MSR), 0xb0);

    /* the character timeout ranks below received data, above THR empty */
    out8(&u, FCR, 0x41);                     /* trigger 4 */
    out8(&u, DATA, 'x');                     /* THR empty pends again */
    assert_int_equal(input_str(&u, "ab"), 2);
    assert_int_equal(in8(&u, IIR), 0xcc);
    assert_int_equal(input_str(&u, "cd"), 2);
    assert_int_equal(in8(&u, IIR), 0xc4);
    out8(&u, FCR, 0x43);                     /* clear the receive FIFO */
    assert_int_equal(in8(&u, LSR) & 0x01, 0);
    assert_int_equal(in8(&u, IIR), 0xc2);
    vs_serial_close(&u.s);
}

static void thre_interrupt(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    out8(&u, MCR, 0x08);                     /* OUT2: interrupts reach the PIC */
    assert_int_equal(in8(&u, IIR), 0x01);
    assert_false(u.irq.level);
    out8(&u, IER, 0x02);                     /* enabling it with THR empty raises it */
    assert_true(u.irq.level);
    assert_int_equal(u.irq.gsi, VS_SERIAL_IRQ);
    assert_int_equal(in8(&u, IIR), 0x02);
    assert_false(u.irq.level);               /* the IIR read acknowledged it */
    assert_int_equal(in8(&u, IIR), 0x01);
    out8(&u, IER, 0x02);                     /* already enabled: no new interrupt */
    assert_int_equal(in8(&u, IIR), 0x01);
    out8(&u, DATA, 'a');                     /* a write empties THR again at once */
    assert_true(u.irq.level);
    assert_int_equal(in8(&u, IIR), 0x02);
    out8(&u, DATA, 'b');
    assert_true(u.irq.level);
    out8(&u, IER, 0x00);                     /* disabling drops it */
    assert_false(u.irq.level);
    out8(&u, IER, 0x02);
    assert_true(u.irq.level);
    out8(&u, DATA, 'c');                     /* a THR write also acknowledges... then pends */
    assert_int_equal(in8(&u, IIR), 0x02);
    assert_int_equal(u.s.bytes_out, 3);
    vs_serial_close(&u.s);
}

static void rx_data_and_trigger_levels(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    out8(&u, MCR, 0x08);
    out8(&u, IER, 0x01);
    /* FIFOs off: a one-byte RBR */
    assert_int_equal(in8(&u, LSR), 0x60);
    assert_int_equal(input_str(&u, "q"), 1);
    assert_int_equal(in8(&u, IIR), 0x04);
    assert_true(u.irq.level);
    assert_int_equal(in8(&u, LSR), 0x61);
    assert_int_equal(in8(&u, DATA), 'q');
    assert_int_equal(in8(&u, IIR), 0x01);
    assert_false(u.irq.level);
    assert_int_equal(u.s.bytes_in, 1);

    static const struct { uint8_t fcr; unsigned level; } triggers[] = {
        { 0x01, 1 }, { 0x41, 4 }, { 0x81, 8 }, { 0xc1, 14 },
    };
    for (size_t t = 0; t < 4; t++) {
        out8(&u, FCR, triggers[t].fcr | 0x02);
        uint8_t bytes[16];
        memset(bytes, 'a' + (int)t, sizeof(bytes));
        unsigned below = triggers[t].level - 1;
        assert_int_equal(vs_serial_input(&u.s, bytes, below), below);
        assert_int_equal(in8(&u, IIR), below ? 0xcc : 0xc1);
        assert_int_equal(vs_serial_input(&u.s, bytes, 1), 1);
        assert_int_equal(in8(&u, IIR), 0xc4);
        assert_true(u.irq.level);
        in8(&u, DATA);                       /* below the level again: a timeout */
        assert_int_equal(in8(&u, IIR), below ? 0xcc : 0xc1);
        assert_int_equal(u.irq.level, below > 0);
    }
    vs_serial_close(&u.s);
}

static void overrun(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    out8(&u, MCR, 0x08);
    out8(&u, IER, 0x04);                     /* line status only */
    /* FIFOs off: the byte in RBR survives, the new one is lost */
    assert_int_equal(input_str(&u, "AB"), 1);
    assert_true(u.irq.level);
    assert_int_equal(in8(&u, IIR), 0x06);
    assert_int_equal(in8(&u, LSR), 0x63);
    assert_false(u.irq.level);               /* the LSR read cleared OE */
    assert_int_equal(in8(&u, LSR), 0x61);
    assert_int_equal(in8(&u, DATA), 'A');
    /* FIFOs on: 16 bytes fit */
    out8(&u, FCR, 0x07);
    uint8_t bytes[20];
    for (int i = 0; i < 20; i++)
        bytes[i] = (uint8_t)i;
    assert_int_equal(vs_serial_input(&u.s, bytes, 20), 16);
    assert_int_equal(in8(&u, LSR), 0x63);
    for (int i = 0; i < 16; i++)
        assert_int_equal(in8(&u, DATA), i);
    assert_int_equal(in8(&u, LSR), 0x60);
    /* offering never overruns: it takes what fits */
    assert_int_equal(vs_serial_offer(&u.s, bytes, 20), 16);
    assert_int_equal(vs_serial_offer(&u.s, bytes, 4), 0);
    assert_int_equal(in8(&u, LSR), 0x61);
    assert_int_equal(vs_serial_wait_rx_room(&u.s, 10), 0);
    in8(&u, DATA);
    assert_int_equal(vs_serial_wait_rx_room(&u.s, 10), 1);
    assert_int_equal(u.s.bytes_in, 1 + 16 + 16);
    vs_serial_close(&u.s);
}

static void loopback(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    out8(&u, MCR, 0x10 | 0x0a);              /* loopback, RTS, OUT2: Linux's probe */
    assert_int_equal(in8(&u, MSR) & 0xf0, 0x90);   /* CTS from RTS, DCD from OUT2 */
    out8(&u, FCR, 0x01);
    out8(&u, DATA, 'L');
    out8(&u, DATA, 'B');
    assert_int_equal(u.s.bytes_out, 0);      /* nothing left on the line */
    assert_int_equal(in8(&u, LSR), 0x61);
    assert_int_equal(in8(&u, DATA), 'L');
    assert_int_equal(in8(&u, DATA), 'B');
    assert_int_equal(input_str(&u, "zz"), 0);      /* cut off from the line */
    assert_int_equal(in8(&u, LSR), 0x60);          /* and no overrun for it */
    /* modem status deltas from the MCR outputs, RI's trailing edge */
    out8(&u, MCR, 0x10 | 0x04);              /* OUT1: RI on; CTS and DCD off */
    assert_int_equal(in8(&u, MSR), 0x40 | 0x01 | 0x08);
    out8(&u, MCR, 0x10 | 0x01);              /* RI off, DTR: DSR on */
    assert_int_equal(in8(&u, MSR), 0x20 | 0x02 | 0x04);
    assert_int_equal(in8(&u, MSR), 0x20);
    /* a modem status interrupt in loopback, gated by the OUT2 bit */
    out8(&u, IER, 0x08);
    out8(&u, MCR, 0x10 | 0x08 | 0x02);
    assert_true(u.irq.level);
    assert_int_equal(in8(&u, IIR), 0xc0);
    in8(&u, MSR);
    assert_false(u.irq.level);
    out8(&u, MCR, 0x08);                     /* back on the line */
    assert_int_equal(in8(&u, MSR), 0xb0 | 0x02);   /* only DSR changed */
    assert_int_equal(input_str(&u, "ok"), 2);
    vs_serial_close(&u.s);
}

static void out2_gating(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    out8(&u, IER, 0x02);
    assert_int_equal(in8(&u, IIR), 0x02);   /* pending (and acknowledged), but ... */
    out8(&u, DATA, '.');
    assert_int_equal(u.irq.sets, 0);        /* ... the line never went up without OUT2 */
    out8(&u, MCR, 0x08);
    assert_int_equal(u.irq.sets, 1);
    assert_true(u.irq.level);
    out8(&u, MCR, 0x03);                    /* DTR RTS, no OUT2 */
    assert_false(u.irq.level);
    assert_int_equal(in8(&u, IIR), 0x02);   /* the UART still reports it */
    vs_serial_close(&u.s);
}

/* The checks Linux's 8250 driver makes before it trusts a port to be a 16550A with
 * working interrupts (autoconfig and startup), in the order it makes them. */
static void passes_linux_8250_probe(void **state)
{
    (void)state;
    struct uart u;
    uart_open(&u, "none");
    out8(&u, IER, 0);                        /* IER exists */
    assert_int_equal(in8(&u, IER) & 0x0f, 0);
    out8(&u, IER, 0x0f);
    assert_int_equal(in8(&u, IER) & 0x0f, 0x0f);
    out8(&u, IER, 0);
    out8(&u, MCR, 0x10 | 0x0a);              /* loopback: MSR lines must read 0x90 */
    assert_int_equal(in8(&u, MSR) & 0xf0, 0x90);
    out8(&u, MCR, 0);
    out8(&u, LCR, 0xbf);                     /* "EFR" (FCR) := 0 */
    out8(&u, FCR, 0);
    out8(&u, LCR, 0);
    out8(&u, FCR, 0x01);
    assert_int_equal(in8(&u, IIR) >> 6, 3);  /* FIFOs that work: a 16550A */
    out8(&u, LCR, 0x80);
    assert_int_not_equal(in8(&u, IIR), 0);   /* no EFR behind DLAB ... */
    out8(&u, LCR, 0xbf);
    assert_int_not_equal(in8(&u, IIR), 0);   /* ... nor behind 0xbf: not a 16650 */
    out8(&u, LCR, 0);
    out8(&u, FCR, 0x21);                     /* 64-byte FIFO bit: not a 16750 */
    uint8_t without_dlab = in8(&u, IIR) >> 5;
    out8(&u, LCR, 0x80);
    out8(&u, FCR, 0x21);
    assert_false(without_dlab == 6 && (in8(&u, IIR) >> 5) == 7);
    out8(&u, LCR, 0);
    out8(&u, IER, 0x40);                     /* no UUE bit: not an XScale */
    assert_int_equal(in8(&u, IER) & 0x40, 0);
    /* FIFO size: 256 bytes through loopback at the highest rate, count what arrived */
    out8(&u, FCR, 0x07);
    out8(&u, MCR, 0x10);
    for (int i = 0; i < 256; i++)
        out8(&u, DATA, (uint8_t)i);
    int received = 0;
    while ((in8(&u, LSR) & 0x01) && received < 256) {
        in8(&u, DATA);
        received++;
    }
    assert_int_equal(received, 16);
    out8(&u, MCR, 0x0b);                     /* DTR RTS OUT2, as it opens the port */
    in8(&u, LSR), in8(&u, DATA), in8(&u, IIR), in8(&u, MSR);
    /* THR empty must be raised on enable, and again after an IIR read and re-enable */
    out8(&u, IER, 0x02);
    uint8_t iir1 = in8(&u, IIR);
    out8(&u, IER, 0);
    out8(&u, IER, 0x02);
    uint8_t iir2 = in8(&u, IIR);
    out8(&u, IER, 0);
    assert_int_equal(iir1 & 0x0f, 0x02);
    assert_int_equal(iir2 & 0x0f, 0x02);
    assert_false(u.irq.level);
    vs_serial_close(&u.s);
}

/* What the registry does with a description: the fields of `version`, packed in order. */
static size_t save_section(struct vs_serial *s, uint32_t version, uint8_t *out)
{
    const struct vs_vmstate *d = &vs_serial_vmstate;
    assert_int_equal(d->pre_save(s), 0);
    const uint8_t *rec = d->record(s);
    size_t len = 0;
    for (unsigned i = 0; i < d->nr_fields; i++) {
        if (d->fields[i].since > version)
            continue;
        memcpy(out + len, rec + d->fields[i].offset, d->fields[i].size);
        len += d->fields[i].size;
    }
    return len;
}

static int load_section(struct vs_serial *s, uint32_t version, const uint8_t *in)
{
    const struct vs_vmstate *d = &vs_serial_vmstate;
    assert_true(version >= d->min_version && version <= d->version);
    uint8_t *rec = d->record(s);
    size_t pos = 0;
    for (unsigned i = 0; i < d->nr_fields; i++) {
        if (d->fields[i].since > version)
            continue;
        memcpy(rec + d->fields[i].offset, in + pos, d->fields[i].size);
        pos += d->fields[i].size;
    }
    return d->post_load(s, version);
}

static void save_load_mid_fifo(void **state)
{
    (void)state;
    struct uart a, b;
    uart_open(&a, "none");
    out8(&a, LCR, 0x80);
    out8(&a, DLL, 0x01);
    out8(&a, LCR, 0x03);
    out8(&a, SCR, 0x77);
    out8(&a, FCR, 0x81);                     /* trigger 8 */
    out8(&a, MCR, 0x0b);
    out8(&a, DATA, '>');
    assert_int_equal(input_str(&a, "abcdefghijklmnopqr"), 16);   /* full, overrun */
    assert_int_equal(in8(&a, DATA), 'a');    /* the ring no longer starts at 0 */
    assert_int_equal(in8(&a, DATA), 'b');
    assert_int_equal(input_str(&a, "ST"), 2);
    out8(&a, IER, 0x0d);                     /* data, line status, modem status */
    assert_true(a.irq.level);

    uint8_t blob[sizeof(struct vs_serial_rec)];
    size_t len = save_section(&a.s, 2, blob);
    assert_int_equal(len, 16 + 5 + 16 + 8);

    uart_open(&b, "none");
    assert_int_equal(load_section(&b.s, 2, blob), 0);
    assert_true(b.irq.sets >= 1);            /* the line was set after the load */
    assert_true(b.irq.level);
    assert_int_equal(in8(&b, IIR), 0xc6);
    assert_int_equal(in8(&b, LSR), 0x63);
    assert_int_equal(in8(&b, IIR), 0xc4);
    for (const char *c = "cdefghijklmnopST"; *c; c++)
        assert_int_equal(in8(&b, DATA), (uint8_t)*c);
    assert_int_equal(in8(&b, LSR), 0x60);
    assert_int_equal(in8(&b, IIR), 0xc1);    /* THRE pending but not enabled */
    out8(&b, IER, 0x0f);
    assert_int_equal(in8(&b, IIR), 0xc2);
    assert_int_equal(in8(&b, SCR), 0x77);
    assert_int_equal(in8(&b, MCR), 0x0b);
    out8(&b, LCR, 0x83);
    assert_int_equal(in8(&b, DLL), 0x01);
    assert_int_equal(b.s.bytes_out, 1);
    assert_int_equal(b.s.bytes_in, 18);

    /* a corrupt record is refused, naming the problem */
    save_section(&a.s, 2, blob);
    blob[16 + 4] = 17;                       /* rx_count */
    expect_msg(load_section(&b.s, 2, blob), "receive FIFO", "17");
    vs_serial_close(&a.s);
    vs_serial_close(&b.s);
}

static void load_v1_record(void **state)
{
    (void)state;
    /* what a source before the 16550A model sends (its SERIAL section, 16 bytes) */
    struct { uint8_t ier, lcr, mcr, scr, dll, dlm, pad[2]; uint64_t bytes_out; } old = { .ier = 0x02, .lcr = 0x03, .mcr = 0x0b, .scr = 0x5a,
                              .dll = 0x01, .dlm = 0x00, .bytes_out = 1234 };
    struct uart u;
    uart_open(&u, "none");
    out8(&u, FCR, 0x01);                     /* state the load must replace */
    input_str(&u, "stale");
    uint8_t blob[sizeof(struct vs_serial_rec)];
    assert_int_equal(save_section(&u.s, 1, blob), sizeof(old));   /* version 1: 16 bytes */
    save_section(&u.s, 2, blob);             /* leaves v2 values in the record */

    assert_int_equal(load_section(&u.s, 1, (const uint8_t *)&old), 0);
    assert_int_equal(in8(&u, IER), 0x02);
    assert_int_equal(in8(&u, LCR), 0x03);
    assert_int_equal(in8(&u, MCR), 0x0b);
    assert_int_equal(in8(&u, SCR), 0x5a);
    assert_int_equal(u.s.bytes_out, 1234);
    assert_int_equal(u.s.bytes_in, 0);
    assert_int_equal(in8(&u, LSR), 0x60);    /* nothing received, THR empty */
    assert_true(u.irq.level);                /* THRE enabled, THR empty, OUT2 */
    assert_int_equal(in8(&u, IIR), 0x02);    /* FIFOs off */
    assert_int_equal(in8(&u, MSR), 0xb0);    /* no changes to report */
    out8(&u, LCR, 0x83);
    assert_int_equal(in8(&u, DLL), 0x01);
    out8(&u, LCR, 0x03);
    assert_int_equal(input_str(&u, "ab"), 1);   /* a one-byte RBR again */

    /* and this build's version-1 form is the old layout */
    uint8_t v1[sizeof(old)];
    assert_int_equal(save_section(&u.s, 1, v1), sizeof(old));
    __typeof__(old) back;
    memcpy(&back, v1, sizeof(back));
    assert_int_equal(back.ier, 0x02);
    assert_int_equal(back.mcr, 0x0b);
    assert_int_equal(back.dll, 0x01);
    assert_int_equal(back.bytes_out, 1234);
    vs_serial_close(&u.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(divisor_latch),
        cmocka_unit_test(thr_output_to_file),
        cmocka_unit_test(iir_priorities),
        cmocka_unit_test(thre_interrupt),
        cmocka_unit_test(rx_data_and_trigger_levels),
        cmocka_unit_test(overrun),
        cmocka_unit_test(loopback),
        cmocka_unit_test(out2_gating),
        cmocka_unit_test(passes_linux_8250_probe),
        cmocka_unit_test(save_load_mid_fifo),
        cmocka_unit_test(load_v1_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
