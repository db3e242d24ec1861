#include "vmm/devices/serial.h"
#include "common/error.h"
#include "vmm/bus.h"
#include "vmm/vmstate.h"

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

/* ---- migratable state ---- */

static void *serial_record(void *opaque)
{
    return &((struct vs_serial *)opaque)->rec;
}

static int serial_pre_save(void *opaque)
{
    struct vs_serial *s = opaque;
    pthread_mutex_lock(&s->lock);
    s->rec = (struct vs_serial_record){ .ier = s->ier, .lcr = s->lcr, .mcr = s->mcr,
                                        .scr = s->scr, .dll = s->dll, .dlm = s->dlm,
                                        .bytes_out = s->bytes_out };
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int serial_post_load(void *opaque, uint32_t version)
{
    (void)version;
    struct vs_serial *s = opaque;
    const struct vs_serial_record *r = &s->rec;
    if (r->pad[0] || r->pad[1] || (r->ier & ~0x0f))
        return vs_fail(EINVAL, "ier 0x%x or padding out of range", r->ier);
    pthread_mutex_lock(&s->lock);
    s->ier = r->ier, s->lcr = r->lcr, s->mcr = r->mcr, s->scr = r->scr;
    s->dll = r->dll, s->dlm = r->dlm, s->bytes_out = r->bytes_out;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static const struct vs_vmstate_field serial_fields[] = {
    VS_VMSTATE_FIELD(struct vs_serial_record, ier, 1),
    VS_VMSTATE_FIELD(struct vs_serial_record, lcr, 1),
    VS_VMSTATE_FIELD(struct vs_serial_record, mcr, 1),
    VS_VMSTATE_FIELD(struct vs_serial_record, scr, 1),
    VS_VMSTATE_FIELD(struct vs_serial_record, dll, 1),
    VS_VMSTATE_FIELD(struct vs_serial_record, dlm, 1),
    VS_VMSTATE_FIELD(struct vs_serial_record, pad, 1),
    VS_VMSTATE_FIELD(struct vs_serial_record, bytes_out, 1),
};

const struct vs_vmstate vs_serial_vmstate = {
    .name = "serial", .version = 1, .min_version = 1,
    .fields = serial_fields, .nr_fields = sizeof(serial_fields) / sizeof(serial_fields[0]),
    .record = serial_record, .pre_save = serial_pre_save, .post_load = serial_post_load,
};

int vs_serial_attach(struct vs_serial *s, struct vs_bus *bus, struct vs_vmstate_registry *r)
{
    int rc = vs_bus_register(bus, VS_BUS_PIO, VS_SERIAL_BASE, VS_SERIAL_PORTS, "serial0",
                             serial_bus_io, s);
    return rc ? rc : vs_vmstate_register(r, &vs_serial_vmstate, 0, s);
}
