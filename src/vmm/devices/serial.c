#include "vmm/devices/serial.h"
#include "vmm/devices/serial_regs.h"
#include "vmm/bus.h"
#include "common/error.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static void serial_reset(struct vs_serial *s)
{
    s->msr = serial_modem_lines(s);   /* lines as they are, no change seen yet */
    s->thri_pending = false;
}

int vs_serial_open(struct vs_serial *s, const char *target)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->rx_room, &ca);
    pthread_condattr_destroy(&ca);
    serial_reset(s);
    if (strcmp(target, "none") == 0)
        return 0;
    if (strcmp(target, "stdout") == 0) {
        s->out = stdout;
        return 0;
    }
    s->out = fopen(target, "ae");
    if (!s->out) {
        int err = errno;
        pthread_cond_destroy(&s->rx_room);
        pthread_mutex_destroy(&s->lock);
        return vs_fail(err, "--serial %s: cannot open for writing: %s", target, strerror(err));
    }
    s->owns_out = true;
    return 0;
}

void vs_serial_close(struct vs_serial *s)
{
    if (s->out)
        fflush(s->out);
    if (s->owns_out && s->out)
        fclose(s->out);
    s->out = NULL;
    pthread_cond_destroy(&s->rx_room);
    pthread_mutex_destroy(&s->lock);
}

bool vs_serial_writes_stdout(struct vs_serial *s)
{
    pthread_mutex_lock(&s->lock);
    bool yes = s->out == stdout;
    pthread_mutex_unlock(&s->lock);
    return yes;
}

/* ---- derived state ---- */

uint8_t serial_modem_lines(const struct vs_serial *s)
{
    if (!(s->mcr & MCR_LOOP))
        return MSR_CTS | MSR_DSR | MSR_DCD;
    uint8_t m = 0;
    if (s->mcr & MCR_RTS)
        m |= MSR_CTS;
    if (s->mcr & MCR_DTR)
        m |= MSR_DSR;
    if (s->mcr & MCR_OUT1)
        m |= MSR_RI;
    if (s->mcr & MCR_OUT2)
        m |= MSR_DCD;
    return m;
}

uint8_t serial_lsr(const struct vs_serial *s)
{
    return (uint8_t)(s->lsr_errors | LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0));
}

static unsigned rx_trigger(const struct vs_serial *s)
{
    static const unsigned levels[4] = { 1, 4, 8, 14 };
    return (s->fcr & FCR_ENABLE) ? levels[s->fcr >> 6] : 1;
}

/* The highest-priority enabled source (IIR bits 3-0). */
static uint8_t pending_source(const struct vs_serial *s)
{
    if ((s->ier & IER_RLSI) && (s->lsr_errors & LSR_ERRORS))
        return IIR_RLSI;
    if ((s->ier & IER_RDI) && s->rx_count >= rx_trigger(s))
        return IIR_RDI;
    if ((s->ier & IER_RDI) && s->rx_count > 0)
        return IIR_CTI;   /* below the trigger level, and the line has gone quiet */
    if ((s->ier & IER_THRI) && s->thri_pending)
        return IIR_THRI;
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NONE;
}

void serial_update_irq(struct vs_serial *s, bool force)
{
    bool level = pending_source(s) != IIR_NONE && (s->mcr & MCR_OUT2);
    if (level == s->irq_level && !force)
        return;
    s->irq_level = level;
    vs_irq_set_level(&s->irq, level);
}

/* ---- receiver ---- */

static void rx_clear(struct vs_serial *s)
{
    s->rx_head = 0;
    s->rx_count = 0;
    pthread_cond_broadcast(&s->rx_room);
}

static bool rx_push(struct vs_serial *s, uint8_t byte)
{
    if (s->rx_count >= serial_rx_capacity(s)) {
        s->lsr_errors |= LSR_OE;
        return false;
    }
    s->rx_fifo[(s->rx_head + s->rx_count) % VS_SERIAL_FIFO] = byte;
    s->rx_count++;
    return true;
}

static uint8_t rx_pop(struct vs_serial *s)
{
    if (!s->rx_count)
        return 0;
    uint8_t byte = s->rx_fifo[s->rx_head];
    s->rx_head = (s->rx_head + 1) % VS_SERIAL_FIFO;
    s->rx_count--;
    pthread_cond_broadcast(&s->rx_room);
    return byte;
}

static size_t rx_room(const struct vs_serial *s)
{
    if (s->mcr & MCR_LOOP)
        return 0;
    return serial_rx_capacity(s) - s->rx_count;
}

static size_t feed(struct vs_serial *s, const uint8_t *buf, size_t len, bool overrun)
{
    pthread_mutex_lock(&s->lock);
    size_t room = rx_room(s), take = len < room ? len : room;
    for (size_t i = 0; i < take; i++)
        rx_push(s, buf[i]);
    s->bytes_in += take;
    if (overrun && take < len && !(s->mcr & MCR_LOOP))   /* loopback: not on the line */
        s->lsr_errors |= LSR_OE;
    serial_update_irq(s, false);
    pthread_mutex_unlock(&s->lock);
    return take;
}

size_t vs_serial_input(struct vs_serial *s, const uint8_t *buf, size_t len)
{
    return feed(s, buf, len, true);
}

