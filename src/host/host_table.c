#include "host/host_table.h"
#include "common/error.h"
#include "common/size.h"

#include <stdlib.h>
#include <string.h>

const char *host_vm_state_name(enum host_vm_state s)
{
    static const char *const names[] = { "starting", "incoming", "running", "stopping",
                                         "stopped", "migrated", "exited", "crashed",
                                         "failed" };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

bool host_vm_is_live(const struct host_vm *vm)
{
    return vm->state == HOST_VM_STARTING || vm->state == HOST_VM_INCOMING ||
           vm->state == HOST_VM_RUNNING || vm->state == HOST_VM_STOPPING;
}

int host_check_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return vs_fail(EINVAL, "a VM name is required (name=..., letters, digits, '.', '_', "
                               "'-')");
    if (n > HOST_NAME_MAX_LEN)
        return vs_fail(EINVAL, "VM name '%.40s%s' is too long (%zu characters, at most %d)",
                       name, n > 40 ? "..." : "", n, HOST_NAME_MAX_LEN);
    if (name[0] == '.' || name[0] == '-')
        return vs_fail(EINVAL, "VM name '%s' must not start with '%c'", name, name[0]);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return vs_fail(EINVAL, "VM name '%s' contains '%c'; use letters, digits, '.', '_' "
                                   "and '-'", name, c);
    }
    return 0;
}

struct host_vm *host_table_find(struct host_table *t, const char *name)
{
    for (unsigned i = 0; i < t->count; i++)
        if (strcmp(t->vms[i]->name, name) == 0)
            return t->vms[i];
    return NULL;
}

struct host_vm *host_table_find_pid(struct host_table *t, pid_t pid)
{
    for (unsigned i = 0; i < t->count; i++)
        if (t->vms[i]->pid == pid && host_vm_is_live(t->vms[i]))
            return t->vms[i];
    return NULL;
}

uint64_t host_table_reserved(const struct host_table *t)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < t->count; i++)
        if (host_vm_is_live(t->vms[i]))
            sum += t->vms[i]->mem;
    return sum;
}

static unsigned live_count(const struct host_table *t)
{
    unsigned n = 0;
    for (unsigned i = 0; i < t->count; i++)
        n += host_vm_is_live(t->vms[i]);
    return n;
}

int host_table_admit(const struct host_table *t, const char *name, uint64_t mem)
{
    int rc = host_check_name(name);
    if (rc)
        return rc;
    for (unsigned i = 0; i < t->count; i++) {
        const struct host_vm *vm = t->vms[i];
        if (strcmp(vm->name, name) == 0 && host_vm_is_live(vm))
            return vs_fail(EEXIST, "a VM named '%s' is already %s on this host; choose another "
                                   "name or stop it first", name, host_vm_state_name(vm->state));
    }
    if (live_count(t) >= HOST_MAX_VMS)
        return vs_fail(ENOSPC, "this host already runs %d VMs, the most one vmshiftd manages",
                       HOST_MAX_VMS);
    if (mem == 0)
        return vs_fail(EINVAL, "VM '%s': its memory size is 0; give mem=SIZE", name);
    uint64_t held = host_table_reserved(t);
    if (t->max_mem && (mem > t->max_mem || held > t->max_mem - mem)) {
        char want[32], free_b[32], max[32], used[32];
        return vs_fail(ENOSPC, "no room for VM '%s' (%s): %s of this host's --max-mem %s are "
                               "held by %u VM(s), %s free; stop VMs here or choose another host",
                       name, vs_format_size(mem, want, sizeof(want)),
                       vs_format_size(held, used, sizeof(used)),
                       vs_format_size(t->max_mem, max, sizeof(max)), live_count(t),
                       vs_format_size(held < t->max_mem ? t->max_mem - held : 0, free_b,
                                      sizeof(free_b)));
    }
    return 0;
}

int host_table_add(struct host_table *t, const struct host_vm *vm, struct host_vm **out)
{
    struct host_vm *old = host_table_find(t, vm->name);
    if (old) {
        if (host_vm_is_live(old))
            return vs_fail(EEXIST, "a VM named '%s' is already on this host", vm->name);
        host_table_remove(t, old);
    }
    if (t->count >= HOST_MAX_VMS)
        return vs_fail(ENOSPC, "this host's VM table is full (%d entries); stop or forget "
                               "ended VMs (vm-stop on an ended VM forgets it)", HOST_MAX_VMS);
    struct host_vm *n = malloc(sizeof(*n));
    if (!n)
        return vs_fail(ENOMEM, "out of memory adding VM '%s'", vm->name);
    *n = *vm;
    t->vms[t->count++] = n;
    if (out)
        *out = n;
    return 0;
}

void host_table_remove(struct host_table *t, struct host_vm *vm)
{
    for (unsigned i = 0; i < t->count; i++) {
        if (t->vms[i] != vm)
            continue;
        memmove(&t->vms[i], &t->vms[i + 1], (t->count - i - 1) * sizeof(t->vms[0]));
        t->count--;
        free(vm);
        return;
    }
}

void host_table_clear(struct host_table *t)
{
    for (unsigned i = 0; i < t->count; i++)
        free(t->vms[i]);
    t->count = 0;
}

enum host_vm_state host_vm_end_state(const struct host_vm *vm, int exit_status)
{
    switch (vm->state) {
    case HOST_VM_STOPPING:
        return vm->was_migrated ? HOST_VM_MIGRATED : HOST_VM_STOPPED;
    case HOST_VM_STARTING:
    case HOST_VM_INCOMING:
        return HOST_VM_FAILED;
    default:
        return exit_status == 0 ? HOST_VM_EXITED : HOST_VM_CRASHED;
    }
}
