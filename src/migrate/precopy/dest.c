#include "migrate/precopy/dest.h"
#include "migrate/precopy/dest_internal.h"
#include "migrate/commit/boot_id.h"
#include "migrate/state/digest_tracker.h"
#include "migrate/postcopy/postcopy_dest.h"
#include "migrate/postcopy/uffd.h"
#include "migrate/precopy/handshake.h"
#include "migrate/precopy/recv_streams.h"
#include "migrate/state/vstate.h"
#include "common/clock.h"
#include "common/cpu_time.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/size.h"
#include "common/stop_signal.h"
#include "vmm/cpu_model.h"
#include "wire/reader.h"
#include "wire/writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include "vmshift/guest_abi.h"

const char *vs_dest_phase_name(enum phase p)
{
    return p == PHASE_PAGES ? "pre-copy" : p == PHASE_STATE ? "state transfer" : "verified";
}

static int unexpected(struct incoming *in, const struct vs_wire_header *h)
{
    return vs_fail(EPROTO, "migration stream: record #%llu (%s) at offset %llu is not allowed "
                   "during %s", (unsigned long long)h->seq, vs_wire_type_name(h->type),
                   (unsigned long long)in->r->record_offset, vs_dest_phase_name(in->phase));
}

static int on_pass_end(struct incoming *in, const struct vs_wire_header *h)
{
    struct vs_wire_pass_end pe;
    struct vs_pass_stats pass;
    int rc = vs_recv_pass_end(&in->rs, 0, h, &pe, &pass);
    if (rc)
        return rc;
    /* This side's view of the pass: what arrived on all streams, and how long it took. */
    struct vs_migration_stats *st = in->stats;
    vs_recv_streams_totals(&in->rs, st);
    pass.dirty_pages = pass.sent_pages + pass.zero_pages;
    pass.bytes = st->transferred_bytes - in->pass_start_bytes;
    pass.duration_ns = vs_clock_ns() - in->pass_start_ns;
    if (st->nr_passes < VS_REPORT_MAX_PASSES)
        st->passes[st->nr_passes] = pass;
    st->nr_passes++;
    in->pass_start_ns = vs_clock_ns();
    in->pass_start_bytes = st->transferred_bytes;
    vs_fault_point("dst.pass_end", pe.pass, in->ch);
    if (pe.final) {
        in->phase = PHASE_STATE;
        in->stats->status = "switchover";
        if (!in->same_clock)   /* another host's clock: the downtime counts from here */
            vs_report_note_switchover(in->stats, pass.first_rx_ns);
        /* No page changes any more: the digest is finished when the source's arrives. */
        in->digest_start_ns = vs_clock_ns();
    }
    return 0;
}

static int on_vcpu_state(struct incoming *in, const struct vs_wire_header *h)
{
    int rc = vs_wire_read_payload(in->r, h, in->state_buf,
                                  sizeof(struct vs_wire_vcpu_state) + VS_WIRE_MAX_STATE);
    if (rc)
        return rc;
    struct vs_wire_vcpu_state vh;
    memcpy(&vh, in->state_buf, sizeof(vh));
    if (vh.index != in->next_vcpu || in->next_vcpu >= in->vm->nr_vcpus)
        return vs_fail(EPROTO, "migration stream: record #%llu (VCPU_STATE) at offset %llu "
                       "carries vCPU %u, expected vCPU %u of %u", (unsigned long long)h->seq,
                       (unsigned long long)in->r->record_offset, vh.index, in->next_vcpu,
                       in->vm->nr_vcpus);
    const uint8_t *blob = in->state_buf + sizeof(vh);
    size_t len = h->length - sizeof(vh);
    if ((rc = vs_vstate_load_vcpu(&in->vm->vcpus[vh.index], blob, len)))
        return vs_fail_context(rc, "loading vCPU %u state", vh.index);
    XXH3_64bits_update(in->vcpu_hash, blob, len);
    struct vs_blob *keep = &in->vcpu_blobs[vh.index];
    keep->data = malloc(len);
    if (!keep->data)
        return vs_fail(ENOMEM, "out of memory for vCPU %u state", vh.index);
    memcpy(keep->data, blob, len);
    keep->len = keep->cap = len;
    in->next_vcpu++;
    return 0;
}

