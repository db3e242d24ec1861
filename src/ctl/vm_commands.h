/* The control-socket commands of a running VM (status, pause, resume, quit, set-rate,
 * digest, debug-poke, migrate, migrate-status, cancel, reclaim; dirty-rate through
 * converge_commands.c): a ctl_handler_fn that maps JSON requests onto VM operations. */
#ifndef VS_VM_COMMANDS_H
#define VS_VM_COMMANDS_H

#include <stdbool.h>
#include "migrate/report.h"
#include "vmm/vm.h"

struct json_object;

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
};

/* Cancel and free a running outgoing migration (before the VM goes away). */
void vm_commands_finish(struct vm_commands *c);

int vm_commands_handle(void *ctx, const char *cmd, struct json_object *request,
                       struct json_object *reply);

/* The "status" reply fields (also used by `vmshift run` to print a final report). */
void vm_commands_status(struct vs_vm *vm, struct json_object *reply);

#endif
