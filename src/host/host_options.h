/* Command-line options of vmshiftd, parsed without side effects. */
#ifndef VS_HOST_OPTIONS_H
#define VS_HOST_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include "host/host_spawn.h"
#include "transport/security.h"

#define HOST_MAX_RECEIVE_ARGS 32
#define HOST_PATH_BUF 512
#define HOST_SECURITY_ARGS 10

struct host_options {
    const char *ctl;              /* the host's control socket (this or listen required) */
    const char *listen;           /* HOST:PORT: the same control API over TCP (or NULL) */
    /* --tls-*, --insecure: secure the listener; the default of this host's migrations */
    struct vs_security_opts security;
    const char *security_args[HOST_SECURITY_ARGS + 1]; /* the same as receive options */
    char migration_addr[96];      /* --migration-addr, or derived from --listen */
    char state_dir[HOST_PATH_BUF];/* where VM directories go (default: CTL.d) */
    char name[64];                /* this host's name in replies (default: from CTL) */
    char vmshift[HOST_PATH_BUF];  /* the vmshift binary (default: next to vmshiftd) */
    uint64_t max_mem;             /* memory budget for all VMs together (0: no limit) */
    struct host_receive_opts receive;
    const char *receive_args[HOST_MAX_RECEIVE_ARGS + 1];
    double start_timeout_s;       /* a starting VM must answer within this (default 60) */
    double stop_timeout_s;        /* a VM told to quit is killed after this (default 10) */
    bool die_with_daemon;         /* the VMs are killed when the daemon dies */
    bool help;
};

/* argv[0] is the program name. `self_exe` (the daemon's own path, for the default
 * --vmshift) may be NULL. */
int host_options_parse(int argc, char **argv, const char *self_exe, struct host_options *o);

extern const char host_usage[];

#endif
