/* The guest's console input: when COM1's output goes to this process's stdout and stdin
 * is a terminal or a pipe, a thread forwards what stdin delivers to the UART's receiver,
 * no faster than the guest makes room (nothing is lost to an overrun; a guest that never
 * reads leaves the rest waiting in stdin). A terminal stays in its normal (line) mode and
 * is read only while this process is in its foreground. End of input ends the thread. */
#ifndef VS_CONSOLE_INPUT_H
#define VS_CONSOLE_INPUT_H

#include <stdbool.h>
#include "vmm/devices/serial.h"

struct console_input;

/* Start forwarding fd to s if that applies (see above); *out is NULL when it does not.
 * Fails only when the thread cannot be started. */
int console_input_start(struct console_input **out, struct vs_serial *s, int fd);
/* Whether fd is something to forward: a terminal or a pipe. */
bool console_input_wanted(int fd);
/* Stop the thread and free it (NULL: nothing). Returns within about 100 ms. */
void console_input_stop(struct console_input *ci);

#endif
