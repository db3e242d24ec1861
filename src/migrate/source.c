#include "migrate/source_internal.h"
#include "migrate/boot_id.h"
#include "migrate/digest.h"
#include "migrate/handshake.h"
#include "migrate/vstate.h"
#include "common/clock.h"
#include "common/cpu_time.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"
#include "transport/tcp.h"
#include "wire/reader.h"
#include "wire/writer.h"

#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

void vs_migration_default_opts(struct vs_migration_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->downtime_limit_ms = 300;
    o->max_passes = 30;
    o->timeout_ms = 60000;
    o->streams = 0;
    o->compress = VS_CODEC_NONE;
}

uint32_t vs_migration_default_streams(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > 4 ? 4 : (uint32_t)cpus;
}

static void set_status(struct vs_migration *m, const char *status)
{
    pthread_mutex_lock(&m->lock);
    m->stats.status = status;
    pthread_mutex_unlock(&m->lock);
    vs_info("migration to %s: %s", m->opts.to, status);
}

static bool cancelled(struct vs_migration *m)
{
    return atomic_load(&m->cancel);
}

static int check_cancel(struct vs_migration *m)
{
    return cancelled(m) ? vs_fail(ECANCELED, "migration cancelled by the operator") : 0;
}

static void record_pass(struct vs_migration *m, const struct vs_pass_stats *ps)
{
    pthread_mutex_lock(&m->lock);
    struct vs_migration_stats *s = &m->stats;
    if (s->nr_passes < VS_REPORT_MAX_PASSES)
        s->passes[s->nr_passes] = *ps;
    s->nr_passes++;
    s->normal_pages += ps->sent_pages;
    s->zero_pages += ps->zero_pages;
    s->skipped_pages += ps->skipped_pages;
    s->transferred_bytes = vs_send_streams_bytes(m);
    if (ps->duration_ns > 0) {
        m->bandwidth = (double)ps->bytes * 1e9 / (double)ps->duration_ns;
        s->mbps = m->bandwidth * 8 / 1e6;
    }
    s->last_sync_ns = m->dirty.last_sync_ns;
    pthread_mutex_unlock(&m->lock);
}

/* Called after each sync: the pages dirtied during the pass that just ended. */
static void record_dirtied(struct vs_migration *m, uint64_t dirty_pages)
{
    pthread_mutex_lock(&m->lock);
    struct vs_migration_stats *s = &m->stats;
    if (s->nr_passes > 0 && s->nr_passes <= VS_REPORT_MAX_PASSES) {
        struct vs_pass_stats *p = &s->passes[s->nr_passes - 1];
        p->dirtied_pages = dirty_pages;
        if (p->duration_ns)
            s->dirty_pages_rate = (double)dirty_pages * 1e9 / (double)p->duration_ns;
    }
    s->remaining_bytes = dirty_pages * 4096;
    s->expected_downtime_ms = m->bandwidth > 0 ? (double)s->remaining_bytes * 1e3 / m->bandwidth : 0;
    pthread_mutex_unlock(&m->lock);
}

/* After the final pass nothing is left to send. */
static void record_remaining_sent(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    m->stats.remaining_bytes = 0;
    m->stats.expected_downtime_ms = 0;
    pthread_mutex_unlock(&m->lock);
}

/* Connect every stream (stream 0 first: the destination takes its first connection as
 * stream 0) and give each its writer. */
static int open_streams(struct vs_migration *m)
{
    for (unsigned i = 0; i < m->nr_streams; i++) {
        struct vs_channel *ch;
        int rc = vs_tcp_connect(m->opts.to, m->opts.timeout_ms, &ch);
        if (rc)
            return i ? vs_fail_context(rc, "opening stream %u of %u", i, m->nr_streams) : rc;
        pthread_mutex_lock(&m->lock);
        m->streams[i].ch = ch;
        if (i == 0)
            m->ch = ch;
        pthread_mutex_unlock(&m->lock);
        if ((rc = vs_channel_set_timeout(ch, m->opts.timeout_ms)) || (rc = check_cancel(m)))
            return rc;
    }
    vs_wire_reader_init(&m->r, m->ch);
    return vs_send_streams_init(m);
}

