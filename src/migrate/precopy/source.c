#include "migrate/precopy/source_internal.h"
#include "migrate/commit/boot_id.h"
#include "migrate/postcopy/postcopy_source.h"
#include "migrate/state/digest.h"
#include "migrate/precopy/handshake.h"
#include "migrate/precopy/stream_count.h"
#include "migrate/state/vstate.h"
#include "common/clock.h"
#include "common/cpu_time.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"
#include "wire/reader.h"
#include "wire/writer.h"

#include <stdlib.h>
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

void vs_source_set_status(struct vs_migration *m, const char *status)
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

int vs_source_check_cancel(struct vs_migration *m)
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
    s->disk = m->disk_rep;
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

int vs_source_await_verdict(struct vs_migration *m)
{
    struct vs_wire_header hdr;
    int rc = vs_wire_read_header(&m->r, &hdr);
    if (rc)
        return vs_fail_context(rc, "waiting for the destination's verification");
    if (hdr.type == VS_REC_ABORT) {
        char why[VS_WIRE_MAX_REASON + 1] = "";
        if (vs_wire_read_payload(&m->r, &hdr, why, VS_WIRE_MAX_REASON) == 0)
            m->window.dest_refused = true;   /* it discards its copy */
        return vs_fail(EIO, "the destination aborted: %s", why);
    }
    struct vs_wire_verdict v;
    if ((rc = vs_wire_read_fixed(&m->r, &hdr, VS_REC_VERIFY_REPLY, &v, sizeof(v))) ||
        (rc = vs_wire_check_reason(v.reason, sizeof(v.reason))))
        return rc;
    if (!v.ok) {
        m->window.dest_refused = true;   /* a destination whose check failed discards its copy */
        return vs_fail(EIO, "the destination's copy does not match: %s", v.reason);
    }
    return 0;
}

static int precopy(struct vs_migration *m)
{
    for (uint32_t pass = m->stats.nr_passes;; pass++) {
        uint64_t dirty;
        int rc = vs_dirty_sync(&m->dirty, &dirty);
        if (rc)
            return rc;
        uint64_t pending = dirty + vs_source_disk_pending_pages(m);
        record_dirtied(m, pending);
        if (pass > 0 && !m->conv.force_pass) {
            enum vs_conv_action action;
            if ((rc = vs_converge_after_pass(m, pending, &action)))
                return rc;
            if (action == VS_CONV_SWITCHOVER)
                return 0;
            bool asked = atomic_load(&m->post.requested);
            if ((asked || vs_converge_should_switch_postcopy(action)) &&
                vs_source_disks_refuse_postcopy(m, asked)) {
                asked = false;
                if (action == VS_CONV_POSTCOPY)
                    action = VS_CONV_NEXT_PASS;
            }
            if (asked || vs_converge_should_switch_postcopy(action))
                return vs_postcopy_take_over(m, asked ? "start-postcopy was asked for"
                                                      : "pre-copy is not converging");
            if (action == VS_CONV_NOT_CONVERGING)
                return vs_converge_give_up(m);
        }
        m->conv.force_pass = false;
        vs_converge_pass_start(m);
        vs_fault_point("src.pass", pass, m->ch);
        struct vs_pass_stats ps = { .pass = pass, .dirty_pages = dirty,
                                    .sync_ns = m->dirty.last_sync_ns };
        rc = vs_source_send_pass(m, pass, false, &ps);
        record_pass(m, &ps);
        if (rc)
            return rc;
    }
}

/* Stop the vCPUs and send the rest; *called_off when --max-downtime forbids it after all
 * (the VM then runs on and pre-copy goes on). */
