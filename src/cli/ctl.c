#include "cli/ctl.h"

#include "common/error.h"
#include "common/size.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_tcp.h"
#include "transport/security.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_DEFAULT_TIMEOUT_MS 10000

static const char usage_line[] =
    "usage: vmshift ctl SOCKET|HOST:PORT COMMAND [key=value ...] [--timeout MS] [--raw] "
    "[SECURITY]";

static const char usage_text[] =
    "usage: vmshift ctl SOCKET|HOST:PORT COMMAND [key=value ...] [--timeout MS] [--raw]\n"
    "                   [SECURITY]\n"
    "\n"
    "Execute one command on the QMP control socket of a running VM (vmshift run --ctl\n"
    "SOCKET) or host agent (vmshiftd --ctl SOCKET) and print the reply as\n"
    "{\"ok\": true, ...the return's fields} or {\"ok\": false, \"error\": ..., \"class\": ...}.\n"
    "\n"
    "  SOCKET          path of the control socket\n"
    "  HOST:PORT       a host agent on another host (vmshiftd --listen HOST:PORT), reached\n"
    "                  over TLS 1.3 with the SECURITY options:\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE   this client's certificate, its key\n"
    "                  and the CA the host agent's certificate must be signed by\n"
    "  --tls-name NAME the name the host agent's certificate must carry\n"
    "  --tls-psk FILE  instead of certificates: the key the host agent holds too\n"
    "  --insecure      plain TCP, for a host agent started with --insecure\n"
    "  COMMAND         a QMP command (query-migrate, migrate-set-parameters, ...) or one of\n"
    "                  the old names below, which are mapped onto QMP commands\n"
    "  key=value       the command's arguments; plain decimal numbers become integers,\n"
    "                  true/false become booleans, anything else is a string (\"4G\")\n"
    "  --timeout MS    wait at most MS milliseconds for the reply (default 10000;\n"
    "                  0 waits forever)\n"
    "  --raw           print the reply as one JSON line instead of pretty-printed\n"
    "  --help          show this help\n"
    "\n"
    "Exit status: 0 if the reply has \"ok\": true; 1 if \"ok\": false or the socket\n"
    "cannot be reached; 2 for usage errors (unknown option, missing or bad value).\n"
    "\n"
    "QMP commands of a VM (docs/control-protocol.md): query-status, stop, cont, quit,\n"
    "  migrate uri=tcp:HOST:PORT, query-migrate, migrate-set-parameters,\n"
    "  query-migrate-parameters, migrate-set-capabilities, query-migrate-capabilities,\n"
    "  migrate_cancel, migrate-start-postcopy, migrate-recover, calc-dirty-rate,\n"
    "  query-dirty-rate, set-vcpu-dirty-limit, cancel-vcpu-dirty-limit,\n"
    "  query-vcpu-dirty-limit, vmshift-status, vmshift-set-rate, vmshift-digest,\n"
    "  vmshift-debug-poke, query-commands.\n"
    "Old names, still accepted:\n"
    "  status            state, vCPUs, RAM, guest counters, incoming-migration report\n"
    "  pause | resume    stop or restart the vCPUs\n"
    "  quit              stop the VM and end its monitor\n"
    "  set-rate rate=N   the guest's dirty rate in pages/s (0 = full speed)\n"
    "  dirty-rate        measure the guest's dirty rate (no migration)\n"
    "  digest            XXH3 of guest RAM (start=, length= for a range)\n"
    "  migrate to=HOST:PORT ...   start a live migration (see vmshift migrate --help)\n"
    "  migrate-status    progress and report of the current or last migration\n"
    "  cancel            cancel the outgoing migration (the VM keeps running here)\n"
    "  start-postcopy    switch the running migration to post-copy\n"
    "  resume-migration [to=HOST:PORT]  reconnect a paused post-copy now (it also\n"
    "                    does by itself), to another address if given\n"
    "  debug-poke addr= value=   write 8 bytes of guest RAM (tests)\n"
    "Commands of a host agent (vmshiftd --ctl): host-status, vm-list, vm-start,\n"
    "  vm-receive, vm-status, vm-stop, vm-ctl, host-shutdown (docs/control-protocol.md).\n"
    "\n"
    "Example: vmshift ctl /tmp/vm.sock query-migrate\n";

static int usage_error(void)
{
    fprintf(stderr, "vmshift ctl: %s\n%s (see vmshift ctl --help)\n", vs_last_error(),
            usage_line);
    return 2;
}

static int parse_timeout(const char *text, int *out)
{
    uint64_t v;
    if (vs_parse_u64(text, &v) || v > INT_MAX)
        return vs_fail(EINVAL, "--timeout '%s' is not a number of milliseconds; give e.g. "
                               "--timeout 30000 (0 waits forever)",
                       text);
    *out = (int)v;
    return 0;
}

/* A security option (--tls-cert FILE, --tls-cert=FILE, --insecure, ...) at argv[*i] into
 * sec; *i moves past its value. Returns 1 when argv[*i] is none. */
