#include "ctl/vm_commands.h"
#include "ctl/ctl_json.h"
#include "ctl/converge_commands.h"
#include "common/clock.h"
#include "common/error.h"
#include "migrate/postcopy_dest.h"
#include "migrate/postcopy_source.h"
#include "migrate/source.h"
#include "codec/codec.h"
#include "wire/format.h"
#include "vmshift/guest_abi.h"
#include "vmm/vcpu.h"

#include <json-c/json.h>
#include <string.h>
#include <xxhash.h>

static const char *workload_name(uint32_t w)
{
    static const char *const names[] = { "idle", "once", "continuous", "verify", "timer" };
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

static void add_migration_status(struct vm_commands *c, struct json_object *reply)
{
    if (c->migration) {
        struct vs_migration_stats s;
        vs_migration_stats(c->migration, &s, NULL);
        json_object_object_add(reply, "migration", vs_report_json(&s));
    }
    if (c->postcopy)
        vs_postcopy_dest_stats(c->postcopy, &c->incoming);
    if (c->has_incoming)
        json_object_object_add(reply, "incoming", vs_report_json(&c->incoming));
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
    json_object_object_add(reply, "boot", json_object_new_string(vs_boot_mode_name(vm->boot.mode)));
    pthread_mutex_lock(&vm->serial.lock);
    uint64_t serial_out = vm->serial.bytes_out, serial_in = vm->serial.bytes_in;
    pthread_mutex_unlock(&vm->serial.lock);
    add_u64(reply, "serial_bytes", serial_out);
    add_u64(reply, "serial_bytes_in", serial_in);
    add_u64(reply, "unclaimed_pio", vs_bus_unclaimed(&vm->bus, VS_BUS_PIO, NULL));
    add_u64(reply, "unclaimed_mmio", vs_bus_unclaimed(&vm->bus, VS_BUS_MMIO, NULL));
    json_object_object_add(reply, "guest", guest_status(vm));
}

/* xxh3-64 of RAM offsets [start, start+length) (the memfd, as the migration stream and its
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

/* streams=N compress=none|lz4|zstd|auto zerocopy=BOOL of a migrate request. */
static int migrate_stream_opts(struct json_object *req, struct vs_migration_opts *o)
{
    uint64_t v;
    const char *name;
    bool b;
    int rc;
    if ((rc = ctl_json_get_u64(req, "streams", &v)) == 0) {
        if (v < 1 || v > VS_WIRE_MAX_STREAMS)
            return vs_fail(EINVAL, "streams=%llu is out of range; give 1 to %d",
                           (unsigned long long)v, VS_WIRE_MAX_STREAMS);
        o->streams = (uint32_t)v;
    } else if (rc != -ENOENT) {
        return rc;
    }
    if ((rc = ctl_json_get_string(req, "compress", &name)) == 0) {
        enum vs_codec codec;
        if (strcmp(name, "auto") == 0)
            o->compress = VS_COMPRESS_AUTO;
        else if ((rc = vs_codec_parse(name, &codec)) == 0)
            o->compress = (int)codec;
        else
            return vs_fail(EINVAL, "compress='%s' is unknown; use none, lz4, zstd or auto", name);
    } else if (rc != -ENOENT) {
        return rc;
    }
    if ((rc = ctl_json_get_bool(req, "zerocopy", &b)) == 0)
        o->zerocopy = b;
    else if (rc != -ENOENT)
        return rc;
    return 0;
}

/* tls_psk=FILE | tls_cert=FILE tls_key=FILE tls_ca=FILE [tls_name=NAME] | insecure=true,
 * and ktls=BOOL, of a migrate request. Files are read by this process: give absolute
 * paths (`vmshift migrate` does). */
static int migrate_security_opts(struct json_object *req, struct vs_security_opts *o)
{
    static const char *const files[] = { "tls_psk", "tls_cert", "tls_key", "tls_ca", "tls_name" };
    static const char *const flags[] = { "insecure", "ktls" };
    const char *value;
    bool b;
    int rc;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if ((rc = ctl_json_get_string(req, files[i], &value)) == 0)
            rc = vs_security_set(o, files[i], value);
        if (rc && rc != -ENOENT)
            return rc;
    }
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if ((rc = ctl_json_get_bool(req, flags[i], &b)) == 0 && b)
            rc = vs_security_set(o, flags[i], NULL);
        if (rc && rc != -ENOENT)
            return rc;
    }
    return vs_security_finish(o, false);
}

