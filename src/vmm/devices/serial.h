/* COM1 (I/O ports 0x3f8-0x3ff): a 16550 that is always ready to transmit. Output goes
 * to stdout, a log file, or nowhere. Input is not supported. */
#ifndef VS_SERIAL_H
#define VS_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define VS_SERIAL_BASE 0x3f8
#define VS_SERIAL_PORTS 8

struct vs_bus;
struct vs_vmstate_registry;

/* The migratable state (device "serial", version 1; docs/device-state.md). */
struct vs_serial_record {
    uint8_t ier, lcr, mcr, scr, dll, dlm, pad[2];
    uint64_t bytes_out;
};
_Static_assert(sizeof(struct vs_serial_record) == 16, "serial version 1 layout");

struct vs_serial {
    pthread_mutex_t lock;
    FILE *out;          /* NULL: discard */
    bool owns_out;
    uint8_t ier, lcr, mcr, scr, dll, dlm;
    uint64_t bytes_out;
    struct vs_serial_record rec;    /* saved and loaded state (VM paused) */
};

/* target: "stdout", "none", or a file path (created or appended to). */
int vs_serial_open(struct vs_serial *s, const char *target);
void vs_serial_close(struct vs_serial *s);

/* A one-byte access to port base..base+7. *data is read or written. */
void vs_serial_io(struct vs_serial *s, uint16_t port, bool is_write, uint8_t *data);

/* Claim ports VS_SERIAL_BASE..+VS_SERIAL_PORTS on the bus and register the state. */
int vs_serial_attach(struct vs_serial *s, struct vs_bus *bus, struct vs_vmstate_registry *r);
extern const struct vs_vmstate vs_serial_vmstate;

#endif
