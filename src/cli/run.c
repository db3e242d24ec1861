#include "cli/run.h"
#include "cli/run_options.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/size.h"
#include "ctl/ctl_server.h"
#include "ctl/vm_commands.h"
#include "vmm/vm.h"

#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

static void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static bool vm_failed(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool failed = vm->state == VS_VM_FAILED;
    pthread_mutex_unlock(&vm->lock);
    return failed;
}

/* Serve the control socket until quit, a signal, --run-for, or (without a control
 * socket, where nobody could look at it) a failed guest. */
static void serve(struct vs_vm *vm, struct ctl_server *ctl, struct vm_commands *cmds,
                  double run_for_s)
{
    uint64_t deadline = run_for_s > 0 ? vs_clock_ns() + (uint64_t)(run_for_s * 1e9) : 0;
    while (!cmds->quit && !stop_signal) {
        if (deadline && vs_clock_ns() >= deadline)
            break;
        if (ctl) {
            if (ctl_server_poll(ctl, 100) < 0)
                vs_warn("control socket: %s", vs_last_error());
        } else {
            poll(NULL, 0, 100);
            if (vm_failed(vm))
                break;
        }
    }
}

static void print_summary(struct vs_vm *vm)
{
    struct json_object *st = json_object_new_object();
    vm_commands_status(vm, st);
    fprintf(stderr, "vmshift: final status %s\n",
            json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN));
    json_object_put(st);
}

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
    install_stop_signals();

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
    struct ctl_server *ctl = NULL;
    int status = 0;
    if (o->ctl_path && ctl_server_open(&ctl, o->ctl_path, vm_commands_handle, &cmds)) {
        fprintf(stderr, "vmshift run: %s\n", vs_last_error());
        vs_vm_destroy(vm);
        return 1;
    }
    if (o->start_paused)
        vm->pause_requested = true;
    if (vs_vm_start(vm)) {
        fprintf(stderr, "vmshift run: %s\n", vs_last_error());
        status = 1;
    } else {
        serve(vm, ctl, &cmds, o->run_for_s);
        vs_vm_pause(vm);
        print_summary(vm);
        if (vm_failed(vm))
            status = 3;
    }
    if (ctl)
        ctl_server_close(ctl);
    vs_vm_destroy(vm);
    return status;
}