/* migrate to=HOST:PORT [downtime_limit=MS] [max_passes=N] [max_bandwidth=BYTES/S]
 *         [timeout_ms=MS] [streams=N] [compress=none|lz4|zstd|auto] [zerocopy=BOOL]
 *         and the security fields above */
static int cmd_migrate(struct vm_commands *c, struct json_object *req, struct json_object *reply)
{
    struct vs_migration_opts o;
    vs_migration_default_opts(&o);
    const char *to;
    uint64_t v;
    int rc = ctl_json_get_string(req, "to", &to);
    if (rc)
        return vs_fail(EINVAL, "migrate needs to=HOST:PORT (where `vmshift receive` listens)");
    if (strlen(to) >= sizeof(o.to))
        return vs_fail(EINVAL, "migrate to='%.40s...' is too long", to);
    snprintf(o.to, sizeof(o.to), "%s", to);
    if ((rc = ctl_json_get_u64(req, "downtime_limit", &v)) == 0)
        o.downtime_limit_ms = v;
    else if (rc != -ENOENT)
        return rc;
    if ((rc = ctl_json_get_u64(req, "max_passes", &v)) == 0) {
        if (v > 1000)
            return vs_fail(EINVAL, "max_passes=%llu is out of range; give 1 to 1000, or 0 to "
                           "go on until it converges or is cancelled", (unsigned long long)v);
        o.max_passes = (uint32_t)v;
    } else if (rc != -ENOENT) {
        return rc;
    }
    if ((rc = ctl_json_get_u64(req, "max_bandwidth", &v)) == 0)
        o.max_bandwidth = v;
    else if (rc != -ENOENT)
        return rc;
    if ((rc = ctl_json_get_u64(req, "timeout_ms", &v)) == 0)
        o.timeout_ms = v > 3600000 ? 3600000 : (int)v;
    else if (rc != -ENOENT)
        return rc;
    if (c->ctl_path)
        snprintf(o.ctl_path, sizeof(o.ctl_path), "%s", c->ctl_path);
    if ((rc = migrate_stream_opts(req, &o)) || (rc = converge_migrate_opts(req, &o)) ||
        (rc = migrate_security_opts(req, &o.security)))
        return rc;
    if (c->migration) {
        struct vs_migration_stats s;
        bool finished;
        vs_migration_stats(c->migration, &s, &finished);
        if (!finished)
            return vs_fail(EBUSY, "a migration to %s is already running; cancel it first", s.peer);
        vs_migration_free(c->migration);
        c->migration = NULL;
    }
    pthread_mutex_lock(&c->vm->lock);
    enum vs_vm_state st = c->vm->state;
    pthread_mutex_unlock(&c->vm->lock);
    if (st == VS_VM_MIGRATED || st == VS_VM_FAILED)
        return vs_fail(EINVAL, "cannot migrate a VM that is %s", vs_vm_state_name(st));
    if ((rc = vs_migration_start(&c->migration, c->vm, &o)))
        return rc;
    json_object_object_add(reply, "to", json_object_new_string(o.to));
    return 0;
}

/* resume-migration: on the source, reconnect a lost post-copy ([to=HOST:PORT]); on a
 * destination, say where it waits for the source to come back. */
static int cmd_resume_migration(struct vm_commands *c, struct json_object *req,
                                struct json_object *reply)
{
    if (c->postcopy) {
        char where[128];
        int rc = vs_postcopy_dest_resume(c->postcopy, where, sizeof(where));
        if (!rc)
            json_object_object_add(reply, "waiting-on", json_object_new_string(where));
        return rc;
    }
    if (!c->migration)
        return vs_fail(ENOENT, "no migration to resume here");
    const char *to = NULL;
    int rc = ctl_json_get_string(req, "to", &to);
    if (rc && rc != -ENOENT)
        return rc;
    return vs_migration_resume(c->migration, to);
}

