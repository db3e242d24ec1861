#include "ctl/vm_commands.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"
#include "ctl/migration_commands.h"
#include "ctl/nic_status.h"
#include "common/clock.h"
#include "common/error.h"
#include "migrate/postcopy/postcopy_dest.h"
#include "migrate/postcopy/postcopy_source.h"
#include "migrate/precopy/source.h"
#include "vmshift/guest_abi.h"
#include "vmm/vcpu.h"
#include "vmm/virtio/virtio_blk.h"

#include <json-c/json.h>
#include <string.h>
#include <xxhash.h>

static const char *workload_name(uint32_t w)
{
    static const char *const names[] = { "idle", "once", "continuous", "verify", "timer",
                                         "disk", "net", "net-stream" };
    return w < sizeof(names) / sizeof(names[0]) ? names[w] : "unknown";
}

static const char *guest_state_name(uint32_t s)
{
    static const char *const names[] = { "booting", "running", "idle", "failed" };
    return s < 4 ? names[s] : "unknown";
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

/* Guest counters as of each vCPU's last doorbell. Totals add up the vCPUs; "passes" is
 * the number of complete passes over the whole range (the slowest vCPU's count). */
static struct json_object *guest_status(struct vs_vm *vm)
{
    struct vs_pvport_view pv;
    vs_pvport_view(&vm->pvport, &pv);
    struct json_object *g = json_object_new_object();
    json_object_object_add(g, "registered", json_object_new_boolean(pv.registered));
    add_u64(g, "doorbells", pv.doorbells);
    if (!pv.registered || pv.t.magic != VS_TELEMETRY_MAGIC)
        return g;
    const struct vs_telemetry *t = &pv.t;
    json_object_object_add(g, "workload", json_object_new_string(workload_name(t->workload)));
    add_u64(g, "range_start", t->range_start);
    add_u64(g, "range_pages", t->range_pages);
    add_u64(g, "rate", t->rate);
    if (pv.rate_override != VS_RATE_NO_OVERRIDE)
        add_u64(g, "rate_override", pv.rate_override);
    /* nr_cpus is 0 until the guest has parsed its parameters; vCPU 0's state (booting
     * or failed) is meaningful before that. */
    unsigned n = t->nr_cpus == 0 ? 1 : t->nr_cpus <= VS_MAX_VCPUS ? t->nr_cpus : VS_MAX_VCPUS;
    uint64_t passes = UINT64_MAX, written = 0, checked = 0, errors = 0, first_bad = 0;
    uint32_t state = VS_GUEST_BOOTING;
    struct json_object *per = json_object_new_array();
    for (unsigned i = 0; i < n; i++) {
        const struct vs_cpu_counters *c = &t->cpu[i];
        passes = c->passes < passes ? c->passes : passes;
        written += c->pages_written;
        checked += c->pages_checked;
        errors += c->errors;
        if (!first_bad && c->first_bad_addr)
            first_bad = c->first_bad_addr;
        if (i == 0 || c->state == VS_GUEST_FAILED)
            state = c->state;
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "state", json_object_new_string(guest_state_name(c->state)));
        add_u64(o, "passes", c->passes);
        add_u64(o, "pages_written", c->pages_written);
        add_u64(o, "pages_checked", c->pages_checked);
        add_u64(o, "errors", c->errors);
        add_u64(o, "generation", c->generation);
        add_u64(o, "max_gap_us", c->max_gap_us);
        add_u64(o, "rng_bytes", c->rng_bytes);
        json_object_array_add(per, o);
    }
    json_object_object_add(g, "state", json_object_new_string(guest_state_name(state)));
    add_u64(g, "passes", n ? passes : 0);
    add_u64(g, "pages_written", written);
    add_u64(g, "pages_checked", checked);
    add_u64(g, "errors", errors);
    add_u64(g, "first_bad_addr", first_bad);
    json_object_object_add(g, "per_vcpu", per);
    return g;
}

/* The disks' counters, in slot order (the source's stop moving once it handed the VM over:
 * its disks are closed then). */
