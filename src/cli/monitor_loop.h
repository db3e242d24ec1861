/* The life of a monitor process once its VM exists (`vmshift run`, and `vmshift receive`
 * after a migration arrived): serve the control socket until quit, a signal, --run-for,
 * or (without a control socket) a failed guest; then stop the VM and print its status. */
#ifndef VS_MONITOR_LOOP_H
#define VS_MONITOR_LOOP_H

#include "ctl/vm_commands.h"

void monitor_install_signals(void);

/* Serves cmds->vm (already started) on ctl_path (may be NULL). Returns the process exit
 * status: 0, 3 if the guest failed, or 128 + the signal when SIGTERM or SIGINT stopped
 * it. Destroys nothing: the caller owns the VM. */
int monitor_serve(struct vm_commands *cmds, const char *ctl_path, double run_for_s,
                  const char *who);

#endif
