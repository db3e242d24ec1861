/* Console input for the timer workload: COM1's received-data interrupt (IER bit 0, with
 * MCR.OUT2 gating it onto ISA IRQ 4 as on PCs) routed through the IOAPIC. The handler
 * reads every byte while LSR.DR and counts it; the workload loop echoes what arrived as
 * lines "vmshift-guest: console: TEXT" (at a newline, every CONSOLE_LINE bytes, or after a
 * second without input). vCPU 0 only. */
#ifndef VS_GUEST_CONSOLE_IN_H
#define VS_GUEST_CONSOLE_IN_H

#include <stdint.h>

struct vs_console_counts {
    uint64_t bytes;                 /* bytes read from the receiver */
    uint64_t errors;                /* bytes lost: a receiver overrun, or the echo fell behind */
};

/* vCPU 0 at boot, after vs_platform_setup, interrupts off. Returns 0, or -1 with a
 * message in err (the workload goes on without input). */
int vs_console_start(char *err, unsigned errlen);

/* vCPU 0, interrupts off, after every wake-up: echo what arrived. now_us: vs_now_us(). */
void vs_console_echo(uint32_t now_us);

void vs_console_counts(struct vs_console_counts *out);

#endif
