/* The VMs of one host as vmshiftd sees them: one entry per VM monitor process (a
 * `vmshift run` it started, or a `vmshift receive` waiting for or running a VM that
 * migrated here), what each holds of the host's memory budget, and the budget check.
 * Pure bookkeeping: no processes are started or stopped here (host_spawn.c does that). */
#ifndef VS_HOST_TABLE_H
#define VS_HOST_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define HOST_MAX_VMS 256
#define HOST_NAME_MAX_LEN 32        /* VM names: [A-Za-z0-9._-], not starting with '.' */
#define HOST_PATH_LEN 108           /* a unix socket path, with its NUL */

enum host_vm_state {
    HOST_VM_STARTING,   /* `vmshift run` spawned; its control socket does not answer yet */
    HOST_VM_INCOMING,   /* `vmshift receive` spawned and listening; the VM has not arrived */
    HOST_VM_RUNNING,    /* its monitor serves its control socket (the VM may be paused) */
    HOST_VM_STOPPING,   /* asked to quit (or killed); waiting for the process to exit */
    HOST_VM_STOPPED,    /* the monitor exited after vm-stop, or after its VM migrated away */
    HOST_VM_MIGRATED,   /* stopped after its VM had migrated to another host */
    HOST_VM_EXITED,     /* the monitor exited on its own (status 0: quit or run-for) */
    HOST_VM_CRASHED,    /* a running VM's monitor died of a signal or exited with an error */
    HOST_VM_FAILED,     /* it never ran here: the start failed, or the incoming migration
                           failed or never came */
};

enum host_vm_origin { HOST_ORIGIN_STARTED, HOST_ORIGIN_MIGRATED_IN };

struct host_vm {
    char name[HOST_NAME_MAX_LEN + 1];
    enum host_vm_state state;
    enum host_vm_origin origin;
    pid_t pid;                  /* the monitor process (0 once reaped) */
    uint64_t mem;               /* guest RAM: what the VM holds of the budget */
    unsigned vcpus;
    char dir[HOST_PATH_LEN];    /* STATE_DIR/NAME: ctl.sock, serial.log, stderr.log, ... */
    char ctl[HOST_PATH_LEN];    /* the VM's own control socket */
    int port;                   /* incoming: the TCP port its receiver listens on */
    uint64_t since_ns;          /* when it entered its current state */
    uint64_t deadline_ns;       /* starting/incoming/stopping: when to give up */
    bool quit_sent;             /* stopping: "quit" was delivered (else it is killed) */
    bool was_migrated;          /* stopping: its VM had migrated away (-> MIGRATED) */
    bool adopted;               /* left running by an earlier daemon: not our child */
    int exit_status;            /* exit code, or 128 + signal, once reaped */
    char error[256];            /* why it crashed or failed to start ("" if none) */
};

struct host_table {
    struct host_vm *vms[HOST_MAX_VMS];
    unsigned count;
    uint64_t max_mem;           /* the budget: sum of the RAM of live VMs (0 = no limit) */
};

const char *host_vm_state_name(enum host_vm_state s);
/* A live entry holds memory and a process: starting, incoming, running or stopping. */
bool host_vm_is_live(const struct host_vm *vm);

/* A name usable as a directory name and in a socket path; errors say what is wrong. */
int host_check_name(const char *name);

struct host_vm *host_table_find(struct host_table *t, const char *name);
/* Memory held by live entries. */
uint64_t host_table_reserved(const struct host_table *t);
/* Can a VM of `mem` bytes named `name` come here? 0, or a negative errno with the reason
 * (name in use by a live VM, the budget exhausted, table full). */
int host_table_admit(const struct host_table *t, const char *name, uint64_t mem);
/* Add an entry (after host_table_admit). An ended entry of the same name is replaced. */
int host_table_add(struct host_table *t, const struct host_vm *vm, struct host_vm **out);
/* Remove and free an entry. */
void host_table_remove(struct host_table *t, struct host_vm *vm);
void host_table_clear(struct host_table *t);
/* The entry of a process (live entries only), or NULL. */
struct host_vm *host_table_find_pid(struct host_table *t, pid_t pid);

/* The state a reaped monitor ends in, and the error to record: exit status (or 128 +
 * signal) and whether the daemon had asked it to stop. */
enum host_vm_state host_vm_end_state(const struct host_vm *vm, int exit_status);

#endif
