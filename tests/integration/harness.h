/* Integration-test harness: start `vmshift run` as a child process with a control socket
 * and a serial log in a fresh temporary directory, talk to it, and stop it. */
#ifndef VS_HARNESS_H
#define VS_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

struct json_object;

struct vm_proc {
    pid_t pid;
    char dir[64];          /* temporary directory, removed by vm_proc_stop */
    char sock[128];
    char serial[128];
    char stderr_path[128];
    int exit_status;       /* after vm_proc_stop: the exit code, or 128+signal */
    int port;              /* receivers: the port they listen on */
    char netns[32];        /* run inside this network namespace ("" = none) */
};

/* Put KEY=VALUE into the environment of the next process the harness starts (only
 * that one), e.g. VMSHIFT_FAULT=... */
void harness_child_env(const char *kv);

/* Fail the test loudly unless /dev/kvm can be opened: these tests never skip. */
void require_kvm(void);

/* Start `vmshift run --ctl SOCK --serial LOG ARGS...` (args NULL-terminated) and wait
 * until its control socket answers. Fails the test if it exits or does not answer. */
void vm_proc_start(struct vm_proc *p, const char *const *args);
/* The same, inside network namespace netns. */
void vm_proc_start_in(struct vm_proc *p, const char *netns, const char *const *args);

/* Two test hosts: network namespaces joined by a veth pair, addresses 198.18.0.1/24 (a)
 * and 198.18.0.2/24 (b), optionally shaped with tc (rate like "1gbit", or NULL). */
struct test_hosts {
    char a[32], b[32];
};
void test_hosts_create(struct test_hosts *h, const char *rate);
void test_hosts_destroy(struct test_hosts *h);
/* Start `vmshift receive --listen HOST:0 --port-file ... --ctl SOCK --serial LOG ARGS...`
 * (inside network namespace netns unless NULL) and wait until it listens; p->port is
 * set. Its control socket answers only after a VM arrived. */
void vm_receiver_start(struct vm_proc *p, const char *host, const char *netns,
                       const char *const *args);
/* Wait for a process started by the harness to exit on its own; returns its exit status
 * (fails the test after timeout_s). */
int vm_proc_wait_exit(struct vm_proc *p, double timeout_s);
/* Wait until the receiver's control socket answers (the VM has arrived). */
void vm_proc_wait_ctl(struct vm_proc *p, double timeout_s);

/* Start a migration of src to HOST:PORT with extra request fields (may be NULL). */
void vm_migrate_start(struct vm_proc *src, const char *to, struct json_object *args);
/* The same, then poll until it finishes; returns the final "migration" report (caller
 * puts it). */
struct json_object *vm_migrate(struct vm_proc *src, const char *to, struct json_object *args,
                               double timeout_s);
/* Poll the running migration of src until it ends (completed, failed, cancelled or
 * unconfirmed); returns its final report (caller puts it). */
struct json_object *vm_migration_wait(struct vm_proc *src, double timeout_s);
/* The "xxh3" digest of guest RAM [start, start+len) (caller frees). */
char *vm_digest(struct vm_proc *p, uint64_t start, uint64_t len);
/* A string / number field of a JSON object ("" / 0 if absent). */
const char *json_str(struct json_object *o, const char *key);
double json_num(struct json_object *o, const char *key);
/* Print a migration report in the test log (total time, downtime, bytes). */
void print_migration(const char *label, struct json_object *report);

/* Send "quit", wait for the exit (SIGKILL after 10 s), remove the directory. */
void vm_proc_stop(struct vm_proc *p);

/* Send a command; fail the test on transport errors or ok:false. Caller puts the reply. */
struct json_object *vm_cmd(struct vm_proc *p, const char *cmd, struct json_object *args);
/* Like vm_cmd but returns the reply even when ok:false. */
struct json_object *vm_cmd_any(struct vm_proc *p, const char *cmd, struct json_object *args);

/* A field of the "guest" object of a status reply (0 if absent). */
uint64_t guest_u64(struct json_object *status, const char *key);
const char *guest_str(struct json_object *status, const char *key);

/* Poll status every 50 ms until guest[key] >= value; returns the final status (caller
 * puts it). Fails the test after timeout_s seconds, printing the last status. */
struct json_object *wait_guest_at_least(struct vm_proc *p, const char *key, uint64_t value,
                                        double timeout_s);

/* Run vmshift with args to completion, capturing stderr into err (NUL-terminated). */
int run_vmshift(const char *const *args, char *err, size_t errlen, double timeout_s);

/* Contents of the VM's serial log (static buffer, NUL-terminated). */
const char *vm_serial_log(struct vm_proc *p);

double now_s(void);

#endif

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
