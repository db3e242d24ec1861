#include "cli/monitor_loop.h"
#include "cli/console_input.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/size.h"
#include "common/stop_signal.h"
#include "ctl/ctl_server.h"
#include "migrate/precopy/source.h"
#include "migrate/postcopy/postcopy_dest.h"

#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void monitor_install_signals(void)
{
    vs_stop_signal_install();
}

static enum vs_vm_state vm_state(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    enum vs_vm_state s = vm->state;
    pthread_mutex_unlock(&vm->lock);
    return s;
}

/* Stopped by a signal with an outgoing migration under way: cancel it before the VM goes
 * (the destination discards its copy); past the commit it cannot be, and the VM is the
 * destination's. Says which in note. */
static void cancel_for_stop(struct vm_commands *cmds, char *note, size_t len)
{
    note[0] = '\0';
    if (!cmds->migration)
        return;
    struct vs_migration_stats s;
    bool finished;
    vs_migration_stats(cmds->migration, &s, &finished);
    if (finished)
        return;
    if (vs_migration_cancel(cmds->migration) == 0)
        snprintf(note, len, "; the migration to %.80s was cancelled first (the destination "
                 "discards its copy)", s.peer);
    else
        snprintf(note, len, "; the migration to %.80s could not be cancelled (%.200s)", s.peer,
                 vs_last_error());
}

/* The last line of a monitor stopped by sig. */
static int stopped(struct vs_vm *vm, int sig, const char *who, const char *ctl_path,
                   const char *note)
{
    bool gone = vm_state(vm) == VS_VM_MIGRATED;
    fprintf(stderr, "%s: stopped by %s: %s%s%s%s\n", who, vs_stop_signal_name(sig),
            gone ? "the VM had been granted to the destination; nothing ran here"
                 : "the VM was stopped", note,
            ctl_path ? "; removed the control socket " : "", ctl_path ? ctl_path : "");
    return vs_stop_exit_status(sig);
}

/* The VM runs at its destination: its last outgoing migration completed. */
static bool vm_left(struct vm_commands *cmds, char *peer, size_t len)
{
    if (!cmds->migration || vm_state(cmds->vm) != VS_VM_MIGRATED)
        return false;
    struct vs_migration_stats s;
    bool finished;
    vs_migration_stats(cmds->migration, &s, &finished);
    snprintf(peer, len, "%s", s.peer);
    return finished && s.status && strcmp(s.status, "completed") == 0;
}

/* The VM left: give its RAM back now; exit at *leave_at unless asked to stay. */
static void after_migration(struct vm_commands *cmds, const struct monitor_opts *o,
                            const char *peer, uint64_t *leave_at)
{
    char size[32];
    vs_format_size(vs_memory_allocated(&cmds->vm->mem), size, sizeof(size));
    if (vs_vm_release_memory(cmds->vm))
        vs_warn("the VM runs at %s now, but its memory here stays: %s", peer, vs_last_error());
    else
        vs_info("the VM runs at %s now: released the %s of guest RAM it held here", peer, size);
    if (o->keep_after_migrate) {
        vs_info("staying (--keep-after-migrate) in state migrated until quit");
        return;
    }
    vs_info("exiting in %d ms (--keep-after-migrate would stay)", MONITOR_LINGER_MS);
    *leave_at = vs_clock_ns() + (uint64_t)MONITOR_LINGER_MS * 1000000;
}

static const char *shutdown_reason(const struct vm_commands *cmds, bool left)
{
    return cmds->quit ? "host-qmp-quit" : left ? "migrated" : "host-signal";
}

int monitor_serve(struct vm_commands *cmds, const struct monitor_opts *o)
{
    struct vs_vm *vm = cmds->vm;
    struct ctl_server *ctl = NULL;
    const char *who = o->who, *ctl_path = o->ctl_path;
    cmds->ctl_path = ctl_path;
    if (ctl_path && ctl_server_open(&ctl, ctl_path, vm_command_table, cmds)) {
        fprintf(stderr, "%s: %s\n", who, vs_last_error());
        return 1;
    }
    cmds->server = ctl;
    struct console_input *input;
    if (console_input_start(&input, &vm->serial, STDIN_FILENO))
        vs_warn("%s; the guest's console gets no input from stdin", vs_last_error());
    bool failed = false, left = false;
    char peer[128] = "";
    uint64_t deadline = o->run_for_s > 0 ? vs_clock_ns() + (uint64_t)(o->run_for_s * 1e9) : 0;
    uint64_t leave_at = 0;
    while (!cmds->quit && !vs_stop_signal()) {
        uint64_t now = vs_clock_ns();
        if ((deadline && now >= deadline) || (leave_at && now >= leave_at))
            break;
        if (cmds->postcopy && vs_postcopy_dest_failed(cmds->postcopy)) {
            fprintf(stderr, "%s: the source kept the VM (it aborted the post-copy before "
                    "granting it); the VM never ran here\n", who);
            failed = true;
            break;
        }
        if (ctl) {
            if (ctl_server_poll(ctl, 50) < 0)
                vs_warn("control socket: %s", vs_last_error());
            vm_commands_watch(cmds);
        } else {
            poll(NULL, 0, 100);
            if (vm_state(vm) == VS_VM_FAILED)
                break; /* nobody could look at it */
        }
        if (!left && (left = vm_left(cmds, peer, sizeof(peer))))
            after_migration(cmds, o, peer, &leave_at);
    }
    console_input_stop(input);
    int sig = cmds->quit ? 0 : vs_stop_signal();
    char note[400] = "";
    if (sig)
        cancel_for_stop(cmds, note, sizeof(note));
    vm_commands_finish(cmds);
    vs_vm_pause(vm);
    if (ctl) {
        vm_commands_watch(cmds);
        struct json_object *d = json_object_new_object();
        json_object_object_add(d, "guest", json_object_new_boolean(0));
        json_object_object_add(d, "reason", json_object_new_string(
                                   shutdown_reason(cmds, leave_at && !sig)));
        ctl_server_event(ctl, "SHUTDOWN", d);
        cmds->server = NULL;
    }
    struct json_object *st = json_object_new_object();
    vm_commands_status(vm, st);
    fprintf(stderr, "%s: final status %s\n", who,
            json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN));
    json_object_put(st);
    if (ctl)
        ctl_server_close(ctl);
    if (sig)
        return stopped(vm, sig, who, ctl_path, note);
    if (leave_at && !cmds->quit)
        fprintf(stderr, "%s: the VM migrated to %s and runs there; this process ends%s%s\n",
                who, peer, ctl_path ? " and removed the control socket " : "",
                ctl_path ? ctl_path : "");
    return vm_state(vm) == VS_VM_FAILED || failed ? 1 : 0;
}