static int on_machine_state(struct incoming *in, const struct vs_wire_header *h)
{
    int rc = vs_wire_read_payload(in->r, h, in->state_buf, VS_WIRE_MAX_STATE);
    if (rc)
        return rc;
    uint64_t t0 = vs_clock_ns();
    rc = vs_vstate_load_machine(in->vm, in->legacy_machine, in->state_buf, h->length);
    in->stats->device_state_load_ns = vs_clock_ns() - t0;
    in->stats->device_state_bytes = h->length;
    if (rc)
        return vs_fail_context(rc, "loading machine state");
    in->machine_hash = XXH3_64bits(in->state_buf, h->length);
    in->machine_done = true;
    vs_fault_point("dst.state", 0, in->ch);
    return 0;
}

/* POSTCOPY_START: from here the source sends the state and then only what is asked for. */
static int on_postcopy_start(struct incoming *in, const struct vs_wire_header *h)
{
    vs_digest_tracker_stop(in->digest);   /* it reads RAM; pages are being dropped */
    vs_prefault_join(&in->rs.prefault);   /* it writes RAM */
    int rc = vs_postcopy_dest_new(&in->pc, in->vm, in->opts, in->r, h);
    if (!rc)
        vs_digest_tracker_skip_pages(in->digest, vs_postcopy_dest_missing(in->pc));
    return rc;
}

/* The end-to-end check: our RAM, vCPU and machine state against the source's digests
 * (DIGEST; or POSTCOPY_DIGESTS, per RAM block, where the blocks with missing pages are
 * left to the post-copy). */
static int on_digest(struct incoming *in, const struct vs_wire_header *h)
{
    struct vs_wire_digest dg;
    int rc = 0;
    uint64_t ram = 0;
    struct vs_wire_verdict v = { .ok = 1 };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!in->pc && (rc = vs_wire_read_fixed(in->r, h, VS_REC_DIGEST, &dg, sizeof(dg))))
        return rc;
    if (in->same_clock)   /* when the source's vCPUs stopped, on our clock */
        vs_report_note_switchover(in->stats, in->pc ? vs_postcopy_dest_pause_ns(in->pc)
                                                    : dg.pause_ns);
    vs_fault_point("dst.digest", 0, in->ch);
    rc = vs_digest_tracker_finish(in->digest, cpus > 0 ? (unsigned)cpus : 1, &ram, NULL);
    if (rc)
        snprintf(v.reason, sizeof(v.reason), "%s", vs_last_error());
    else if (in->pc && (rc = vs_postcopy_dest_check(in->pc, in->r, h, in->digest, &dg.vcpu_xxh3,
                                                    &dg.machine_xxh3, v.reason,
                                                    sizeof(v.reason))))
        return rc;
    else if (!in->pc && ram != dg.ram_xxh3)
        snprintf(v.reason, sizeof(v.reason), "RAM digest %016llx differs from the source's "
                 "%016llx", (unsigned long long)ram, (unsigned long long)dg.ram_xxh3);
    if (v.reason[0])
        ;
    else if (XXH3_64bits_digest(in->vcpu_hash) != dg.vcpu_xxh3)
        snprintf(v.reason, sizeof(v.reason), "vCPU state digest differs from the source's");
    else if (in->machine_hash != dg.machine_xxh3)
        snprintf(v.reason, sizeof(v.reason), "machine state digest differs from the source's");
    for (unsigned i = 0; !v.reason[0] && i < in->vm->nr_vcpus; i++)
        if (vs_vstate_check_vcpu(&in->vm->vcpus[i], in->vcpu_blobs[i].data,
                                 in->vcpu_blobs[i].len))
            snprintf(v.reason, sizeof(v.reason), "%s", vs_last_error());
    if (!v.reason[0])
        vs_disk_recv_verdict(in->disks, v.reason, sizeof(v.reason));
    v.ok = v.reason[0] == '\0';
    in->stats->ram_digest = ram;
    in->stats->verify_ns = vs_clock_ns() - in->digest_start_ns;
    if (v.ok) {
        /* Verified, whether or not the source hears it: from here a lost stream leaves
         * the copy in doubt, not discarded. */
        in->phase = PHASE_VERIFIED;
        in->stats->status = "verified";
        vs_info("end-to-end check passed: RAM digest %016llx, %u vCPU(s), in %.1f ms",
                (unsigned long long)ram, in->vm->nr_vcpus, (double)in->stats->verify_ns / 1e6);
    }
    if ((rc = vs_wire_send(&in->w, VS_REC_VERIFY_REPLY, &v, sizeof(v))))
        return rc;
    if (!v.ok)
        return vs_fail(EIO, "end-to-end check failed: %s", v.reason);
    vs_fault_point("dst.verified", 0, in->ch);
    return in->pc ? VS_INCOMING_POSTCOPY : 0;
}

