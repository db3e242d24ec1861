/* vmshiftd's state and its VM life cycle: start a VM, prepare an incoming one, notice
 * when a VM answers or arrives, stop one, reap monitors that exit (one monitor's crash
 * ends one entry and nothing else), and serve the host's control socket until told to
 * shut down. The control commands are in host_commands.c. */
#ifndef VS_HOST_DAEMON_H
#define VS_HOST_DAEMON_H

#include <stdbool.h>
#include "ctl/ctl_server.h"
#include "host/host_options.h"
#include "host/host_table.h"

struct json_object;
struct vs_tls;

struct host_daemon {
    struct host_options opt;
    struct vs_tls *listen_tls;   /* --listen's TLS (NULL: no --listen, or --insecure) */
    struct host_table table;
    bool shutdown;               /* host-shutdown was asked */
};

/* Run the daemon until SIGINT/SIGTERM or host-shutdown; stops every VM on the way out.
 * Returns the process exit status. */
int host_daemon_main(struct host_daemon *d);

/* vm-start: spawn `vmshift run` for the request; the entry starts as "starting". */
int host_vm_start(struct host_daemon *d, const char *name, struct json_object *req,
                  struct host_vm **out);
/* vm-receive: reserve the memory, spawn `vmshift receive` and wait until it listens. */
int host_vm_receive(struct host_daemon *d, const char *name, uint64_t mem, unsigned vcpus,
                    struct host_vm **out);
/* vm-stop: ask a running VM to quit (killed after --stop-timeout), kill a receiver whose
 * VM has not arrived, or forget an ended entry (*forgotten). */
int host_vm_stop(struct host_daemon *d, struct host_vm *vm, bool *forgotten);
/* A starting or incoming VM whose control socket answers becomes "running". Returns
 * whether the VM is running now. */
bool host_vm_refresh(struct host_daemon *d, struct host_vm *vm);
/* One round of housekeeping: reap exited monitors, notice VMs that answer or arrived,
 * enforce start and stop deadlines. */
void host_daemon_tick(struct host_daemon *d);

/* The commands of the host's control socket (host_commands.c); ctx: the daemon. */
extern const struct ctl_command host_command_table[];

#endif
