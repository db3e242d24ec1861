/* Command-line options of `vmshift evacuate`, parsed and checked without side effects. */
#ifndef VS_EVACUATE_OPTIONS_H
#define VS_EVACUATE_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include "transport/security.h"

struct json_object;

#define EVAC_MAX_DESTS 16
#define EVAC_MAX_VMS 256
#define EVAC_MAX_PARALLEL 64
#define EVAC_DEFAULT_MAX_PARALLEL 8
#define EVAC_MAX_MIGRATE_FIELDS 32

struct evacuate_options {
    const char *from;                       /* the source vmshiftd: socket or HOST:PORT */
    char *to_list;                          /* owned copy of --to, split in place */
    const char *to[EVAC_MAX_DESTS];         /* destination vmshiftds: sockets or HOST:PORT */
    unsigned nto;
    bool remote;                            /* a host is a HOST:PORT (vmshiftd --listen) */
    struct vs_security_opts security;       /* how those are reached (checked when remote) */
    bool parallel_auto;                     /* --parallel auto (the default) */
    unsigned parallel;                      /* --parallel N */
    unsigned max_parallel;                  /* auto never goes above this */
    char *vm_list;                          /* owned copy of --vms, split in place */
    const char *vms[EVAC_MAX_VMS];          /* only these VMs (none: every running VM) */
    unsigned nvms;
    struct json_object *migrate;            /* fields added to every migrate request */
    const char *report;                     /* JSON report file, or NULL */
    double poll_s;                          /* how often migrations are looked at */
    bool quiet;
    bool help;
};

/* argv[0] is "evacuate". On success the caller frees with evacuate_options_free. */
int evacuate_options_parse(int argc, char **argv, struct evacuate_options *o);
void evacuate_options_free(struct evacuate_options *o);

/* The usage text, with the migration parameters' options. */
void evacuate_print_usage(FILE *f);

#endif