/* Verified in post-copy: the post-copy engine takes the streams and waits for COMMIT. */
static int hand_over(struct incoming *in)
{
    struct vs_postcopy_handover ho = { .nr_streams = in->rs.n, .w0_seq = in->w.seq,
                                       .claim = !in->legacy_commit };
    memcpy(ho.session, in->session->id, sizeof(ho.session));
    vs_recv_streams_totals(&in->rs, in->stats);
    in->stats->status = "verified";
    ho.stats = *in->stats;
    for (unsigned i = 0; i < in->rs.n; i++) {
        ho.ch[i] = in->rs.s[i].ch;
        ho.next_seq[i] = in->rs.s[i].r.next_seq;
        ho.offset[i] = in->rs.s[i].r.offset;
    }
    pthread_mutex_lock(&in->stop_lock);   /* on_stop must not touch them from here on */
    int rc = vs_postcopy_dest_start(in->pc, &ho);
    if (!rc) {
        /* Every stream is the post-copy engine's now, stream 0 too: it closes them when
         * the link is lost, which may be at once (a source that withdrew). */
        for (unsigned i = 0; i < in->rs.n; i++)
            in->rs.s[i].ch = NULL;
        in->ch = NULL;
    }
    pthread_mutex_unlock(&in->stop_lock);
    if (rc)
        return rc;
    *in->opts->postcopy = in->pc;
    in->pc = NULL;
    return 0;
}

static int on_abort(struct incoming *in, const struct vs_wire_header *h)
{
    char why[VS_WIRE_MAX_REASON + 1] = "";
    int rc = vs_wire_read_payload(in->r, h, why, VS_WIRE_MAX_REASON);
    if (rc)
        return rc;
    return vs_fail(ECANCELED, "the source aborted the migration: %s", why);
}

/* After COMMIT: CLAIM the VM and wait for the source's GRANT, so that a source that never
 * got the CLAIM knows the vCPUs never ran here. */
static int claim(struct incoming *in)
{
    in->claimed = true;   /* even if the send fails: part of it may have left */
    int rc = vs_wire_send(&in->w, VS_REC_CLAIM, NULL, 0);
    if (rc)
        return rc;
    vs_fault_point("dst.claimed", 0, in->ch);
    struct vs_wire_header g;
    if ((rc = vs_wire_read_header(in->r, &g)))
        return rc;
    if (g.type != VS_REC_GRANT)
        return unexpected(in, &g);
    if ((rc = vs_wire_read_payload(in->r, &g, NULL, 0)))
        return rc;
    vs_fault_point("dst.granted", 0, in->ch);
    return 0;
}

/* COMMIT: the source offers the VM. Claim it (not a 2.0/2.1 source: it resumes on COMMIT),
 * start the vCPUs, and tell the source when they run. */
static int on_commit(struct incoming *in, const struct vs_wire_header *h)
{
    int rc = vs_wire_read_payload(in->r, h, NULL, 0);
    if (rc)
        return rc;
    int sig = __atomic_load_n(&in->stopped, __ATOMIC_ACQUIRE);
    if (sig)   /* never claim a VM this process is about to stop: the source keeps it */
        return vs_fail(EINTR, "this receiver was stopped by %s", vs_stop_signal_name(sig));
    struct vs_wire_resumed res = { .commit_rx_ns = vs_clock_ns() };
    vs_fault_point("dst.commit", 0, in->ch);
    if (!in->legacy_commit && (rc = claim(in)))
        return rc;
    /* Logged before the guest can run: a log without this line proves it never ran here
     * (what an operator needs after this process died, docs/state-machine.md). */
    vs_info("the source %s the VM: starting its vCPUs here",
            in->legacy_commit ? "committed" : "granted");
    if ((rc = vs_vm_start(in->vm)))
        return rc;
    res.resume_ns = vs_clock_ns();
    in->stats->status = "completed";
    vs_report_note_resume(in->stats, res.resume_ns);
    vs_fault_point("dst.resumed", 0, in->ch);
    if (vs_wire_send(&in->w, VS_REC_RESUMED, &res, sizeof(res)))
        vs_warn("the VM runs here, but the source did not get RESUMED: %s", vs_last_error());
    return 0;
}

