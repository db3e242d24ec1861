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
#include "wire/reader.h"
#include "wire/writer.h"

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

/* The monitors the harness starts (vmshift run, vmshift receive) get --keep-after-migrate:
 * a test looks at a source after its VM left. This makes the next one it starts (only that
 * one) exit on its own once its VM has migrated away, as by default. */
void harness_exit_after_migrate(void);

/* Fail the test loudly unless /dev/kvm can be opened: these tests never skip. */
void require_kvm(void);

/* Start `vmshift run --ctl SOCK --serial LOG ARGS...` (args NULL-terminated) and wait
 * until its control socket answers. Fails the test if it exits or does not answer. */
void vm_proc_start(struct vm_proc *p, const char *const *args);
/* The same, inside network namespace netns. */
void vm_proc_start_in(struct vm_proc *p, const char *netns, const char *const *args);
/* How long those wait for the control socket (20 s; more for VMs that fill gigabytes). */
extern double harness_start_timeout_s;
/* Print what every thread of process pid is doing (kernel state, wchan, kernel and user
 * stacks): for a test that found a process stuck. */
void harness_dump_stacks(pid_t pid, const char *who);

/* Two test hosts: network namespaces joined by a veth pair, addresses 198.18.0.1/24 (a)
 * and 198.18.0.2/24 (b), optionally shaped with tc (rate like "1gbit", or NULL). */
struct test_hosts {
    char a[32], b[32];
};
void test_hosts_create(struct test_hosts *h, const char *rate);
void test_hosts_destroy(struct test_hosts *h);
/* Cut (up = false) or restore the link between the two hosts. */
void test_hosts_link(struct test_hosts *h, bool up);
/* How migrations started through this harness are secured, unless a test's own
 * arguments say otherwise: TEST_SEC_PSK (the default), TEST_SEC_CERT, TEST_SEC_INSECURE. */
enum test_security { TEST_SEC_PSK, TEST_SEC_CERT, TEST_SEC_INSECURE };
void test_security_use(enum test_security s);
/* A file of the test credentials (scripts/make-test-certs.sh, made once per test binary
 * in a temporary directory): "psk", "other-psk", "ca.pem", "source.pem", "dest.key",
 * "other.pem", "expired.pem", ... Static buffer, one per call site. */
const char *test_cred(const char *file);

/* cmocka group setup and teardown: create and remove test_group_hosts (unshaped). */
extern struct test_hosts test_group_hosts;
int test_hosts_group_setup(void **state);
int test_hosts_group_teardown(void **state);
/* Start `vmshift receive --listen HOST:0 --port-file ... --ctl SOCK --serial LOG ARGS...`
 * (inside network namespace netns unless NULL) and wait until it listens; p->port is
 * set. Its control socket answers only after a VM arrived. Unless ARGS name a security
 * option (--insecure, --tls-*), the harness's security is added. */
void vm_receiver_start(struct vm_proc *p, const char *host, const char *netns,
                       const char *const *args);
/* Wait for a process started by the harness to exit on its own; returns its exit status
 * (fails the test after timeout_s). */
int vm_proc_wait_exit(struct vm_proc *p, double timeout_s);
/* Wait until the receiver's control socket answers (the VM has arrived). */
void vm_proc_wait_ctl(struct vm_proc *p, double timeout_s);

/* A fake source speaking the plain stream (receivers run --insecure for it): connected to
 * 127.0.0.1:port, it sent a HELLO of len bytes (any version) and read the HELLO_REPLY. */
struct fake_source {
    struct vs_channel *ch;
    struct vs_wire_writer w;
    struct vs_wire_reader r;
    struct vs_wire_hello_reply reply;
};
void fake_source_hello(struct fake_source *f, int port, const void *hello, uint32_t len);
/* The HELLO of a current source for a VM of ram bytes and one vCPU, one stream. */
struct vs_wire_hello fake_hello(uint64_t ram);
void fake_source_close(struct fake_source *f);

/* Start a migration of src to HOST:PORT with extra request fields (may be NULL; unless
 * they name a security field, insecure or tls_*, the harness's security is added). */
void vm_migrate_start(struct vm_proc *src, const char *to, struct json_object *args);
/* The same, then poll until it finishes; returns the final "migration" report (caller
 * puts it). */
struct json_object *vm_migrate(struct vm_proc *src, const char *to, struct json_object *args,
                               double timeout_s);
/* Poll the running migration of src until it ends (completed, failed, cancelled or
 * unconfirmed) or pauses in post-copy (postcopy-paused: a lost connection, which the
 * source then retries by itself); returns its report at that moment
 * (caller puts it). */
struct json_object *vm_migration_wait(struct vm_proc *src, double timeout_s);
/* A 64 MiB, 2-vCPU verify VM in src migrating to a new receiver dst at 16 MB/s with a zero
 * downtime limit: still in pre-copy for many seconds, so a test can strike mid-migration.
 * Returns once 8 MiB of the first pass went out. */
void vm_migrate_start_slow(struct vm_proc *src, struct vm_proc *dst);
/* Wait until src's migration is active and has sent 8 MiB (fails the test after 30 s). */
void vm_migration_wait_under_way(struct vm_proc *src);
/* The "xxh3" digest of guest RAM [start, start+len) (caller frees). */
char *vm_digest(struct vm_proc *p, uint64_t start, uint64_t len);
/* A string / number field of a JSON object ("" / 0 if absent). */
const char *json_str(struct json_object *o, const char *key);
double json_num(struct json_object *o, const char *key);
/* A member that must be there (fails the test otherwise); borrowed from o. */
struct json_object *json_member(struct json_object *o, const char *key);
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

/* Run vmshift with args to completion, capturing stderr into err (NUL-terminated); returns
 * its exit status (128 + N when killed by signal N). */
int run_vmshift(const char *const *args, char *err, size_t errlen, double timeout_s);
/* The same for another program (VMSHIFTD_BIN, ...). */
int run_program(const char *bin, const char *const *args, char *err, size_t errlen,
                double timeout_s);

/* Contents of the VM's serial log (static buffer, NUL-terminated). */
const char *vm_serial_log(struct vm_proc *p);

double now_s(void);

/* Migration security options, in one place (test_security_use chooses them): the
 * arguments of one side (NULL-terminated, static; the receiver's for every `vmshift
 * receive`, also through vmshiftd --receive-opt), and the fields every migrate request gets
 * unless it names its own (vm_migrate, vmshift evacuate --migrate-opt). */
const char *const *harness_security_args(bool source);
/* Whether args already choose the security (--insecure, --tls-...). */
bool harness_names_security(const char *const *args);
void harness_add_migrate_security(struct json_object *req);

/* Start BIN PRE... ARGS... (inside netns unless NULL or ""), stdin/stdout on /dev/null,
 * stderr into stderr_path; it dies with the test binary. */
pid_t harness_spawn(const char *bin, const char *netns, const char *const *args,
                    const char *stderr_path, const char *const *pre);
/* Run a shell command (system()); the test fails, naming it, if it fails. */
void harness_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A bridge br in namespace ns, up, with a veth (VETHu in ns, VETHs in seg_ns) to bridge
 * seg_br of the shared segment's namespace seg_ns: a host's software switch and its
 * uplink. veth: at most 14 characters. */
void harness_bridge_on_segment(const char *ns, const char *br, const char *veth,
                               const char *seg_ns, const char *seg_br);
/* A fresh /tmp/vmshift-test-XXXXXX directory. */
void harness_temp_dir(char *dir, size_t len);

#endif

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