/* Reading guest RAM while pages are missing could wait for the network forever. */
static int check_ram_readable(struct vm_commands *c, const char *cmd)
{
    if (vs_postcopy_dest_busy(c->postcopy))
        return vs_fail(EBUSY, "%s: pages of this VM are still arriving in post-copy; try again "
                       "when `migrate-status` says completed", cmd);
    return 0;
}

void vm_commands_finish(struct vm_commands *c)
{
    vs_postcopy_dest_stop(c->postcopy);
    if (!c->migration)
        return;
    vs_migration_cancel(c->migration);
    vs_migration_free(c->migration);
    c->migration = NULL;
}

int vm_commands_handle(void *ctx, const char *cmd, struct json_object *request,
                       struct json_object *reply)
{
    struct vm_commands *c = ctx;
    struct vs_vm *vm = c->vm;
    int rc = 0;
    if (strcmp(cmd, "status") == 0) {
        vm_commands_status(vm, reply);
        add_migration_status(c, reply);
    } else if (strcmp(cmd, "migrate") == 0) {
        rc = cmd_migrate(c, request, reply);
    } else if (strcmp(cmd, "migrate-status") == 0) {
        if (!c->migration && !c->has_incoming)
            return vs_fail(ENOENT, "no migration has been started on this VM");
        add_migration_status(c, reply);
    } else if (strcmp(cmd, "cancel") == 0) {
        if (!c->migration)
            return vs_fail(ENOENT, "no migration to cancel");
        rc = vs_migration_cancel(c->migration);
    } else if (strcmp(cmd, "reclaim") == 0) {
        if (!c->migration)
            return vs_fail(ENOENT, "no migration to reclaim the VM from: reclaim takes back a "
                           "VM whose destination died after it claimed it");
        rc = vs_migration_reclaim(c->migration);
        if (!rc)
            vm_commands_status(vm, reply);
    } else if (strcmp(cmd, "pause") == 0) {
        rc = vs_vm_pause(vm);
        if (!rc)
            vm_commands_status(vm, reply);
    } else if (strcmp(cmd, "resume") == 0) {
        rc = vs_vm_resume(vm);
        if (!rc)
            vm_commands_status(vm, reply);
    } else if (strcmp(cmd, "quit") == 0) {
        c->quit = true;
    } else if (strcmp(cmd, "dirty-rate") == 0) {
        bool finished = true;
        if (c->migration) {
            struct vs_migration_stats s;
            vs_migration_stats(c->migration, &s, &finished);
        }
        rc = converge_cmd_dirty_rate(vm, !finished, request, reply);
    } else if (strcmp(cmd, "set-rate") == 0) {
        rc = cmd_set_rate(vm, request, reply);
    } else if (strcmp(cmd, "digest") == 0) {
        rc = check_ram_readable(c, cmd) ? -EBUSY : cmd_digest(vm, request, reply);
    } else if (strcmp(cmd, "debug-poke") == 0) {
        rc = check_ram_readable(c, cmd) ? -EBUSY : cmd_debug_poke(vm, request, reply);
    } else if (strcmp(cmd, "start-postcopy") == 0) {
        if (!c->migration)
            return vs_fail(ENOENT, "no migration is running");
        rc = vs_postcopy_switch(c->migration);
    } else if (strcmp(cmd, "resume-migration") == 0) {
        rc = cmd_resume_migration(c, request, reply);
    } else if (strcmp(cmd, "console-input") == 0) {
        rc = cmd_console_input(vm, request, reply);
    } else {
        rc = vs_fail(EINVAL, "unknown command '%s'; known: status, pause, resume, quit, "
                     "set-rate, dirty-rate, digest, debug-poke, migrate, migrate-status, cancel, "
                     "start-postcopy, resume-migration, console-input", cmd);
    }
    return rc;
}
