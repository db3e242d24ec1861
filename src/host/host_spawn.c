#include "host/host_spawn.h"
#include "common/error.h"
#include "ctl/ctl_json.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int host_argv_add(struct host_argv *a, const char *s)
{
    if (a->n >= HOST_ARGV_MAX)
        return vs_fail(E2BIG, "too many arguments for a VM monitor (at most %d)", HOST_ARGV_MAX);
    char *d = strdup(s);
    if (!d)
        return vs_fail(ENOMEM, "out of memory building a command line");
    a->v[a->n++] = d;
    a->v[a->n] = NULL;
    return 0;
}

static int add2(struct host_argv *a, const char *opt, const char *val)
{
    int rc = host_argv_add(a, opt);
    return rc ? rc : host_argv_add(a, val);
}

static int add_u64(struct host_argv *a, const char *opt, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return add2(a, opt, buf);
}

void host_argv_free(struct host_argv *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
    a->v[0] = NULL;
}

/* vm-start fields that become `vmshift run` options as they are. */
static const char *const run_string_fields[] = { "workload", "range", "fill", "append", "kernel",
                                                 "boot" };
static const char *const run_number_fields[] = { "vcpus", "rate", "seed" };

#define KNOWN_RUN_FIELDS "mem, vcpus, workload, range, rate, fill, seed, append, kernel, " \
                         "boot, paused"

static int run_field(struct json_object *req, const char *key, struct host_argv *out,
                     unsigned *vcpus)
{
    char opt[48];
    snprintf(opt, sizeof(opt), "--%s", key);
    for (size_t i = 0; i < sizeof(run_string_fields) / sizeof(run_string_fields[0]); i++) {
        if (strcmp(key, run_string_fields[i]) == 0) {
            const char *s;
            int rc = ctl_json_get_string(req, key, &s);
            return rc ? rc : add2(out, opt, s);
        }
    }
    for (size_t i = 0; i < sizeof(run_number_fields) / sizeof(run_number_fields[0]); i++) {
        if (strcmp(key, run_number_fields[i]) == 0) {
            uint64_t v;
            int rc = ctl_json_get_u64(req, key, &v);
            if (rc)
                return rc;
            if (strcmp(key, "vcpus") == 0) {
                if (v < 1 || v > 32)
                    return vs_fail(EINVAL, "vcpus=%llu is out of range; give 1 to 32",
                                   (unsigned long long)v);
                *vcpus = (unsigned)v;
            }
            return add_u64(out, opt, v);
        }
    }
    if (strcmp(key, "paused") == 0) {
        bool b;
        int rc = ctl_json_get_bool(req, key, &b);
        return rc ? rc : b ? host_argv_add(out, "--paused") : 0;
    }
    return vs_fail(EINVAL, "vm-start does not know the field '%s'; known: name, " KNOWN_RUN_FIELDS,
                   key);
}

/* A VM that migrated away stays in its monitor, its RAM given back, until the daemon
 * stops it (vm-stop: `vmshift evacuate` does once the destination runs it), so that the
 * daemon's table records it `migrated` (from the monitor's status) rather than exited. */
#define KEEP_AFTER_MIGRATE "--keep-after-migrate"

int host_run_argv(const char *vmshift, struct json_object *req, const char *ctl,
                  const char *serial, struct host_argv *out, uint64_t *mem, unsigned *vcpus)
{
    memset(out, 0, sizeof(*out));
    *vcpus = 1;
    int rc = ctl_json_get_u64(req, "mem", mem);
    if (rc == -ENOENT)
        rc = vs_fail(EINVAL, "vm-start needs mem=SIZE (e.g. mem=512M): it is what the VM "
                             "takes of the host's memory budget");
    if (rc)
        return rc;
    if ((rc = host_argv_add(out, vmshift)) || (rc = host_argv_add(out, "run")) ||
        (rc = add2(out, "--ctl", ctl)) || (rc = add2(out, "--serial", serial)) ||
        (rc = host_argv_add(out, KEEP_AFTER_MIGRATE)) || (rc = add_u64(out, "--mem", *mem)))
        goto fail;
    json_object_object_foreach(req, key, val) {
        (void)val;
        if (!strcmp(key, "cmd") || !strcmp(key, "name") || !strcmp(key, "mem"))
            continue;
        if ((rc = run_field(req, key, out, vcpus)))
            goto fail;
    }
    return 0;
fail:
    host_argv_free(out);
    return rc;
}

void host_addr_port(const char *addr, int port, char *buf, size_t len)
{
    snprintf(buf, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
}

bool host_args_name_security(const char *const *args)
{
    for (int i = 0; args && args[i]; i++)
        if (!strcmp(args[i], "--insecure") || !strncmp(args[i], "--tls-", 6))
            return true;
    return false;
}

int host_receive_argv(const char *vmshift, const struct host_receive_opts *ro, const char *dir,
                      const char *ctl, uint64_t mem, struct host_argv *out)
{
    memset(out, 0, sizeof(*out));
    char listen[96], port_file[160], serial[160], report[160], timeout[32];
    host_addr_port(ro->listen_addr, 0, listen, sizeof(listen));
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    snprintf(serial, sizeof(serial), "%s/serial.log", dir);
    snprintf(report, sizeof(report), "%s/incoming.json", dir);
    snprintf(timeout, sizeof(timeout), "%g", ro->accept_timeout_s);
    int rc;
    if ((rc = host_argv_add(out, vmshift)) || (rc = host_argv_add(out, "receive")) ||
        (rc = add2(out, "--listen", listen)) || (rc = add2(out, "--port-file", port_file)) ||
        (rc = add2(out, "--ctl", ctl)) || (rc = add2(out, "--serial", serial)) ||
        (rc = host_argv_add(out, KEEP_AFTER_MIGRATE)) ||
        (rc = add_u64(out, "--max-mem", mem)) || (rc = add2(out, "--report", report)) ||
        (rc = add2(out, "--accept-timeout", timeout)))
        goto fail;
    for (int i = 0; ro->extra_args && ro->extra_args[i]; i++)
        if ((rc = host_argv_add(out, ro->extra_args[i])))
            goto fail;
    for (int i = 0; !host_args_name_security(ro->extra_args) && ro->default_security &&
                    ro->default_security[i]; i++)
        if ((rc = host_argv_add(out, ro->default_security[i])))
            goto fail;
    return 0;
fail:
    host_argv_free(out);
    return rc;
}

int host_spawn(const struct host_argv *argv, const char *stderr_path, bool die_with_parent,
               pid_t *pid)
{
    int err_fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (err_fd < 0)
        return vs_fail(errno, "cannot create %s: %s", stderr_path, strerror(errno));
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0) {
        int e = errno;
        close(err_fd);
        return vs_fail(e, "cannot start %s: fork failed: %s", argv->v[0], strerror(e));
    }
    if (p == 0) {
        setsid();
        if (die_with_parent) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(127);
        }
        /* The daemon ignores SIGPIPE and may block signals; the monitor starts clean. */
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        dup2(err_fd, 2);
        execv(argv->v[0], argv->v);
        dprintf(2, "vmshiftd: cannot run %s: %s\n", argv->v[0], strerror(errno));
        _exit(127);
    }
    close(err_fd);
    *pid = p;
    return 0;
}
