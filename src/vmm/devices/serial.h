/* COM1: a 16550A UART at I/O ports 0x3f8-0x3ff, interrupting on ISA IRQ 4.
 *
 * Registers: RBR/THR, IER, IIR/FCR, LCR (DLAB selects the divisor latch at offsets 0-1),
 * MCR (loopback; OUT2 gates the interrupt as on PCs), LSR, MSR (with delta bits), SCR.
 * The transmitter is infinitely fast: a byte written to THR leaves at once (to stdout, a
 * file, or nowhere), so THR and the transmitter are always empty and a THR-empty
 * interrupt follows every write. The receiver holds 16 bytes with the FIFOs enabled
 * (FCR bit 0), else 1. Bytes arrive from the monitor (vs_serial_input / vs_serial_offer)
 * in batches; when the guest can look, the four character times of silence after a batch
 * have always passed, so a character timeout is pending whenever the FIFO holds fewer
 * bytes than its trigger level, but some.
 *
 * Interrupt sources, highest priority first (IIR bits 3-1; bits 7-6 set when the FIFOs
 * are enabled): receiver line status (OE; IER bit 2), received data at the trigger level
 * (IER bit 0), character timeout (IER bit 0), THR empty (IER bit 1), modem status (a
 * delta bit of MSR; IER bit 3). The interrupt line is high while a source is enabled and
 * pending and MCR.OUT2 is set (also in loopback mode, as QEMU does).
 *
 * One lock guards the state: vCPU threads access the registers, the monitor feeds input,
 * the control socket reads counters. */
#ifndef VS_SERIAL_H
#define VS_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "vmm/irq.h"

#define VS_SERIAL_BASE 0x3f8
#define VS_SERIAL_PORTS 8
#define VS_SERIAL_IRQ 4          /* ISA IRQ of COM1 */
#define VS_SERIAL_FIFO 16        /* receive FIFO bytes */

/* The migratable record (the "serial" vmstate, serial_state.c). Version 1 is exactly the
 * SERIAL section older sources send (struct serial_rec in migrate/state/vstate_internal.h). */
struct vs_serial_rec {
    uint8_t ier, lcr, mcr, scr, dll, dlm, pad[2];
    uint64_t bytes_out;
    /* version 2 */
    uint8_t fcr;                     /* FIFO enable, DMA mode and trigger bits as written */
    uint8_t lsr;                     /* the LSR a guest read would see now */
    uint8_t msr;                     /* modem status lines and delta bits */
    uint8_t thri_pending;            /* THR-empty interrupt pending (IIR not read since) */
    uint8_t rx_count;                /* bytes in rx_fifo, oldest first */
    uint8_t rx_fifo[VS_SERIAL_FIFO];
    uint64_t bytes_in;
};

struct vs_serial {
    pthread_mutex_t lock;
    pthread_cond_t rx_room;   /* signalled when the guest makes room in the RX FIFO */
    FILE *out;                /* NULL: discard */
    bool owns_out;
    struct vs_irq_line irq;   /* not connected until vs_serial_attach() */
    bool irq_level;           /* what the line was last set to */

    uint8_t ier, lcr, mcr, scr, dll, dlm;
    uint8_t fcr;
    uint8_t lsr_errors;       /* sticky LSR bits, cleared by reading LSR (OE) */
    uint8_t msr;              /* lines (bits 7-4) and deltas (bits 3-0) */
    bool thri_pending;
    uint8_t rx_fifo[VS_SERIAL_FIFO];   /* ring */
    unsigned rx_head, rx_count;
    uint64_t bytes_out;       /* bytes the guest sent to the line */
    uint64_t bytes_in;        /* bytes the receiver took from the monitor */

    struct vs_serial_rec rec; /* the vmstate record: pre_save fills it, post_load applies it */
};

/* target: "stdout", "none", or a file path (created or appended to). */
int vs_serial_open(struct vs_serial *s, const char *target);
void vs_serial_close(struct vs_serial *s);
/* True when the guest's output goes to this process's stdout (then the monitor may feed
 * its stdin to the guest). */
bool vs_serial_writes_stdout(struct vs_serial *s);

/* Bytes arriving on the line: as many as fit go into the receive FIFO, each one beyond
 * is lost and sets LSR.OE (as a UART overrun). In loopback mode the receiver is cut off
 * from the line and takes nothing. Returns how many were accepted. */
size_t vs_serial_input(struct vs_serial *s, const uint8_t *buf, size_t len);
/* The same with flow control: takes only what fits now, never overruns. */
size_t vs_serial_offer(struct vs_serial *s, const uint8_t *buf, size_t len);
/* Wait up to timeout_ms for room in the receive FIFO; returns the room (bytes). */
size_t vs_serial_wait_rx_room(struct vs_serial *s, int timeout_ms);

struct vs_bus;
struct vs_bus_io;
struct vs_vmstate_registry;
struct vs_vmstate;

/* The bus handler for port-I/O [VS_SERIAL_BASE, +VS_SERIAL_PORTS). A wider access is
 * split into byte accesses of consecutive registers, as on the ISA bus. */
void serial_bus_io(void *dev, struct vs_bus_io *io);

/* Put the UART on the bus (port-I/O 0x3f8, 8 ports, "serial0"), register its state as
 * vmstate "serial" instance 0, and connect its interrupt line (serial_attach.c). */
int vs_serial_attach(struct vs_serial *s, struct vs_bus *bus, struct vs_vmstate_registry *reg,
                     struct vs_irq_line irq);

/* The UART's migratable state: version 2, loads 1 and 2 (serial_state.c). */
extern const struct vs_vmstate vs_serial_vmstate;

/* Compatibility with the vCPU loop before the bus: a one-byte access to port
 * VS_SERIAL_BASE..+7; *data is read or written. */
void vs_serial_io(struct vs_serial *s, uint16_t port, bool is_write, uint8_t *data);

#endif
