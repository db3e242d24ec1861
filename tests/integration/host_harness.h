/* Integration-test harness for host agents: start vmshiftd (in a network namespace or
 * not), start VMs through it, look at them, and run `vmshift evacuate`. Migration
 * security options come from harness.c (harness_security_args,
 * harness_add_migrate_security), as for single migrations. */
#ifndef VS_HOST_HARNESS_H
#define VS_HOST_HARNESS_H

#include "harness.h"

struct host_proc {
    pid_t pid;
    bool vms_outlive;       /* started without --vms-die-with-daemon */
    char netns[32], addr[32];
    char listen[48];        /* --listen HOST:PORT ("" without) */
    char name[16];
    char dir[64];           /* temporary directory: socket, state dir, stderr */
    char sock[128];
    char stderr_path[128];
};

/* Start `vmshiftd --ctl SOCK --name NAME --state-dir DIR/vms --vms-die-with-daemon
 * --migration-addr ADDR --receive-opt SEC... ARGS...` inside netns (NULL: here) and wait
 * until it answers. */
void host_proc_start(struct host_proc *h, const char *name, const char *netns,
                     const char *migration_addr, const char *const *args);
/* `vmshiftd --ctl SOCK --name NAME --state-dir DIR/vms --vms-die-with-daemon --listen
 * LISTEN ARGS...` inside netns: no --migration-addr (the HOST of --listen) and no
 * --receive-opt, so the daemon's own security options in ARGS (--tls-*) secure its
 * listener, its receivers and the VMs it sends away. */
void host_proc_start_listening(struct host_proc *h, const char *name, const char *netns,
                               const char *listen, const char *const *args);
/* The same, but the VMs outlive the daemon (no --vms-die-with-daemon). */
void host_proc_start_outliving(struct host_proc *h, const char *name, const char *netns,
                               const char *migration_addr, const char *const *args);
/* Start the daemon again on the same socket and state directory (after it died). */
void host_proc_restart(struct host_proc *h, const char *const *args);
/* host-shutdown (which stops its VMs), wait for the exit (SIGKILL after 20 s), remove the
 * directory; fails the test unless the daemon exited with status 0 (under ASan: no leak). */
void host_proc_stop(struct host_proc *h);

/* A command to the daemon; the _any form returns ok:false replies too. Caller puts. */
struct json_object *host_cmd(struct host_proc *h, const char *cmd, struct json_object *args);
struct json_object *host_cmd_any(struct host_proc *h, const char *cmd, struct json_object *args);
/* The same with a name=NAME argument plus key=value tokens (NULL-terminated, may be NULL). */
struct json_object *host_vm_cmd(struct host_proc *h, const char *cmd, const char *name,
                                const char *const *kv);

/* vm-start NAME with key=value tokens ("mem=32M", ...); waits until it runs. */
void host_vm_start_wait(struct host_proc *h, const char *name, const char *const *kv);
/* The daemon's entry of a VM (vm-list), or NULL; caller puts. */
struct json_object *host_vm_entry(struct host_proc *h, const char *name);
/* The state of a VM's entry ("" if there is none). Static buffer. */
const char *host_vm_state(struct host_proc *h, const char *name);
/* The VM's own status through the daemon (vm-ctl vm-cmd=status). Caller puts. */
struct json_object *host_vm_status(struct host_proc *h, const char *name);
/* Poll until guest[key] >= value (through the daemon); returns the status (caller puts). */
struct json_object *host_vm_wait_guest(struct host_proc *h, const char *name, const char *key,
                                       uint64_t value, double timeout_s);
/* The guest goes on: guest[key] grows by `step` from now, and it finds no bad page. */
void host_vm_expect_progress(struct host_proc *h, const char *name, const char *key,
                             uint64_t step, double timeout_s);
/* The XXH3 digest of a range of the VM's RAM (caller frees). */
char *host_vm_digest(struct host_proc *h, const char *name, uint64_t start, uint64_t len);

/* `vmshift evacuate --from FROM --to TO[,TO...] --report FILE ARGS...` with the security
 * fields as --migrate-opt, in the background; wait returns its exit status and *report
 * (caller puts). Its output goes into the test log. */
struct evac_run {
    pid_t pid;
    char dir[64], report[96], out[96];
};
void host_evacuate_start(struct evac_run *run, struct host_proc *from,
                         struct host_proc *const *to, unsigned nto, const char *const *args);
int host_evacuate_wait(struct evac_run *run, struct json_object **report, double timeout_s);
/* Both in one. */
int host_evacuate(struct host_proc *from, struct host_proc *const *to, unsigned nto,
                  const char *const *args, struct json_object **report, double timeout_s);
/* The report's entry for a VM (borrowed). */
struct json_object *evac_report_vm(struct json_object *report, const char *name);

#endif