static struct json_object *disks_status(struct vs_vm *vm)
{
    struct json_object *a = json_object_new_array();
    for (unsigned i = 0; i < vm->nr_disks; i++) {
        struct vs_virtio_blk_stats s;
        vs_virtio_blk_stats(vm->disks[i], &s);
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "file", json_object_new_string(vs_virtio_blk_spec(vm->disks[i])->path));
        json_object_object_add(o, "open", json_object_new_boolean(s.open));
        json_object_object_add(o, "writable", json_object_new_boolean(s.writable));
        json_object_object_add(o, "running", json_object_new_boolean(s.running));
        add_u64(o, "reads", s.reads);
        add_u64(o, "writes", s.writes);
        add_u64(o, "bytes_read", s.bytes_read);
        add_u64(o, "bytes_written", s.bytes_written);
        add_u64(o, "flushes", s.flushes);
        add_u64(o, "discards", s.discards);
        add_u64(o, "write_zeroes", s.write_zeroes);
        add_u64(o, "get_ids", s.get_ids);
        add_u64(o, "refused", s.refused);
        add_u64(o, "io_errors", s.io_errors);
        add_u64(o, "reconnects", s.reconnects);
        add_u64(o, "in_flight", s.in_flight);
        json_object_array_add(a, o);
    }
    return a;
}

static void add_migration_status(struct vm_commands *c, struct json_object *reply)
{
    if (c->migration) {
        struct vs_migration_stats s;
        vs_migration_stats(c->migration, &s, NULL);
        json_object_object_add(reply, "migration", vs_report_json(&s));
    }
    if (c->postcopy)
        vs_postcopy_dest_stats(c->postcopy, &c->incoming);
    if (c->has_incoming) {
        vm_nics_note_announces(c->vm, &c->incoming);
        json_object_object_add(reply, "incoming", vs_report_json(&c->incoming));
    }
}

void vm_commands_status(struct vs_vm *vm, struct json_object *reply)
{
    pthread_mutex_lock(&vm->lock);
    enum vs_vm_state state = vm->state;
    struct json_object *vcpus = json_object_new_array();
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        const struct vs_vcpu *v = &vm->vcpus[i];
        const char *s = v->stopped ? "stopped" : v->halted ? "halted"
                        : v->parked ? "paused"
                        : vs_vcpu_halted_in_kernel(v) ? "halted" : "running";
        json_object_array_add(vcpus, json_object_new_string(s));
    }
    char failure[sizeof(vm->failure)];
    memcpy(failure, vm->failure, sizeof(failure));
    pthread_mutex_unlock(&vm->lock);

    json_object_object_add(reply, "state", json_object_new_string(vs_vm_state_name(state)));
    if (state == VS_VM_FAILED)
        json_object_object_add(reply, "failure", json_object_new_string(failure));
    json_object_object_add(reply, "vcpus", json_object_new_int((int)vm->nr_vcpus));
    json_object_object_add(reply, "vcpu_states", vcpus);
    add_u64(reply, "ram_bytes", vm->mem.size);
    add_u64(reply, "ram_allocated_bytes", vs_memory_allocated(&vm->mem));
    json_object_object_add(reply, "ram_backing",
                           json_object_new_string(vs_ram_backing_name(vm->mem.backing)));
    json_object_object_add(reply, "ram_page_size",
                           json_object_new_string(vs_memory_page_size_note(&vm->mem)));
    json_object_object_add(reply, "boot", json_object_new_string(vs_boot_mode_name(vm->boot.mode)));
    pthread_mutex_lock(&vm->serial.lock);
    uint64_t serial_out = vm->serial.bytes_out, serial_in = vm->serial.bytes_in;
    pthread_mutex_unlock(&vm->serial.lock);
    add_u64(reply, "serial_bytes", serial_out);
    add_u64(reply, "serial_bytes_in", serial_in);
    add_u64(reply, "unclaimed_pio", vs_bus_unclaimed(&vm->bus, VS_BUS_PIO, NULL));
    add_u64(reply, "unclaimed_mmio", vs_bus_unclaimed(&vm->bus, VS_BUS_MMIO, NULL));
    json_object_object_add(reply, "guest", guest_status(vm));
    if (vm->nr_disks)
        json_object_object_add(reply, "disks", disks_status(vm));
    if (vm->nr_nics)
        json_object_object_add(reply, "nics", vm_nics_status(vm));
}

/* xxh3-64 of RAM offsets [start, start+length) (as the migration stream and its
 * digests address RAM; equal to guest-physical addresses below 3 GiB): a fingerprint to
 * compare memory contents. */
