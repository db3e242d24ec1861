/* Command-line options of `vmshift run`, parsed and validated without side effects, and
 * the guest command line derived from them. */
#ifndef VS_RUN_OPTIONS_H
#define VS_RUN_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmm/vm.h"

struct run_options {
    struct vs_vm_config vm;      /* kernel, mem, vCPUs, boot, serial, fill, preloads */
    const char *mem_text;        /* --mem as given (messages), or NULL */
    const char *workload;        /* idle | once | continuous | verify */
    uint64_t range_start;        /* workload range; size 0 = up to the end of RAM */
    uint64_t range_size;
    uint64_t rate;               /* pages/s for the whole VM, 0 = full speed */
    const char *append;          /* extra guest parameters, appended last (they win) */
    const char *ctl_path;        /* control socket, or NULL */
    bool start_paused;
    double run_for_s;            /* quit after this long, 0 = until told */
    bool keep_after_migrate;     /* stay once the VM has migrated away */
    bool help;
    struct vs_device_list devices;   /* --nic and --disk, NICs first (vm.devices points here) */
    char kernel_found[PATH_MAX]; /* the workload guest found when --kernel is not given */
};

/* argv[0] is "run". Fills defaults, then the options; checks values that need no host
 * access (sizes, ranges, names). Errors name the option and the value. Without --kernel
 * the workload guest is looked for (cli/guest_path.h); not finding it is an error. */
int run_options_parse(int argc, char **argv, struct run_options *o);

/* Free what run_options_parse allocated (preload paths). */
void run_options_free(struct run_options *o);

/* The parameters the guest reads from its boot command line. */
int run_options_guest_cmdline(const struct run_options *o, char *buf, size_t len);

extern const char run_usage[];

#endif