static int security_option(int argc, char **argv, int *i, struct vs_security_opts *sec)
{
    const char *a = argv[*i] + 2, *eq = strchr(a, '='), *value = NULL;
    char name[16];
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    if (strncmp(argv[*i], "--", 2) || n >= sizeof(name))
        return 1;
    memcpy(name, a, n);
    name[n] = '\0';
    if (strcmp(name, "insecure") && (strncmp(name, "tls-", 4) || !strcmp(name, "tls-")))
        return 1;
    if (!strcmp(name, "insecure")) {
        if (eq)
            return vs_fail(EINVAL, "--insecure takes no value");
    } else if (eq) {
        value = eq + 1;
    } else if (*i + 1 < argc) {
        value = argv[++*i];
    } else {
        return vs_fail(EINVAL, "--%s needs a value", name);
    }
    int rc = vs_security_set(sec, name, value);
    return rc == -ENOENT ? 1 : rc;
}

static bool security_given(const struct vs_security_opts *s)
{
    return s->insecure || s->psk[0] || s->cert[0] || s->key[0] || s->ca[0] || s->name[0];
}

/* A HOST:PORT is reached as the security options say; a socket path takes none. */
static int remote_for(const char *where, struct vs_security_opts *sec, struct ctl_remote *r)
{
    if (!ctl_is_tcp_address(where)) {
        if (security_given(sec))
            return vs_fail(EINVAL, "%s is a socket path: the security options (--tls-*, "
                           "--insecure) are for a HOST:PORT", where);
        return 0;
    }
    if (!security_given(sec))
        return vs_fail(EINVAL, "%s is a TCP address (a vmshiftd --listen): give the "
                       "certificates to reach it with --tls-cert FILE --tls-key FILE "
                       "--tls-ca FILE (or --tls-psk FILE), or --insecure for plain TCP",
                       where);
    return ctl_remote_init(r, sec, "the connection to the host agent");
}

/* kv has room for argc entries: the key=value tokens are collected there. */
static int ctl_main(int argc, char **argv, char **kv)
{
    const char *socket_path = NULL, *cmd = NULL;
    int timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    bool raw = false, opts_done = false;
    int nkv = 0, sec_rc;
    struct vs_security_opts sec = { 0 };

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0) {
                opts_done = true;
            } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                fputs(usage_text, stdout);
                return 0;
            } else if (strcmp(a, "--raw") == 0) {
                raw = true;
            } else if (strcmp(a, "--timeout") == 0) {
                if (i + 1 >= argc) {
                    vs_fail(EINVAL, "--timeout needs a value in milliseconds");
                    return usage_error();
                }
                if (parse_timeout(argv[++i], &timeout_ms))
                    return usage_error();
            } else if (strncmp(a, "--timeout=", 10) == 0) {
                if (parse_timeout(a + 10, &timeout_ms))
                    return usage_error();
            } else if ((sec_rc = security_option(argc, argv, &i, &sec)) <= 0) {
                if (sec_rc < 0)
                    return usage_error();
            } else {
                vs_fail(EINVAL, "unknown option '%s'", a);
                return usage_error();
            }
            continue;
        }
        if (!socket_path)
            socket_path = a;
        else if (!cmd)
            cmd = a;
        else
            kv[nkv++] = argv[i];
    }
    if (!socket_path) {
        vs_fail(EINVAL, "missing SOCKET and COMMAND");
        return usage_error();
    }
    if (!cmd) {
        vs_fail(EINVAL, "missing COMMAND after the socket path %s", socket_path);
        return usage_error();
    }
    if (!*cmd) {
        vs_fail(EINVAL, "COMMAND is empty");
        return usage_error();
    }

    struct json_object *args = NULL;
    if (ctl_json_parse_args(nkv, kv, &args))
        return usage_error();
    if (json_object_object_get_ex(args, "cmd", NULL)) {
        json_object_put(args);
        vs_fail(EINVAL, "'cmd' cannot be given as key=value; the command is the second "
                        "argument");
        return usage_error();
    }

    struct ctl_remote remote = { 0 };
    if (remote_for(socket_path, &sec, &remote)) {
        json_object_put(args);
        return usage_error();
    }
    struct json_object *reply = NULL;
    int rc = ctl_command_to(socket_path, &remote, cmd, args, &reply, timeout_ms);
    json_object_put(args);
    ctl_remote_free(&remote);
    if (rc) {
        fprintf(stderr, "vmshift ctl: %s\n", vs_last_error());
        return 1;
    }

    int flags = JSON_C_TO_STRING_NOSLASHESCAPE;
    flags |= raw ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
    const char *text = json_object_to_json_string_ext(reply, flags);
    printf("%s\n", text ? text : "");
    fflush(stdout);

    struct json_object *ok = NULL, *err = NULL;
    json_object_object_get_ex(reply, "ok", &ok);
    int status = 0;
    if (!json_object_get_boolean(ok)) {
        const char *msg = "(no error message)";
        if (json_object_object_get_ex(reply, "error", &err) &&
            json_object_is_type(err, json_type_string))
            msg = json_object_get_string(err);
        fprintf(stderr, "vmshift ctl: %s failed: %s\n", cmd, msg);
        status = 1;
    }
    json_object_put(reply);
    return status;
}

int cli_ctl_main(int argc, char **argv)
{
    char **kv = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*kv));
    if (!kv) {
        fprintf(stderr, "vmshift ctl: out of memory\n");
        return 1;
    }
    int status = ctl_main(argc, argv, kv);
    free(kv);
    return status;
}