static int cmd_digest(struct vs_vm *vm, struct json_object *req, struct json_object *reply)
{
    uint64_t start = 0, length = vm->mem.size;
    int rc;
    if (json_object_object_get_ex(req, "start", NULL) &&
        (rc = ctl_json_get_u64(req, "start", &start)))
        return rc;
    if (json_object_object_get_ex(req, "length", NULL) &&
        (rc = ctl_json_get_u64(req, "length", &length)))
        return rc;
    if (start > vm->mem.size || length > vm->mem.size - start)
        return vs_fail(ERANGE, "digest range [0x%llx, 0x%llx) lies outside the RAM offsets "
                       "[0, 0x%llx); give start and length within the VM's RAM",
                       (unsigned long long)start, (unsigned long long)(start + length),
                       (unsigned long long)vm->mem.size);
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx",
             (unsigned long long)XXH3_64bits(vs_memory_ptr(&vm->mem, start), length));
    json_object_object_add(reply, "xxh3", json_object_new_string(hex));
    add_u64(reply, "start", start);
    add_u64(reply, "length", length);
    return 0;
}

/* Fault injection for tests: overwrite one 64-bit word of guest RAM behind the guest's
 * back (the verify and once workloads must notice). */
static int cmd_debug_poke(struct vs_vm *vm, struct json_object *req, struct json_object *reply)
{
    uint64_t addr, value;
    int rc = ctl_json_get_u64(req, "addr", &addr);
    if (!rc)
        rc = ctl_json_get_u64(req, "value", &value);
    if (rc)
        return rc;
    if (addr % 8)
        return vs_fail(EINVAL, "debug-poke addr 0x%llx is not 8-byte aligned",
                       (unsigned long long)addr);
    rc = vs_memory_check_range(&vm->mem, addr, 8, "debug-poke address");
    if (rc)
        return rc;
    uint64_t *word = vs_memory_gpa_ptr(&vm->mem, addr, 8);
    pthread_mutex_lock(&vm->lock);
    bool migrated = vm->state == VS_VM_MIGRATED;
    pthread_mutex_unlock(&vm->lock);
    if (migrated)
        return vs_fail(EINVAL, "debug-poke: the VM has migrated; its memory here is no longer it");
    __atomic_store_n(word, value, __ATOMIC_RELAXED);
    vs_memory_note_write(&vm->mem, addr, 8);
    add_u64(reply, "addr", addr);
    return 0;
}

static int cmd_set_rate(struct vs_vm *vm, struct json_object *req, struct json_object *reply)
{
    uint64_t rate;
    int rc = ctl_json_get_u64(req, "rate", &rate);
    if (rc)
        return rc;
    if (rate >= VS_RATE_NO_OVERRIDE)
        return vs_fail(EINVAL, "set-rate rate=%llu is too large; at most %u pages/s",
                       (unsigned long long)rate, VS_RATE_NO_OVERRIDE - 1);
    vs_pvport_set_rate(&vm->pvport, (uint32_t)rate);
    add_u64(reply, "rate", rate);
    return 0;
}

/* console-input data=STRING [wait_ms=MS]: bytes for the guest's COM1 receiver. It takes
 * as many as its FIFO has room for (never an overrun), waiting up to wait_ms for the
 * guest to read while some are left; the reply says how many it took. */
static int cmd_console_input(struct vs_vm *vm, struct json_object *req, struct json_object *reply)
{
    struct json_object *d;
    if (!json_object_object_get_ex(req, "data", &d) ||
        !(json_object_is_type(d, json_type_string) || json_object_is_type(d, json_type_int)))
        return vs_fail(EINVAL, "console-input needs data=STRING, the bytes to send to the "
                       "guest's serial console");
    uint64_t wait_ms = 0;
    int rc = ctl_json_get_u64(req, "wait_ms", &wait_ms);
    if (rc && rc != -ENOENT)
        return rc;
    if (wait_ms > 10000)
        return vs_fail(EINVAL, "console-input wait_ms=%llu is too long; at most 10000",
                       (unsigned long long)wait_ms);
    pthread_mutex_lock(&vm->lock);
    bool migrated = vm->state == VS_VM_MIGRATED;
    pthread_mutex_unlock(&vm->lock);
    if (migrated)
        return vs_fail(EINVAL, "console-input: the VM has migrated; send input to its new host");
    const uint8_t *bytes = (const uint8_t *)json_object_get_string(d);
    size_t len = strlen((const char *)bytes), took = 0;
    if (json_object_is_type(d, json_type_string))
        len = (size_t)json_object_get_string_len(d);
    uint64_t deadline = vs_clock_ns() + wait_ms * 1000000ULL;
    for (;;) {
        took += vs_serial_offer(&vm->serial, bytes + took, len - took);
        uint64_t now = vs_clock_ns();
        if (took == len || now >= deadline)
            break;
        vs_serial_wait_rx_room(&vm->serial, (int)((deadline - now + 999999) / 1000000));
    }
    add_u64(reply, "accepted", took);
    add_u64(reply, "length", len);
    return 0;
}

