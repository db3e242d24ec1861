/* The life of a monitor process once its VM exists (`vmshift run`, and `vmshift receive`
 * after a migration arrived): serve the control socket until quit, a signal, --run-for,
 * the VM's migration away, or (without a control socket) a failed guest; then stop the VM
 * and print its status. */
#ifndef VS_MONITOR_LOOP_H
#define VS_MONITOR_LOOP_H

#include "ctl/vm_commands.h"

void monitor_install_signals(void);

/* How a monitor serves its VM. */
struct monitor_opts {
    const char *who;            /* "vmshift run", "vmshift receive": for messages */
    const char *ctl_path;       /* the control socket (may be NULL) */
    double run_for_s;           /* quit this long after the start (0: until told) */
    bool keep_after_migrate;    /* stay (state migrated, RAM released) once the VM has
                                   migrated away, until quit or a signal */
};

/* How long a monitor whose VM migrated away keeps answering before it exits, so that
 * whoever follows the migration reads its final report. */
#define MONITOR_LINGER_MS 2000

/* Serves cmds->vm (already started) as o says. Once an outgoing migration has completed
 * (the VM runs at its destination) the guest's RAM is given back to the host and, unless
 * o->keep_after_migrate, the monitor exits MONITOR_LINGER_MS later. Returns the process
 * exit status: 0 (also after the VM migrated away), 1 if the guest failed, or 128 + the
 * signal when SIGTERM or SIGINT stopped it. Destroys nothing: the caller owns the VM. */
int monitor_serve(struct vm_commands *cmds, const struct monitor_opts *o);

#endif