static int receive(struct incoming *in)
{
    for (;;) {
        struct vs_wire_header h;
        int rc = vs_wire_read_header(in->r, &h);
        if (rc)
            return rc;
        switch (h.type) {
        case VS_REC_PAGES:
        case VS_REC_ZERO_PAGES:
        case VS_REC_CPAGES:
            rc = in->phase == PHASE_PAGES ? vs_recv_page_record(&in->rs, 0, &h)
                                          : unexpected(in, &h);
            break;
        case VS_REC_PASS_END:
            rc = in->phase == PHASE_PAGES ? on_pass_end(in, &h) : unexpected(in, &h);
            break;
        case VS_REC_DISK_BLOCKS:   /* the reader lets them through only when agreed */
            rc = in->phase == PHASE_PAGES
                     ? vs_disk_recv_blocks(in->disks, in->r, &h, &in->stats->disk)
                     : unexpected(in, &h);
            break;
        case VS_REC_DISK_DIGEST:
            rc = in->phase == PHASE_STATE && in->next_vcpu == 0 && !in->pc
                     ? vs_disk_recv_digest(in->disks, in->r, &h, &in->stats->disk)
                     : unexpected(in, &h);
            break;
        case VS_REC_VCPU_STATE:
            rc = in->phase == PHASE_STATE && !in->machine_done ? on_vcpu_state(in, &h)
                                                                : unexpected(in, &h);
            break;
        case VS_REC_MACHINE_STATE:
            rc = in->phase == PHASE_STATE && in->next_vcpu == in->vm->nr_vcpus &&
                 !in->machine_done ? on_machine_state(in, &h) : unexpected(in, &h);
            break;
        case VS_REC_DIGEST:
        case VS_REC_POSTCOPY_DIGESTS:
            rc = in->phase == PHASE_STATE && in->machine_done &&
                 (h.type == VS_REC_DIGEST) == !in->pc ? on_digest(in, &h) : unexpected(in, &h);
            break;
        case VS_REC_POSTCOPY_START:
            rc = in->phase == PHASE_STATE && in->next_vcpu == 0 && !in->pc
                 ? on_postcopy_start(in, &h) : unexpected(in, &h);
            break;
        case VS_REC_COMMIT:
            if (in->phase != PHASE_VERIFIED)
                return unexpected(in, &h);
            return on_commit(in, &h);
        case VS_REC_ABORT:
            return on_abort(in, &h);
        default:
            rc = unexpected(in, &h);
            break;
        }
        if (rc)
            return rc;
    }
}

/* A stop signal (SIGTERM, SIGINT) during the migration: every stream stops reading, so
 * the migration fails with the signal as its reason, as if the source had gone away. */
static void on_stop(void *ctx, int sig)
{
    struct incoming *in = ctx;
    pthread_mutex_lock(&in->stop_lock);
    __atomic_store_n(&in->stopped, sig, __ATOMIC_RELEASE);
    vs_fail(EINTR, "this receiver was stopped by %s", vs_stop_signal_name(sig));
    if (in->rs_ready)
        vs_recv_streams_fail(&in->rs, VS_WIRE_MAX_STREAMS, -EINTR);
    vs_channel_shutdown_read(in->ch);   /* stream 0, whether or not rs has it yet */
    pthread_mutex_unlock(&in->stop_lock);
}

/* Stopped by a signal before it claimed the VM: the copy is discarded (and the source,
 * told by ABORT or by finding this process gone, resumes). After the claim the source
 * may have granted the VM: it is kept, in doubt, like any lost stream there. */
static bool keep_in_doubt(const struct incoming *in, int rc)
{
    if (rc == 0 || in->phase != PHASE_VERIFIED || rc == -ECANCELED || in->pc)
        return false;
    return !in->stopped || in->claimed;
}