/* Reading guest RAM while pages are missing could wait for the network forever. */
static int check_ram_readable(struct vm_commands *c, const char *cmd)
{
    if (vs_memory_released(&c->vm->mem))
        return vs_fail(EINVAL, "%s: the VM has migrated and its memory here was given back to "
                       "the host; ask its destination", cmd);
    if (vs_postcopy_dest_busy(c->postcopy))
        return vs_fail(EBUSY, "%s: pages of this VM are still arriving in post-copy; try again "
                       "when query-migrate says completed", cmd);
    return 0;
}

void vm_commands_finish(struct vm_commands *c)
{
    json_object_put(c->params);
    c->params = NULL;
    dirty_calc_stop(&c->dirty);
    vs_postcopy_dest_stop(c->postcopy);
    if (!c->migration)
        return;
    vs_migration_cancel(c->migration);
    vs_migration_free(c->migration);
    c->migration = NULL;
}

/* ---- QMP handlers ------------------------------------------------------------------ */

static const char *run_state(enum vs_vm_state st)
{
    switch (st) {
    case VS_VM_CREATED: return "prelaunch";
    case VS_VM_RUNNING: return "running";
    case VS_VM_PAUSED: return "paused";
    case VS_VM_FAILED: return "internal-error";
    case VS_VM_MIGRATED: return "postmigrate";
    }
    return "paused";
}

static enum vs_vm_state vm_state(struct vs_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    enum vs_vm_state st = vm->state;
    pthread_mutex_unlock(&vm->lock);
    return st;
}

static int h_query_status(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    enum vs_vm_state st = vm_state(c->vm);
    json_object_object_add(*ret, "running", json_object_new_boolean(st == VS_VM_RUNNING));
    json_object_object_add(*ret, "singlestep", json_object_new_boolean(0));
    json_object_object_add(*ret, "status", json_object_new_string(run_state(st)));
    return 0;
}

static int h_status(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    vm_commands_status(c->vm, *ret);
    add_migration_status(c, *ret);
    return 0;
}

static int h_stop(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args, (void)ret;
    int rc = vs_vm_pause(c->vm);
    vm_commands_watch(c);
    return rc;
}

static int h_cont(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args, (void)ret;
    int rc = vs_vm_resume(c->vm);
    vm_commands_watch(c);
    return rc;
}

static int h_quit(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args, (void)ret;
    c->quit = true;
    return 0;
}

static int h_set_rate(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    return cmd_set_rate(c->vm, args, *ret);
}

static int h_digest(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    return check_ram_readable(c, "vmshift-digest") ? -EBUSY : cmd_digest(c->vm, args, *ret);
}

static int h_debug_poke(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    return check_ram_readable(c, "vmshift-debug-poke") ? -EBUSY
                                                       : cmd_debug_poke(c->vm, args, *ret);
}

static int h_console_input(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    return cmd_console_input(c->vm, args, *ret);
}

/* The destination died after its CLAIM and provably never ran the VM: resume it here
 * (docs/state-machine.md, "What needs an operator"). */
static int h_reclaim(void *ctx, struct json_object *args, struct json_object **ret)
{
    struct vm_commands *c = ctx;
    (void)args;
    if (!c->migration)
        return vs_fail(ENOENT, "no migration to reclaim the VM from: reclaim takes back a "
                       "VM whose destination died after it claimed it");
    int rc = vs_migration_reclaim(c->migration);
    if (!rc)
        vm_commands_status(c->vm, *ret);
    return rc;
}

void vm_commands_watch(struct vm_commands *c)
{
    if (!c->server)
        return;
    bool running = vm_state(c->vm) == VS_VM_RUNNING;
    if (c->seen_valid && running != c->seen_running)
    {
        struct timespec when = vs_vm_run_changed(c->vm);   /* not when we noticed */
        ctl_server_event_at(c->server, running ? "RESUME" : "STOP", NULL, &when);
    }
    c->seen_running = running;
    c->seen_valid = true;
    migration_watch(c);
}

