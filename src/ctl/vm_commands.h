/* The QMP commands of a running VM's monitor (docs/control-protocol.md): the command
 * table, the VM's own commands (query-status, stop, cont, quit, vmshift-status,
 * vmshift-set-rate, vmshift-digest, vmshift-debug-poke, vmshift-console-input, reclaim) and its events (STOP, RESUME,
 * SHUTDOWN; the migration's through migration_commands.c). */
#ifndef VS_VM_COMMANDS_H
#define VS_VM_COMMANDS_H

#include <stdbool.h>
#include "ctl/ctl_server.h"
#include "ctl/converge_commands.h"
#include "migrate/report.h"
#include "vmm/vm.h"

struct json_object;
struct ctl_server;

struct vs_migration;
struct vs_postcopy_dest;

struct vm_commands {
    struct vs_vm *vm;
    const char *ctl_path;        /* this VM's control socket (for messages), or NULL */
    bool quit;                   /* set by the "quit" command */
    struct vs_migration *migration;        /* the last outgoing migration, if any */
    bool has_incoming;
    struct vs_migration_stats incoming;    /* how this VM arrived, if it did */
    struct vs_postcopy_dest *postcopy;     /* it is still arriving in post-copy */
    struct ctl_server *server;             /* where events go (NULL: none) */
    struct json_object *params;            /* migration parameters (migration_params.h) */
    /* What the last events said, so that only changes are sent. */
    char seen_status[32];
    uint32_t seen_pass;
    bool seen_running, seen_valid;
    struct dirty_calc dirty;               /* calc-dirty-rate */
};

/* The VM monitor's commands, for ctl_server_open. */
extern const struct ctl_command vm_command_table[];

/* Cancel and free a running outgoing migration (before the VM goes away). */
void vm_commands_finish(struct vm_commands *c);

/* Send the events of what changed since the last call (VM running or paused, migration
 * status and pass). The monitor loop calls it after every poll. */
void vm_commands_watch(struct vm_commands *c);

/* The "status" reply fields (also used by `vmshift run` to print a final report). */
void vm_commands_status(struct vs_vm *vm, struct json_object *reply);

#endif
