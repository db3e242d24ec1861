/* How vmshiftd starts VM monitors: the command lines of `vmshift run` (from a vm-start
 * request) and `vmshift receive` (for an incoming VM), and the fork/exec that runs them
 * in their own process, with stderr into the VM's directory. */
#ifndef VS_HOST_SPAWN_H
#define VS_HOST_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

#define HOST_ARGV_MAX 96

struct host_argv {
    char *v[HOST_ARGV_MAX + 1];  /* NULL-terminated, each string owned */
    int n;
};

int host_argv_add(struct host_argv *a, const char *s);
void host_argv_free(struct host_argv *a);

/* Options every incoming migration's `vmshift receive` gets, set once per daemon: the one
 * place migration security options (certificates, keys, --insecure) are passed through. */
struct host_receive_opts {
    const char *listen_addr;          /* IP address the receivers listen on */
    const char *const *extra_args;    /* NULL-terminated (may be NULL) */
    /* Security options when extra_args name none (NULL-terminated, may be NULL): the
     * daemon's own (vmshiftd --tls-*, --insecure). */
    const char *const *default_security;
    double accept_timeout_s;          /* give up an announced VM that does not come */
};

/* `VMSHIFT run --ctl CTL --serial SERIAL --mem BYTES ...` from the fields of a vm-start
 * request (mem, vcpus, workload, range, rate, fill, seed, append, kernel, boot, paused).
 * Sets *mem and *vcpus. Unknown fields are refused, naming the known ones. */
int host_run_argv(const char *vmshift, struct json_object *req, const char *ctl,
                  const char *serial, struct host_argv *out, uint64_t *mem, unsigned *vcpus);

/* "198.18.0.1:PORT", or "[::1]:PORT" for an IPv6 address. */
void host_addr_port(const char *addr, int port, char *buf, size_t len);

/* Do these command-line arguments choose a security (--insecure, --tls-...)? */
bool host_args_name_security(const char *const *args);

/* `VMSHIFT receive --listen ADDR:0 --port-file PORTFILE --ctl CTL --serial SERIAL
 * --max-mem MEM --report REPORT --accept-timeout S EXTRA... [DEFAULT_SECURITY...]`. */
int host_receive_argv(const char *vmshift, const struct host_receive_opts *ro, const char *dir,
                      const char *ctl, uint64_t mem, struct host_argv *out);

/* fork + exec argv with stdin and stdout on /dev/null and stderr into stderr_path.
 * The child runs in its own session; with die_with_parent it is killed when the daemon
 * dies (tests and benchmarks), else it outlives the daemon. */
int host_spawn(const struct host_argv *argv, const char *stderr_path, bool die_with_parent,
               pid_t *pid);

#endif
