/* The UART's migratable state (vmstate "serial").
 * Version 1: the registers of the write-only COM1 of vmshift before the 16550A model, in
 * exactly the layout of the SERIAL section older sources send. Version 2 adds what the
 * model keeps besides: FCR, line and modem status, the pending THR-empty interrupt, the
 * receive FIFO and the input counter. The interrupt line is recomputed after a load. */
#include "vmm/devices/serial.h"
#include "vmm/devices/serial_regs.h"
#include "vmm/vmstate.h"
#include "common/error.h"

#include <string.h>

#define REC struct vs_serial_rec

_Static_assert(offsetof(REC, bytes_out) == 8 && offsetof(REC, fcr) == 16,
               "vmstate serial version 1 is the 16-byte SERIAL section of older sources");

static const struct vs_vmstate_field serial_fields[] = {
    VS_VMSTATE_FIELD(REC, ier, 1),
    VS_VMSTATE_FIELD(REC, lcr, 1),
    VS_VMSTATE_FIELD(REC, mcr, 1),
    VS_VMSTATE_FIELD(REC, scr, 1),
    VS_VMSTATE_FIELD(REC, dll, 1),
    VS_VMSTATE_FIELD(REC, dlm, 1),
    VS_VMSTATE_FIELD(REC, pad, 1),
    VS_VMSTATE_FIELD(REC, bytes_out, 1),
    VS_VMSTATE_FIELD(REC, fcr, 2),
    VS_VMSTATE_FIELD(REC, lsr, 2),
    VS_VMSTATE_FIELD(REC, msr, 2),
    VS_VMSTATE_FIELD(REC, thri_pending, 2),
    VS_VMSTATE_FIELD(REC, rx_count, 2),
    VS_VMSTATE_FIELD(REC, rx_fifo, 2),
    VS_VMSTATE_FIELD(REC, bytes_in, 2),
};

static void *serial_record(void *opaque)
{
    return &((struct vs_serial *)opaque)->rec;
}

static int serial_pre_save(void *opaque)
{
    struct vs_serial *s = opaque;
    pthread_mutex_lock(&s->lock);
    REC *r = &s->rec;
    memset(r, 0, sizeof(*r));
    r->ier = s->ier, r->lcr = s->lcr, r->mcr = s->mcr, r->scr = s->scr;
    r->dll = s->dll, r->dlm = s->dlm, r->bytes_out = s->bytes_out;
    r->fcr = s->fcr;
    r->lsr = serial_lsr(s);
    r->msr = s->msr;
    r->thri_pending = s->thri_pending;
    r->rx_count = (uint8_t)s->rx_count;
    for (unsigned i = 0; i < s->rx_count; i++)
        r->rx_fifo[i] = s->rx_fifo[(s->rx_head + i) % VS_SERIAL_FIFO];
    r->bytes_in = s->bytes_in;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* A version 1 source had no FIFOs, no input and no interrupts: start from an empty,
 * quiet receiver, FIFOs off, the modem lines as MCR makes them, and THR empty (so an
 * enabled THR-empty interrupt is pending, as a real UART would show it). */
static void apply_v1_defaults(REC *r, uint8_t mcr)
{
    r->fcr = 0;
    r->lsr = LSR_THRE | LSR_TEMT;
    struct vs_serial tmp = { .mcr = mcr };
    r->msr = serial_modem_lines(&tmp);
    r->thri_pending = 1;
    r->rx_count = 0;
    memset(r->rx_fifo, 0, sizeof(r->rx_fifo));
    r->bytes_in = 0;
}

static int check_record(const REC *r)
{
    unsigned capacity = (r->fcr & FCR_ENABLE) ? VS_SERIAL_FIFO : 1;
    if (r->rx_count > capacity)
        return vs_fail(EINVAL, "serial state: %u bytes in the receive FIFO, more than the %u "
                       "it holds with FCR 0x%02x; the source sent a corrupt UART state",
                       r->rx_count, capacity, r->fcr);
    if (r->thri_pending > 1)
        return vs_fail(EINVAL, "serial state: thri_pending is %u, not 0 or 1; the source sent "
                       "a corrupt UART state", r->thri_pending);
    return 0;
}

static int serial_post_load(void *opaque, uint32_t version)
{
    struct vs_serial *s = opaque;
    REC *r = &s->rec;
    if (version < 2)
        apply_v1_defaults(r, r->mcr & MCR_MASK);
    int rc = check_record(r);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    s->ier = r->ier & IER_MASK, s->lcr = r->lcr, s->mcr = r->mcr & MCR_MASK;
    s->scr = r->scr, s->dll = r->dll, s->dlm = r->dlm, s->bytes_out = r->bytes_out;
    s->fcr = r->fcr & FCR_KEPT;
    s->lsr_errors = r->lsr & LSR_ERRORS;
    /* the lines follow from MCR; the changes the guest has not read yet come along */
    s->msr = (uint8_t)(serial_modem_lines(s) | (r->msr & MSR_DELTAS));
    s->thri_pending = r->thri_pending;
    memcpy(s->rx_fifo, r->rx_fifo, sizeof(s->rx_fifo));
    s->rx_head = 0;
    s->rx_count = r->rx_count;
    s->bytes_in = r->bytes_in;
    pthread_cond_broadcast(&s->rx_room);
    serial_update_irq(s, true);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

const struct vs_vmstate vs_serial_vmstate = {
    .name = "serial",
    .version = 2,
    .min_version = 1,
    .fields = serial_fields,
    .nr_fields = sizeof(serial_fields) / sizeof(serial_fields[0]),
    .record = serial_record,
    .pre_save = serial_pre_save,
    .post_load = serial_post_load,
};
