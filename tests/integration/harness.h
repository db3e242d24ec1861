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
};

/* Fail the test loudly unless /dev/kvm can be opened: these tests never skip. */
void require_kvm(void);

/* Start `vmshift run --ctl SOCK --serial LOG ARGS...` (args NULL-terminated) and wait
 * until its control socket answers. Fails the test if it exits or does not answer. */
void vm_proc_start(struct vm_proc *p, const char *const *args);
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
