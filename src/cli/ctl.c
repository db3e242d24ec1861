#include "cli/ctl.h"

#include "common/error.h"
#include "common/size.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_DEFAULT_TIMEOUT_MS 10000

static const char usage_line[] =
    "usage: vmshift ctl SOCKET COMMAND [key=value ...] [--timeout MS] [--raw]";

static const char usage_text[] =
    "usage: vmshift ctl SOCKET COMMAND [key=value ...] [--timeout MS] [--raw]\n"
    "\n"
    "Execute one command on the QMP control socket of a running VM (vmshift run --ctl\n"
    "SOCKET) or host agent (vmshiftd --ctl SOCKET) and print the reply as\n"
    "{\"ok\": true, ...the return's fields} or {\"ok\": false, \"error\": ..., \"class\": ...}.\n"
    "\n"
    "  SOCKET          path of the control socket\n"
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

/* kv has room for argc entries: the key=value tokens are collected there. */
static int ctl_main(int argc, char **argv, char **kv)
{
    const char *socket_path = NULL, *cmd = NULL;
    int timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    bool raw = false, opts_done = false;
    int nkv = 0;

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

    struct json_object *reply = NULL;
    int rc = ctl_command(socket_path, cmd, args, &reply, timeout_ms);
    json_object_put(args);
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
