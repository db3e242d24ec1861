#include "cli/run.h"
#include "cli/run_options.h"
#include "common/error.h"
#include "common/log.h"
#include "common/size.h"
#include "cli/monitor_loop.h"
#include "vmm/vm.h"

#include <stdio.h>
#include <string.h>

static int run_vm(struct run_options *o);

int cli_run_main(int argc, char **argv)
{
    struct run_options o;
    if (run_options_parse(argc, argv, &o)) {
        fprintf(stderr, "vmshift run: %s\n", vs_last_error());
        return 2;
    }
    if (o.help) {
        fputs(run_usage, stdout);
        run_options_free(&o);
        return 0;
    }
    int status = run_vm(&o);
    run_options_free(&o);
    return status;
}

static int run_vm(struct run_options *o)
{
    char cmdline[4096];
    if (run_options_guest_cmdline(o, cmdline, sizeof(cmdline))) {
        fprintf(stderr, "vmshift run: %s\n", vs_last_error());
        return 2;
    }
    o->vm.cmdline = cmdline;
    monitor_install_signals();

    struct vs_vm *vm;
    if (vs_vm_create(&vm, &o->vm)) {
        fprintf(stderr, "vmshift run: %s\n", vs_last_error());
        return 1;
    }
    char size[32];
    vs_info("VM: %s RAM, %u vCPU(s), %s boot of %s, guest parameters: %s",
            vs_format_size(vm->mem.size, size, sizeof(size)), vm->nr_vcpus,
            vs_boot_mode_name(vm->boot.mode), o->vm.kernel, cmdline);

    struct vm_commands cmds = { .vm = vm };
    if (o->start_paused)
        vm->pause_requested = true;
    int status;
    if (vs_vm_start(vm)) {
        fprintf(stderr, "vmshift run: %s\n", vs_last_error());
        status = 1;
    } else {
        struct monitor_opts mo = { .who = "vmshift run", .ctl_path = o->ctl_path,
                                   .run_for_s = o->run_for_s,
                                   .keep_after_migrate = o->keep_after_migrate };
        status = monitor_serve(&cmds, &mo);
    }
    vs_vm_destroy(vm);
    return status;
}