size_t vs_serial_offer(struct vs_serial *s, const uint8_t *buf, size_t len)
{
    return feed(s, buf, len, false);
}

size_t vs_serial_wait_rx_room(struct vs_serial *s, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (rx_room(s) == 0 && pthread_cond_timedwait(&s->rx_room, &s->lock, &deadline) == 0)
        ;
    size_t room = rx_room(s);
    pthread_mutex_unlock(&s->lock);
    return room;
}

/* ---- registers ---- */

static void transmit(struct vs_serial *s, uint8_t byte)
{
    if (s->mcr & MCR_LOOP) {
        rx_push(s, byte);   /* the transmitter's output is wired to the receiver */
    } else {
        s->bytes_out++;
        if (s->out) {
            fputc(byte, s->out);
            if (byte == '\n')
                fflush(s->out);
        }
    }
    s->thri_pending = true;   /* the byte left at once: THR is empty again */
}

static void write_ier(struct vs_serial *s, uint8_t val)
{
    uint8_t old = s->ier;
    s->ier = val & IER_MASK;
    /* Enabling the THR-empty interrupt while THR is empty (always) raises it. */
    if ((s->ier & IER_THRI) && !(old & IER_THRI))
        s->thri_pending = true;
    else if (!(s->ier & IER_THRI))
        s->thri_pending = false;
}

static void write_fcr(struct vs_serial *s, uint8_t val)
{
    /* Switching the FIFOs on or off empties them; with bit 0 clear nothing else is set. */
    if ((val ^ s->fcr) & FCR_ENABLE)
        rx_clear(s);
    if (!(val & FCR_ENABLE)) {
        s->fcr = 0;
        return;
    }
    if (val & FCR_CLEAR_RX)
        rx_clear(s);
    s->fcr = val & FCR_KEPT;   /* the transmit FIFO is always empty: FCR_CLEAR_TX is moot */
}

static void write_mcr(struct vs_serial *s, uint8_t val)
{
    uint8_t before = s->msr & MSR_LINES;
    s->mcr = val & MCR_MASK;
    uint8_t after = serial_modem_lines(s), changed = before ^ after;
    uint8_t deltas = 0;
    if (changed & MSR_CTS)
        deltas |= MSR_DCTS;
    if (changed & MSR_DSR)
        deltas |= MSR_DDSR;
    if (changed & MSR_DCD)
        deltas |= MSR_DDCD;
    if ((before & MSR_RI) && !(after & MSR_RI))
        deltas |= MSR_TERI;
    s->msr = (uint8_t)(after | (s->msr & MSR_DELTAS) | deltas);
}

static void reg_write(struct vs_serial *s, unsigned reg, uint8_t val)
{
    bool dlab = s->lcr & LCR_DLAB;
    switch (reg) {
    case REG_DATA:
        if (dlab)
            s->dll = val;
        else
            transmit(s, val);
        break;
    case REG_IER:
        if (dlab)
            s->dlm = val;
        else
            write_ier(s, val);
        break;
    case REG_IIR: write_fcr(s, val); break;
    case REG_LCR: s->lcr = val; break;
    case REG_MCR: write_mcr(s, val); break;
    case REG_SCR: s->scr = val; break;
    default: break;   /* LSR and MSR are read-only */
    }
}

static uint8_t read_iir(struct vs_serial *s)
{
    uint8_t src = pending_source(s);
    if (src == IIR_THRI)
        s->thri_pending = false;   /* reading IIR that shows it acknowledges THR empty */
    return (uint8_t)(src | ((s->fcr & FCR_ENABLE) ? IIR_FIFO_ENABLED : 0));
}

static uint8_t reg_read(struct vs_serial *s, unsigned reg)
{
    bool dlab = s->lcr & LCR_DLAB;
    uint8_t v;
    switch (reg) {
    case REG_DATA: return dlab ? s->dll : rx_pop(s);
    case REG_IER: return dlab ? s->dlm : s->ier;
    case REG_IIR: return read_iir(s);
    case REG_LCR: return s->lcr;
    case REG_MCR: return s->mcr;
    case REG_LSR:
        v = serial_lsr(s);
        s->lsr_errors = 0;
        return v;
    case REG_MSR:
        v = s->msr;
        s->msr &= MSR_LINES;
        return v;
    default: return s->scr;
    }
}

void serial_bus_io(void *dev, struct vs_bus_io *io)
{
    struct vs_serial *s = dev;
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < io->size; i++) {
        uint64_t reg = io->offset + i;
        if (reg >= VS_SERIAL_PORTS) {
            if (!io->is_write)
                io->data[i] = 0xff;   /* past the UART: nothing drives the bus */
        } else if (io->is_write) {
            reg_write(s, (unsigned)reg, io->data[i]);
        } else {
            io->data[i] = reg_read(s, (unsigned)reg);
        }
    }
    serial_update_irq(s, false);
    pthread_mutex_unlock(&s->lock);
}

void vs_serial_io(struct vs_serial *s, uint16_t port, bool is_write, uint8_t *data)
{
    struct vs_bus_io io = {
        .offset = (uint16_t)(port - VS_SERIAL_BASE), .data = data, .size = 1,
        .is_write = is_write,
    };
    serial_bus_io(s, &io);
}