static uint32_t wanted_codecs(const struct vs_migration_opts *o)
{
    if (o->compress == VS_COMPRESS_AUTO)
        return 1u << VS_CODEC_ZSTD;
    return o->compress == VS_CODEC_NONE ? 0 : 1u << o->compress;
}

static int handshake(struct vs_migration *m)
{
    struct vs_vm *vm = m->vm;
    struct vs_wire_hello h = {
        .version_major = VS_WIRE_VERSION_MAJOR,
        .version_minor = VS_WIRE_VERSION_MINOR,
        .page_size = VS_WIRE_PAGE_SIZE,
        .ram_size = vm->mem.size,
        .nr_vcpus = vm->nr_vcpus,
        .nr_streams = m->nr_streams,
        .codecs = wanted_codecs(&m->opts),
    };
    vs_boot_id(h.boot_id);
    if (getrandom(h.session, sizeof(h.session), 0) != (ssize_t)sizeof(h.session))
        return vs_fail(errno, "cannot draw a random migration session id: %s", strerror(errno));
    memcpy(m->session, h.session, sizeof(h.session));
    int rc = vs_source_resolve_listen(m, &h.resolve_port);
    if (rc)
        return rc;
    rc = vs_wire_send(m->w, VS_REC_HELLO, &h, sizeof(h));
    for (unsigned i = 1; i < m->nr_streams && !rc; i++) {
        struct vs_wire_stream_hello sh = { .index = i, .nr_streams = m->nr_streams };
        memcpy(sh.session, h.session, sizeof(sh.session));
        rc = vs_wire_send(&m->streams[i].w, VS_REC_STREAM_HELLO, &sh, sizeof(sh));
    }
    vs_fault_point("src.handshake", 0, m->ch);
    if (rc)
        return rc;
    bool same_boot = false;
    if ((rc = vs_handshake_read_reply(&m->r, &h, m->opts.to, m->stats.compress, &same_boot)))
        return rc;
    pthread_mutex_lock(&m->lock);
    m->stats.downtime_exact = same_boot;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* Everything the destination needs once the vCPUs are stopped, then the digests. */
static int send_state(struct vs_migration *m, uint64_t pause_ns)
{
    struct vs_vm *vm = m->vm;
    XXH3_state_t *vh = XXH3_createState();
    if (!vh)
        return vs_fail(ENOMEM, "out of memory for a digest state");
    XXH3_64bits_reset(vh);
    struct vs_blob blob = { 0 };
    int rc = 0;
    for (unsigned i = 0; i < vm->nr_vcpus && !rc; i++) {
        blob.len = 0;
        if ((rc = vs_vstate_save_vcpu(&vm->vcpus[i], &blob)))
            break;
        XXH3_64bits_update(vh, blob.data, blob.len);
        size_t len = sizeof(struct vs_wire_vcpu_state) + blob.len;
        uint8_t *rec = malloc(len);
        if (!rec) {
            rc = vs_fail(ENOMEM, "out of memory for vCPU %u state", i);
            break;
        }
        struct vs_wire_vcpu_state vh_rec = { .index = i };
        memcpy(rec, &vh_rec, sizeof(vh_rec));
        memcpy(rec + sizeof(vh_rec), blob.data, blob.len);
        rc = vs_wire_send(m->w, VS_REC_VCPU_STATE, rec, (uint32_t)len);
        free(rec);
    }
    struct vs_wire_digest dg = { .vcpu_xxh3 = XXH3_64bits_digest(vh), .pause_ns = pause_ns };
    XXH3_freeState(vh);
    if (!rc) {
        blob.len = 0;
        rc = vs_vstate_save_machine(vm, &blob);
        if (!rc) {
            dg.machine_xxh3 = XXH3_64bits(blob.data, blob.len);
            rc = vs_wire_send(m->w, VS_REC_MACHINE_STATE, blob.data, (uint32_t)blob.len);
        }
    }
    vs_blob_free(&blob);
    if (rc)
        return rc;
    /* RAM is frozen: only blocks changed since the background thread hashed them are
     * hashed here. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    rc = vs_digest_tracker_finish(m->digest, cpus > 0 ? (unsigned)cpus : 1, &dg.ram_xxh3, NULL);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->lock);
    m->stats.ram_digest = dg.ram_xxh3;
    m->digest_sent = true;   /* from the first byte on, the destination may verify */
    pthread_mutex_unlock(&m->lock);
    rc = vs_wire_send(m->w, VS_REC_DIGEST, &dg, sizeof(dg));
    vs_fault_point("src.digest", 0, m->ch);
    return rc;
}

static int await_verdict(struct vs_migration *m)
{
    struct vs_wire_header hdr;
    int rc = vs_wire_read_header(&m->r, &hdr);
    if (rc)
        return vs_fail_context(rc, "waiting for the destination's verification");
    if (hdr.type == VS_REC_ABORT) {
        char why[VS_WIRE_MAX_REASON + 1] = "";
        if (vs_wire_read_payload(&m->r, &hdr, why, VS_WIRE_MAX_REASON) == 0)
            m->dest_refused = true;   /* it discards its copy */
        return vs_fail(EIO, "the destination aborted: %s", why);
    }
    struct vs_wire_verdict v;
    if ((rc = vs_wire_read_fixed(&m->r, &hdr, VS_REC_VERIFY_REPLY, &v, sizeof(v))) ||
        (rc = vs_wire_check_reason(v.reason, sizeof(v.reason))))
        return rc;
    if (!v.ok) {
        m->dest_refused = true;   /* a destination whose check failed discards its copy */
        return vs_fail(EIO, "the destination's copy does not match: %s", v.reason);
    }
    return 0;
}

static int precopy(struct vs_migration *m)
{
    for (uint32_t pass = 0;; pass++) {
        uint64_t dirty;
        int rc = vs_dirty_sync(&m->dirty, &dirty);
        if (rc)
            return rc;
        record_dirtied(m, dirty);
        if (pass > 0) {
            struct vs_migration_stats s;
            vs_migration_stats(m, &s, NULL);
            bool fits = s.expected_downtime_ms <= (double)m->opts.downtime_limit_ms;
            vs_info("pass %u done: %.1f MiB sent in %.1f ms (%.0f Mbit/s), %llu pages dirtied "
                    "meanwhile (%.0f pages/s), expected downtime %.1f ms", pass - 1,
                    (double)s.passes[s.nr_passes - 1].bytes / 1048576.0,
                    (double)s.passes[s.nr_passes - 1].duration_ns / 1e6, s.mbps,
                    (unsigned long long)dirty, s.dirty_pages_rate, s.expected_downtime_ms);
            if (fits || pass >= m->opts.max_passes) {
                if (!fits)
                    vs_info("switching over after %u passes although the expected downtime "
                            "%.1f ms exceeds the limit %llu ms", pass, s.expected_downtime_ms,
                            (unsigned long long)m->opts.downtime_limit_ms);
                return 0;
            }
        }
        vs_fault_point("src.pass", pass, m->ch);
        struct vs_pass_stats ps = { .pass = pass, .dirty_pages = dirty,
                                    .sync_ns = m->dirty.last_sync_ns };
        rc = vs_send_streams_pass(m, pass, false, &ps);
        record_pass(m, &ps);
        if (rc)
            return rc;
    }
}

static int blackout(struct vs_migration *m, uint64_t *pause_ns)
{
    struct vs_vm *vm = m->vm;
    set_status(m, "switchover");
    vs_vm_block_resume(vm, "the migration is switching over");
    m->paused_by_us = vs_vm_is_running(vm);
    *pause_ns = vs_clock_ns();
    vs_vm_pause(vm);
    vs_fault_point("src.switchover", 0, m->ch);
    pthread_mutex_lock(&m->lock);
    m->stats.switchover_at_ns = *pause_ns - m->stats.start_ns;
    pthread_mutex_unlock(&m->lock);
    vs_digest_tracker_stop(m->digest);   /* its CPU is better spent on the last pages */
    uint64_t dirty;
    int rc = vs_dirty_sync(&m->dirty, &dirty);
    struct vs_pass_stats ps = { .pass = m->stats.nr_passes, .dirty_pages = dirty, .final = true,
                                .sync_ns = m->dirty.last_sync_ns };
    if (!rc) {
        record_dirtied(m, dirty);
        rc = vs_send_streams_pass(m, ps.pass, true, &ps);
        record_pass(m, &ps);
    }
    uint64_t t_state = vs_clock_ns();
    if (!rc) {
        record_remaining_sent(m);
        vs_fault_point("src.state", 0, m->ch);
        rc = send_state(m, *pause_ns);
    }
    if (rc)
        return rc;
    set_status(m, "verifying");
    rc = await_verdict(m);
    pthread_mutex_lock(&m->lock);
    m->stats.blackout_send_ns = t_state - *pause_ns;
    m->stats.verify_ns = vs_clock_ns() - t_state;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int run_source(struct vs_migration *m)
{
    struct vs_vm *vm = m->vm;
    int rc = open_streams(m);
    if (rc || (rc = handshake(m)) || (rc = vs_send_streams_start(m)))
        return rc;
    if ((rc = vs_digest_tracker_new(&m->digest, &vm->mem)) ||
        (rc = vs_digest_tracker_start(m->digest, 20)) || (rc = vs_dirty_start(&m->dirty, vm)))
        return rc;
    m->dirty_on = true;
    pthread_mutex_lock(&m->lock);
    m->stats.dirty_log_start_ns = m->dirty.start_ns;
    m->stats.setup_ns = vs_clock_ns() - m->stats.start_ns;
    pthread_mutex_unlock(&m->lock);
    set_status(m, "active");
    m->cap_start_ns = vs_clock_ns();
    atomic_store(&m->cap_bytes, 0);
    m->capped = true;
    if ((rc = precopy(m)) || (rc = check_cancel(m)))
        return rc;
    m->capped = false;
    uint64_t pause_ns;
    if ((rc = blackout(m, &pause_ns)) || (rc = check_cancel(m)))
        return rc;

    return vs_source_commit(m, pause_ns);
}

/* Undo everything before the commit: the source VM runs on as if nothing happened.
 * Returns the final status. */
static const char *roll_back(struct vs_migration *m, int rc)
{
    char why[sizeof(m->stats.error)];
    if (cancelled(m))
        rc = vs_fail(ECANCELED, "migration cancelled by the operator");
    snprintf(why, sizeof(why), "%s", vs_last_error());
    if (m->ch && m->w && rc != -ECANCELED) {
        /* The peer may have said why it stopped: an ABORT waiting in the stream. */
        struct vs_wire_header hdr;
        char reason[VS_WIRE_MAX_REASON + 1] = "";
        vs_channel_set_timeout(m->ch, 500);
        if (vs_wire_read_header(&m->r, &hdr) == 0 && hdr.type == VS_REC_ABORT &&
            vs_wire_read_payload(&m->r, &hdr, reason, VS_WIRE_MAX_REASON) == 0)
            snprintf(why, sizeof(why), "the destination aborted: %s", reason);
    }
    if (m->ch && m->w) {
        const char *msg = rc == -ECANCELED ? "cancelled by the operator" : "the source failed";
        vs_channel_set_timeout(m->ch, 1000);
        vs_wire_send(m->w, VS_REC_ABORT, msg, (uint32_t)strlen(msg) + 1);
    }
    const char *settled = vs_source_settle_abort(m);
    if (settled) {
        pthread_mutex_lock(&m->lock);
        snprintf(m->stats.error, sizeof(m->stats.error), "%s", why);
        pthread_mutex_unlock(&m->lock);
        return settled;
    }
    if (m->dirty_on)
        vs_dirty_stop(&m->dirty);
    m->dirty_on = false;
    vs_vm_block_resume(m->vm, NULL);
    if (m->paused_by_us && vs_vm_resume(m->vm))
        vs_log(VS_LOG_ERROR, "could not resume the source VM after a failed migration: %s",
               vs_last_error());
    const char *status = rc == -ECANCELED ? "cancelled" : "failed";
    pthread_mutex_lock(&m->lock);
    snprintf(m->stats.error, sizeof(m->stats.error), "%s", why);
    pthread_mutex_unlock(&m->lock);
    vs_log(VS_LOG_ERROR, "migration to %s %s: %s; the VM keeps running here", m->opts.to,
           status, why);
    return status;
}

static void *migration_thread(void *arg)
{
    struct vs_migration *m = arg;
    int rc = run_source(m);
    const char *status;
    if (rc) {
        status = roll_back(m, rc);
    } else {
        status = m->unconfirmed ? "unconfirmed" : "completed";
    }
    if (m->dirty_on)
        vs_dirty_stop(&m->dirty);
    m->dirty_on = false;
    vs_send_streams_stop(m);
    for (unsigned i = 0; i < m->nr_streams; i++)   /* count every zero-copy completion */
        if (m->streams[i].ch && vs_channel_zerocopy_drain(m->streams[i].ch, 1000))
            vs_warn("%s", vs_last_error());
    vs_bw_sampler_stop(&m->sampler);
    vs_digest_tracker_free(m->digest);
    m->digest = NULL;
    uint64_t cpu_ns = vs_process_cpu_ns() - vs_vm_vcpu_cpu_ns(m->vm);
    pthread_mutex_lock(&m->lock);
    m->stats.total_ns = vs_clock_ns() - m->stats.start_ns;
    m->stats.transferred_bytes = vs_send_streams_bytes(m);
    m->stats.cpu_ns = cpu_ns > m->cpu0_ns ? cpu_ns - m->cpu0_ns : 0;
    m->stats.bw_count = atomic_load(&m->sampler.count);
    for (unsigned i = 0; i < m->nr_streams; i++) {
        struct vs_send_stream *st = &m->streams[i];
        if (!st->ch)
            continue;
        m->stats.stream_bytes[i] = vs_channel_sent(st->ch);
        m->stats.compressed_pages += st->compressed_pages;
        m->stats.compressed_raw_bytes += st->compressed_raw;
        m->stats.compressed_wire_bytes += st->compressed_wire;
        m->stats.zerocopy_sends += st->ch->zc_sends;
        m->stats.zerocopy_copied += st->ch->zc_copied;
    }
    if (m->stats.total_ns) /* the final report's throughput is the whole migration's */
        m->stats.mbps = (double)m->stats.transferred_bytes * 8e3 / (double)m->stats.total_ns;
    /* The final status only with the final counters: readers stop polling on it. */
    m->stats.status = status;
    m->finished = true;
    pthread_mutex_unlock(&m->lock);
    vs_info("migration to %s: %s", m->opts.to, status);
    char line[256];
    struct vs_migration_stats s;
    vs_migration_stats(m, &s, NULL);
    vs_report_progress(&s, line, sizeof(line));
    vs_info("%s; total %.1f ms, downtime %.1f ms", line, (double)s.total_ns / 1e6,
            (double)s.downtime_ns / 1e6);
    return NULL;
}

static uint64_t sample_bytes(void *arg)
{
    struct vs_migration *m = arg;
    pthread_mutex_lock(&m->lock);
    uint64_t b = vs_send_streams_bytes(m);
    pthread_mutex_unlock(&m->lock);
    return b;
}

static const char *compress_name(int compress)
{
    return compress == VS_COMPRESS_AUTO ? "auto" : vs_codec_name((unsigned)compress);
}

static int check_opts(const struct vs_migration_opts *o)
{
    if (o->streams > VS_WIRE_MAX_STREAMS)
        return vs_fail(EINVAL, "%u streams is too many: use 1..%d", o->streams,
                       VS_WIRE_MAX_STREAMS);
    if (o->compress != VS_COMPRESS_AUTO &&
        (o->compress < 0 || o->compress >= VS_CODEC_COUNT ||
         !((vs_codec_supported_mask() >> o->compress) & 1)))
        return vs_fail(EINVAL, "compression %d is not available in this build", o->compress);
    return 0;
}

int vs_migration_start(struct vs_migration **out, struct vs_vm *vm,
                       const struct vs_migration_opts *opts)
{
    int rc = check_opts(opts);
    if (rc)
        return rc;
    struct vs_migration *m = calloc(1, sizeof(*m));
    if (!m)
        return vs_fail(ENOMEM, "out of memory for a migration");
    m->vm = vm;
    m->opts = *opts;
    m->nr_streams = opts->streams ? opts->streams : vs_migration_default_streams();
    m->cpu0_ns = vs_process_cpu_ns() - vs_vm_vcpu_cpu_ns(vm);
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->pass_lock, NULL);
    pthread_cond_init(&m->settle_cv, NULL);
    atomic_init(&m->closing, false);
    m->outcome = VS_OUTCOME_SRC_UNDECIDED;
    pthread_cond_init(&m->pass_cv, NULL);
    pthread_cond_init(&m->done_cv, NULL);
    atomic_init(&m->cancel, false);
    atomic_init(&m->stream_failed, false);
    atomic_init(&m->next_unit, 0);
    atomic_init(&m->pages_left, 0);
    atomic_init(&m->cap_bytes, 0);
    struct vs_migration_stats *s = &m->stats;
    s->nr_streams = m->nr_streams;
    s->compress = compress_name(opts->compress);
    s->zerocopy = opts->zerocopy;
    s->bw_interval_ms = 100;
    s->status = "setup";
    snprintf(s->peer, sizeof(s->peer), "%s", opts->to);
    s->ram_total_bytes = vm->mem.size;
    s->vcpus = vm->nr_vcpus;
    s->downtime_limit_ms = opts->downtime_limit_ms;
    s->max_passes = opts->max_passes;
    s->start_ns = vs_clock_ns();
    if ((rc = vs_bw_sampler_start(&m->sampler, s->bw_interval_ms, 36000, sample_bytes, m))) {
        free(m);
        return rc;
    }
    s->bw_bytes = m->sampler.bytes;
    int err = pthread_create(&m->thread, NULL, migration_thread, m);
    if (err) {
        vs_bw_sampler_free(&m->sampler);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return vs_fail(err, "cannot start the migration thread: %s", strerror(err));
    }
    *out = m;
    return 0;
}

int vs_migration_cancel(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->committed || m->finished) {
        bool committed = m->committed;
        pthread_mutex_unlock(&m->lock);
        return vs_fail(EBUSY, committed ? "too late to cancel: the source has committed and the "
                       "VM now belongs to the destination" : "no migration is running");
    }
    atomic_store(&m->cancel, true);
    for (unsigned i = 0; i < m->nr_streams; i++)
        if (m->streams[i].ch)
            vs_channel_shutdown(m->streams[i].ch);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void vs_migration_stats(struct vs_migration *m, struct vs_migration_stats *out, bool *finished)
{
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    if (!m->finished) {
        out->total_ns = vs_clock_ns() - m->stats.start_ns;
        out->bw_count = atomic_load(&m->sampler.count);
    }
    if (finished)
        *finished = m->finished;
    pthread_mutex_unlock(&m->lock);
}

void vs_migration_free(struct vs_migration *m)
{
    if (!m)
        return;
    vs_source_resolve_stop(m);   /* and stop any settling: this process is done with it */
    pthread_join(m->thread, NULL);
    for (unsigned i = 0; i < m->nr_streams; i++)
        vs_channel_close(m->streams[i].ch);
    vs_wire_reader_destroy(&m->r);
    vs_bw_sampler_free(&m->sampler);
    pthread_mutex_destroy(&m->pass_lock);
    pthread_cond_destroy(&m->pass_cv);
    pthread_cond_destroy(&m->done_cv);
    pthread_cond_destroy(&m->settle_cv);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