int vs_incoming_run(struct vs_channel *ch, const struct vs_incoming_opts *opts,
                    struct vs_vm **vm_out, struct vs_migration_stats *stats,
                    struct vs_incoming_session *session)
{
    struct incoming in = { .opts = opts, .ch = ch, .stats = stats, .session = session };
    int result = 0;
    pthread_mutex_init(&in.stop_lock, NULL);
    struct vs_stop_hook *hook = NULL;
    if (vs_stop_hook_add(on_stop, &in, &hook))
        vs_warn("a stop signal will not interrupt this migration: %s", vs_last_error());
    memset(session, 0, sizeof(*session));
    snprintf(session->source, sizeof(session->source), "%s", ch->peer);
    in.cpu0_ns = vs_process_cpu_ns();
    memset(stats, 0, sizeof(*stats));
    stats->status = "setup";
    stats->start_ns = vs_clock_ns();
    snprintf(stats->peer, sizeof(stats->peer), "%s", ch->peer);
    stats->security = opts->security;
    snprintf(stats->tls_cipher, sizeof(stats->tls_cipher), "%s", vs_channel_cipher(ch, &stats->ktls));
    *vm_out = NULL;
    vs_wire_reader_init(&in.r0, ch);
    in.r = &in.r0;
    vs_channel_set_timeout(ch, opts->timeout_ms);
    in.state_buf = malloc(sizeof(struct vs_wire_vcpu_state) + VS_WIRE_MAX_STATE);
    in.vcpu_hash = XXH3_createState();
    int rc = vs_wire_writer_init(&in.w, ch);
    if (!rc && (!in.state_buf || !in.vcpu_hash))
        rc = vs_fail(ENOMEM, "out of memory for the incoming migration");
    if (!rc) {
        XXH3_64bits_reset(in.vcpu_hash);
        rc = vs_dest_handshake(&in);
    }
    if (!rc) {
        stats->status = "active";
        stats->setup_ns = vs_clock_ns() - stats->start_ns;
        in.pass_start_ns = vs_clock_ns();
        vs_recv_streams_totals(&in.rs, stats);
        in.pass_start_bytes = stats->transferred_bytes;
        if (!(rc = vs_recv_streams_start(&in.rs)))
            rc = receive(&in);
        if (rc == VS_INCOMING_POSTCOPY && !(rc = hand_over(&in)))
            result = VS_INCOMING_POSTCOPY;
        else if (rc && in.rs.failed) /* the first failure was on another stream: report it */
            rc = vs_fail(in.rs.err ? in.rs.err : -EIO, "%s", in.rs.error);
        else if (rc)
            vs_recv_streams_fail(&in.rs, 0, rc);
    }
    vs_stop_hook_remove(hook);   /* from here nothing waits on the streams */
    if (rc && in.stopped && !in.claimed)
        rc = vs_fail(EINTR, "this receiver was stopped by %s during %s", vs_stop_signal_name(
                     in.stopped), !in.hello_read ? "the handshake" : in.phase == PHASE_VERIFIED
                     ? "the commit window, before it claimed the VM" : vs_dest_phase_name(in.phase));
    vs_digest_tracker_stop(in.digest);   /* its thread reads the VM's RAM */
    if (keep_in_doubt(&in, rc)) {
        /* Verified, then silence: the source may or may not have committed. Keep the VM
         * paused; never run it on a guess. */
        vs_log(VS_LOG_ERROR, "the source went away after verification (%s); the verified VM "
               "is kept paused here (in doubt) until the outcome is settled with the source "
               "(docs/state-machine.md, \"The commit window\")", vs_last_error());
        stats->status = "in-doubt";
        snprintf(stats->error, sizeof(stats->error), "%s", vs_last_error());
        in.vm->pause_requested = true;
        if (vs_vm_start(in.vm) == 0) {
            result = VS_INCOMING_IN_DOUBT;
            rc = 0;
        }
    }
    if (rc) {
        snprintf(stats->error, sizeof(stats->error), "%s", vs_last_error());
        stats->status = "failed";
        char why[VS_WIRE_MAX_REASON];
        snprintf(why, sizeof(why), "%.255s", stats->error);
        if (rc != -ECANCELED && rc != -EPERM)
            vs_wire_send(&in.w, VS_REC_ABORT, why, (uint32_t)strlen(why) + 1);
        vs_recv_streams_destroy(&in.rs);   /* its threads write the VM's RAM */
        vs_postcopy_dest_free(in.pc);
        vs_digest_tracker_free(in.digest);
        in.digest = NULL;
        vs_vm_destroy(in.vm);
        in.vm = NULL;
        vs_fail(rc, "%s", stats->error);
    }
    stats->total_ns = vs_clock_ns() - stats->start_ns;
    if (result != VS_INCOMING_POSTCOPY)   /* else hand_over counted them */
        vs_recv_streams_totals(&in.rs, stats);
    vs_report_note_total(stats);
    vs_recv_streams_destroy(&in.rs);
    vs_digest_tracker_free(in.digest);
    uint64_t cpu = vs_process_cpu_ns() - (in.vm ? vs_vm_vcpu_cpu_ns(in.vm) : 0);
    stats->cpu_ns = cpu > in.cpu0_ns ? cpu - in.cpu0_ns : 0;
    vs_disk_recv_free(in.disks);   /* a failed copy's file stays as it is */
    free(in.state_buf);
    for (unsigned i = 0; i < VS_MAX_VCPUS; i++)
        vs_blob_free(&in.vcpu_blobs[i]);
    XXH3_freeState(in.vcpu_hash);
    vs_wire_writer_destroy(&in.w);
    pthread_mutex_destroy(&in.stop_lock);
    *vm_out = in.vm;
    if (rc && !in.hello_read)
        return VS_INCOMING_NOT_A_SOURCE;    /* vs_last_error() says why */
    return rc ? rc : result;
}
