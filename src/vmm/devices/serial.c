#include "vmm/devices/serial.h"
#include "common/error.h"
#include "vmm/bus.h"

#include <string.h>

enum {
    REG_DATA = 0,   /* THR/RBR, or DLL when LCR.DLAB */
    REG_IER = 1,    /* or DLM when LCR.DLAB */
    REG_IIR = 2,
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7,
};
#define LCR_DLAB 0x80
#define LSR_THRE 0x20   /* transmit holding register empty */
#define LSR_TEMT 0x40   /* transmitter empty */
#define IIR_NO_INTERRUPT 0x01
#define MSR_DCD_DSR_CTS 0xb0

int vs_serial_open(struct vs_serial *s, const char *target)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    if (strcmp(target, "none") == 0)
        return 0;
    if (strcmp(target, "stdout") == 0) {
        s->out = stdout;
        return 0;
    }
    s->out = fopen(target, "ae");
    if (!s->out)
        return vs_fail(errno, "--serial %s: cannot open for writing: %s", target, strerror(errno));
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
    pthread_mutex_destroy(&s->lock);
}

void vs_serial_io(struct vs_serial *s, uint16_t port, bool is_write, uint8_t *data)
{
    unsigned reg = (unsigned)(port - VS_SERIAL_BASE) & 7;
    pthread_mutex_lock(&s->lock);
    bool dlab = s->lcr & LCR_DLAB;
    if (is_write) {
        switch (reg) {
        case REG_DATA:
            if (dlab) {
                s->dll = *data;
            } else {
                s->bytes_out++;
                if (s->out) {
                    fputc(*data, s->out);
                    if (*data == '\n')
                        fflush(s->out);
                }
            }
            break;
        case REG_IER: if (dlab) s->dlm = *data; else s->ier = *data & 0x0f; break;
        case REG_LCR: s->lcr = *data; break;
        case REG_MCR: s->mcr = *data; break;
        case REG_SCR: s->scr = *data; break;
        default: break; /* FCR and read-only registers: ignored */
        }
    } else {
        switch (reg) {
        case REG_DATA: *data = dlab ? s->dll : 0; break;
        case REG_IER: *data = dlab ? s->dlm : s->ier; break;
        case REG_IIR: *data = IIR_NO_INTERRUPT; break;
        case REG_LCR: *data = s->lcr; break;
        case REG_MCR: *data = s->mcr; break;
        case REG_LSR: *data = LSR_THRE | LSR_TEMT; break;
        case REG_MSR: *data = MSR_DCD_DSR_CTS; break;
        case REG_SCR: *data = s->scr; break;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/* A bus access: the registers are one byte wide; wider accesses read as all ones. */
static void serial_bus_io(void *dev, struct vs_bus_io *io)
{
    if (io->size == 1)
        vs_serial_io(dev, (uint16_t)(VS_SERIAL_BASE + io->offset), io->is_write, io->data);
    else if (!io->is_write)
        memset(io->data, 0xff, io->size);
}

int vs_serial_attach(struct vs_serial *s, struct vs_bus *bus)
{
    return vs_bus_register(bus, VS_BUS_PIO, VS_SERIAL_BASE, VS_SERIAL_PORTS, "serial0",
                           serial_bus_io, s);
}