static int blackout(struct vs_migration *m, uint64_t *pause_ns, bool *called_off)
{
    struct vs_vm *vm = m->vm;
    vs_source_set_status(m, "switchover");
    vs_vm_block_resume(vm, "the migration is switching over");
    m->paused_by_us = vs_vm_is_running(vm);
    *pause_ns = vs_clock_ns();
    vs_vm_pause(vm);
    vs_fault_point("src.switchover", 0, m->ch);
    uint64_t dirty;
    int rc = vs_dirty_sync(&m->dirty, &dirty);   /* the disks drained in vs_vm_pause */
    uint64_t pending = dirty + vs_source_disk_pending_pages(m);
    if (!rc && !m->post.engine && !vs_converge_switchover_ok(m, pending)) {   /* post-copy: no final pass */
        vs_vm_block_resume(vm, NULL);
        if (m->paused_by_us && (rc = vs_vm_resume(vm)))
            return rc;
        m->paused_by_us = false;
        vs_source_set_status(m, "active");
        *called_off = true;
        return 0;
    }
    vs_converge_release(m);   /* stopped anyway; and the destination starts at full speed */
    pthread_mutex_lock(&m->lock);
    m->stats.switchover_at_ns = *pause_ns - m->stats.start_ns;
    pthread_mutex_unlock(&m->lock);
    vs_digest_tracker_stop(m->digest);   /* its CPU is better spent on the last pages */
    struct vs_pass_stats ps = { .pass = m->stats.nr_passes, .dirty_pages = dirty, .final = true,
                                .sync_ns = m->dirty.last_sync_ns };
    if (!rc) {
        record_dirtied(m, pending);
        rc = m->post.engine ? vs_postcopy_start(m, ps.pass, *pause_ns)    /* pages follow later */
                   : vs_source_send_pass(m, ps.pass, true, &ps);
        record_pass(m, &ps);
    }
    if (!rc && m->disks)   /* the final disks' digests: the commit compares them */
        rc = vs_disk_send_digests(m->disks, m->w, m->opts.disk_reread, &m->disk_rep);
    uint64_t t_state = vs_clock_ns();
    if (!rc) {
        record_remaining_sent(m);
        vs_fault_point("src.state", 0, m->ch);
        rc = vs_source_send_state(m, *pause_ns);
    }
    if (rc)
        return rc;
    vs_source_set_status(m, "verifying");
    rc = vs_source_await_verdict(m);
    pthread_mutex_lock(&m->lock);
    m->stats.blackout_send_ns = t_state - *pause_ns;
    m->stats.verify_ns = vs_clock_ns() - t_state;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int run_source(struct vs_migration *m)
{
    struct vs_vm *vm = m->vm;
    int rc = vs_source_handshake(m);
    if (rc || (rc = vs_send_streams_start(m)))
        return rc;
    if ((rc = vs_digest_tracker_new(&m->digest, &vm->mem)) ||
        (rc = vs_digest_tracker_start(m->digest, 20)) || (rc = vs_dirty_start(&m->dirty, vm)))
        return rc;
    m->dirty_on = true;
    if (m->disks && (rc = vs_disk_send_start(m->disks, &m->disk_rep)))
        return rc;
    pthread_mutex_lock(&m->lock);
    m->stats.dirty_log_start_ns = m->dirty.start_ns;
    m->stats.setup_ns = vs_clock_ns() - m->stats.start_ns;
    pthread_mutex_unlock(&m->lock);
    vs_source_set_status(m, "active");
    m->cap.start_ns = vs_clock_ns();
    atomic_store(&m->cap.bytes, 0);
    m->cap.on = true;
    uint64_t pause_ns;
    for (bool called_off = true; called_off;) {
        called_off = false;
        if ((rc = precopy(m)) || (rc = vs_source_check_cancel(m)) ||
            (rc = vs_postcopy_prepare(m)))
            return rc;
        m->cap.on = false;
        if ((rc = blackout(m, &pause_ns, &called_off)) || (rc = vs_source_check_cancel(m)))
            return rc;
        m->cap.on = called_off;
    }

    /* COMMIT, CLAIM, GRANT: from the grant on the source never runs this VM again. */
    if ((rc = vs_source_commit(m, pause_ns)))
        return rc;
    return m->post.engine ? vs_postcopy_source_serve(m) : 0;   /* the pages the destination lacks */
}

/* Undo everything before the commit: the source VM runs on as if nothing happened.
 * Returns the final status. */
static const char *roll_back(struct vs_migration *m, int rc)
{
    char why[sizeof(m->stats.error)];
    if (cancelled(m))
        rc = vs_fail(ECANCELED, "migration cancelled by the operator");
    snprintf(why, sizeof(why), "%s", vs_last_error());
    pthread_mutex_lock(&m->lock);
    bool gave_up = m->window.dest_gave_up;
    pthread_mutex_unlock(&m->lock);
    if (gave_up && rc != -ECANCELED)
        snprintf(why, sizeof(why), "the destination gave up and discarded its copy (its log "
                 "says why); here: %.400s", vs_last_error());
    if (m->ch && m->w && rc != -ECANCELED && !gave_up) {
        /* The peer may have said why it stopped: an ABORT waiting in the stream. */
        struct vs_wire_header hdr;
        char reason[VS_WIRE_MAX_REASON + 1] = "";
        vs_channel_set_timeout(m->ch, 500);
        if (vs_wire_read_header(&m->r, &hdr) == 0 && hdr.type == VS_REC_ABORT &&
            vs_wire_read_payload(&m->r, &hdr, reason, VS_WIRE_MAX_REASON) == 0) {
            snprintf(why, sizeof(why), "the destination aborted: %s", reason);
            /* A destination sends ABORT only as it destroys its copy: nothing to settle,
             * even when our own send failed after DIGEST. */
            pthread_mutex_lock(&m->lock);
            m->window.dest_refused = true;
            pthread_mutex_unlock(&m->lock);
        }
    }
    if (m->ch && m->w) {
        const char *msg = rc == -ECANCELED ? "cancelled by the operator" : "the source failed";
        vs_channel_set_timeout(m->ch, 1000);
        vs_wire_send(m->w, VS_REC_ABORT, msg, (uint32_t)strlen(msg) + 1);
    }
    vs_converge_release(m);
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

/* x-disk-verify after: the VM is the destination's and the source's copied disks are
 * frozen (its device closed them at the grant): read them again and check every block
 * against what was sent. A difference cannot be taken back: it is reported. */
static void audit_disks(struct vs_migration *m, int rc)
{
    if (rc || !m->disks || m->opts.disk_reread)
        return;
    pthread_mutex_lock(&m->lock);
    bool granted = m->window.outcome == VS_OUTCOME_SRC_GRANTED;
    pthread_mutex_unlock(&m->lock);
    if (!granted)
        return;
    if (vs_disk_send_audit(m->disks, &m->disk_rep) == 0) {
        vs_info("migration to %s: the source's final disks, read again, are what was sent "
                "(%.0f ms)", m->opts.to, (double)m->disk_rep.audit_ns / 1e6);
        return;
    }
    vs_log(VS_LOG_ERROR, "migration to %s: %s", m->opts.to, vs_last_error());
    pthread_mutex_lock(&m->lock);
    snprintf(m->stats.error, sizeof(m->stats.error), "%s", vs_last_error());
    pthread_mutex_unlock(&m->lock);
}

static void *migration_thread(void *arg)
{
    struct vs_migration *m = arg;
    int rc = run_source(m);
    audit_disks(m, rc);
    vs_disk_send_stop(m->disks);   /* the source's disk was only read; it stays the VM's */
    const char *status;
    pthread_mutex_lock(&m->lock);
    bool granted = m->window.outcome == VS_OUTCOME_SRC_GRANTED;
    pthread_mutex_unlock(&m->lock);
    if (rc && !granted) {
        status = roll_back(m, rc);
    } else {    /* granted: nothing to roll back (a post-copy given up after the grant) */
        status = rc ? "failed" : m->unconfirmed ? "unconfirmed" : "completed";
    }
    if (m->dirty_on)
        vs_dirty_stop(&m->dirty);
    m->dirty_on = false;
    vs_send_streams_stop(m);
    for (unsigned i = 0; i < m->nr_streams; i++)   /* count every zero-copy completion */
        if (m->streams[i].ch && vs_channel_zerocopy_drain(m->streams[i].ch, 1000))
            vs_warn("%s", vs_last_error());
    vs_bw_sampler_stop(&m->sampler);
    vs_converge_finish(m);
    vs_digest_tracker_free(m->digest);
    m->digest = NULL;
    uint64_t cpu_ns = vs_process_cpu_ns() - vs_vm_vcpu_cpu_ns(m->vm);
    pthread_mutex_lock(&m->lock);
    /* The disks' audit ran after the VM was the destination's: not the migration's time. */
    m->stats.total_ns = vs_clock_ns() - m->stats.start_ns - m->disk_rep.audit_ns;
    m->stats.transferred_bytes = vs_send_streams_bytes(m);
    m->stats.disk = m->disk_rep;
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
    if (o->security.mode == VS_SEC_UNSET)
        return vs_fail(EINVAL, "choose how the migration is secured: tls_psk=FILE, or "
                       "tls_cert=FILE tls_key=FILE tls_ca=FILE, or insecure=true");
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
    if (!rc)
        rc = vs_vm_check_migratable(vm, opts->with_disks);
    struct vs_disk_send *disks = NULL;
    uint32_t disks_mask = 0;
    if (!rc && opts->with_disks)
        rc = vs_disk_send_new(&disks, vm, &disks_mask);
    if (rc)
        return rc;
    struct vs_tls *tls;
    if ((rc = vs_tls_new(&opts->security, VS_TLS_SOURCE, &tls))) {
        vs_disk_send_free(disks);
        return rc;
    }
    struct vs_migration *m = calloc(1, sizeof(*m));
    if (!m) {
        vs_disk_send_free(disks);
        vs_tls_free(tls);
        return vs_fail(ENOMEM, "out of memory for a migration");
    }
    m->tls = tls;
    m->disks = disks;   /* freed with m from here on (vs_migration_free) */
    m->disks_mask = disks_mask;
    m->vm = vm;
    m->opts = *opts;
    if (opts->dialer.connect)
        m->dialer = opts->dialer;
    else
        vs_dialer_tcp_tls(&m->dialer, tls, &m->opts.security);
    m->nr_streams = opts->streams ? opts->streams : vs_stream_count_default(opts->to);
    m->cpu0_ns = vs_process_cpu_ns() - vs_vm_vcpu_cpu_ns(vm);
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->sched.lock, NULL);
    pthread_cond_init(&m->window.settle_cv, NULL);
    atomic_init(&m->closing, false);
    m->window.outcome = VS_OUTCOME_SRC_UNDECIDED;
    pthread_cond_init(&m->sched.start_cv, NULL);
    pthread_cond_init(&m->sched.done_cv, NULL);
    atomic_init(&m->cancel, false);
    atomic_init(&m->stream_failed, false);
    atomic_init(&m->sched.next_unit, 0);
    atomic_init(&m->sched.pages_left, 0);
    atomic_init(&m->cap.bytes, 0);
    struct vs_migration_stats *s = &m->stats;
    s->nr_streams = m->nr_streams;
    s->compress = compress_name(opts->compress);
    s->zerocopy = opts->zerocopy;
    s->security = vs_security_mode_name(opts->security.mode);
    s->bw_interval_ms = 100;
    s->status = "setup";
    snprintf(s->peer, sizeof(s->peer), "%s", opts->to);
    s->ram_total_bytes = vm->mem.size;
    s->vcpus = vm->nr_vcpus;
    s->downtime_limit_ms = opts->downtime_limit_ms;
    s->max_passes = opts->max_passes;
    s->start_ns = vs_clock_ns();
    if ((rc = vs_bw_sampler_start(&m->sampler, s->bw_interval_ms, 36000, sample_bytes, m))) {
        vs_tls_free(m->tls);
        vs_disk_send_free(m->disks);
        free(m);
        return rc;
    }
    s->bw_bytes = m->sampler.bytes;
    if ((rc = vs_converge_init(m))) {
        vs_bw_sampler_free(&m->sampler);
        vs_disk_send_free(m->disks);
        free(m);
        return rc;
    }
    int err = pthread_create(&m->thread, NULL, migration_thread, m);
    if (err) {
        vs_converge_free(m);
        vs_bw_sampler_free(&m->sampler);
        pthread_mutex_destroy(&m->lock);
        vs_tls_free(m->tls);
        vs_disk_send_free(m->disks);
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

void vs_source_dest_discarded(struct vs_migration *m)
{
    pthread_mutex_lock(&m->lock);
    bool stop = !m->committed && !m->finished &&
                m->window.outcome == VS_OUTCOME_SRC_UNDECIDED;
    if (stop) {
        /* Said before the streams are shut: the log tells why before the status turns. */
        vs_warn("migration to %s: the destination gave up and discarded its copy: stopping "
                "the migration; the VM keeps running here", m->opts.to);
        m->window.outcome = VS_OUTCOME_SRC_ABORTED;
        m->window.dest_refused = true;
        m->window.dest_gave_up = true;
        for (unsigned i = 0; i < m->nr_streams; i++)
            if (m->streams[i].ch)
                vs_channel_shutdown(m->streams[i].ch);
    }
    pthread_mutex_unlock(&m->lock);
}

void vs_migration_stats(struct vs_migration *m, struct vs_migration_stats *out, bool *finished)
{
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    if (!m->finished) {
        out->total_ns = vs_clock_ns() - m->stats.start_ns;
        out->bw_count = atomic_load(&m->sampler.count);
        vs_converge_snapshot(m, out);
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
    vs_postcopy_abandon(m);
    pthread_join(m->thread, NULL);
    vs_postcopy_source_free(m);
    for (unsigned i = 0; i < m->nr_streams; i++)
        vs_channel_close(m->streams[i].ch);
    vs_wire_reader_destroy(&m->r);
    vs_bw_sampler_free(&m->sampler);
    vs_converge_free(m);
    pthread_mutex_destroy(&m->sched.lock);
    pthread_cond_destroy(&m->sched.start_cv);
    pthread_cond_destroy(&m->sched.done_cv);
    pthread_cond_destroy(&m->window.settle_cv);
    pthread_mutex_destroy(&m->lock);
    vs_tls_free(m->tls);
    vs_disk_send_free(m->disks);
    free(m);
}