#define NO_ARGS { { NULL, 0, false } }
#define A(n, t) { n, CTL_ARG_##t, false }
#define R(n, t) { n, CTL_ARG_##t, true }

/* The monitor's commands; docs/control-protocol.md describes each. */
const struct ctl_command vm_command_table[] = {
    { "query-status", h_query_status, NO_ARGS, false, "running, status (QEMU's run state)" },
    { "stop", h_stop, NO_ARGS, false, "pause every vCPU" },
    { "cont", h_cont, NO_ARGS, false, "let the vCPUs run again" },
    { "quit", h_quit, NO_ARGS, false, "end the monitor (a running migration is cancelled)" },
    { "migrate", qmp_migrate,
      { R("uri", STR), A("detach", BOOL), A("resume", BOOL), A("blk", BOOL), A("inc", BOOL) },
      false, "start a live migration to uri tcp:HOST:PORT with the current parameters" },
    { "migrate-incoming", qmp_migrate_incoming, { R("uri", STR) }, false,
      "not offered: vmshift receive --listen receives a VM" },
    { "query-migrate", qmp_query_migrate, NO_ARGS, false,
      "the report of the current or last migration" },
    { "migrate-set-parameters", qmp_migrate_set_parameters, NO_ARGS, true,
      "set migration parameters (query-migrate-parameters lists them)" },
    { "query-migrate-parameters", qmp_query_migrate_parameters, NO_ARGS, false,
      "the migration parameters" },
    { "migrate-set-capabilities", qmp_migrate_set_capabilities, { R("capabilities", ANY) },
      false, "set migration capabilities" },
    { "query-migrate-capabilities", qmp_query_migrate_capabilities, NO_ARGS, false,
      "the migration capabilities" },
    { "migrate_cancel", qmp_migrate_cancel, NO_ARGS, false, "cancel the outgoing migration" },
    { "migrate-start-postcopy", qmp_migrate_start_postcopy, NO_ARGS, false,
      "switch the running migration to post-copy" },
    { "migrate-pause", qmp_migrate_pause, NO_ARGS, false, "not supported (see the docs)" },
    { "migrate-recover", qmp_migrate_recover, { R("uri", STR) }, false,
      "destination: wait for the source of a paused post-copy" },
    { "calc-dirty-rate", qmp_calc_dirty_rate,
      { R("calc-time", SIZE), A("calc-time-unit", STR), A("sample-pages", INT), A("mode", STR) },
      false, "measure the guest's dirty rate (the reply comes after calc-time)" },
    { "query-dirty-rate", qmp_query_dirty_rate, { A("calc-time-unit", STR) }, false,
      "the last calc-dirty-rate" },
    { "set-vcpu-dirty-limit", qmp_set_vcpu_dirty_limit,
      { A("cpu-index", INT), R("dirty-rate", SIZE) }, false,
      "limit how fast vCPUs dirty memory, MB/s (needs --dirty-ring)" },
    { "cancel-vcpu-dirty-limit", qmp_cancel_vcpu_dirty_limit, { A("cpu-index", INT) }, false,
      "remove dirty limits" },
    { "query-vcpu-dirty-limit", qmp_query_vcpu_dirty_limit, NO_ARGS, false,
      "the vCPUs' dirty limits" },
    { "vmshift-status", h_status, NO_ARGS, false,
      "state, vCPUs, RAM, guest counters, migration reports" },
    { "vmshift-set-rate", h_set_rate, { R("rate", SIZE) }, false,
      "the guest workload's dirty rate, pages/s (0: full speed)" },
    { "vmshift-digest", h_digest, { A("start", SIZE), A("length", SIZE) }, false,
      "XXH3 of guest RAM" },
    { "vmshift-debug-poke", h_debug_poke, { R("addr", SIZE), R("value", SIZE) }, false,
      "write 8 bytes of guest RAM (tests)" },
    { "vmshift-console-input", h_console_input, { R("data", ANY), A("wait_ms", INT) }, false,
      "bytes for the guest's COM1 receiver (as many as its FIFO takes, waiting up to "
      "wait_ms)" },
    { "vmshift-reclaim", h_reclaim, NO_ARGS, false,
      "resume the VM here after its destination died past CLAIM without running it" },
    { NULL, NULL, NO_ARGS, false, NULL },
};
