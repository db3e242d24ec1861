/* The incoming side's handshake: HELLO, admission, the skeleton VM, the extra streams. */
#include "migrate/precopy/dest_internal.h"
#include "migrate/commit/boot_id.h"
#include "migrate/postcopy/uffd.h"
#include "migrate/precopy/handshake.h"
#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/size.h"
#include "vmm/cpu_model.h"

#include <stdio.h>
#include <string.h>

static int refuse(struct incoming *in, const char *reason)
{
    struct vs_wire_hello_reply reply = { .accepted = 0 };
    snprintf(reply.reason, sizeof(reply.reason), "%s", reason);
    vs_wire_send(&in->w, VS_REC_HELLO_REPLY, &reply, sizeof(reply));
    return vs_fail(EPERM, "refused the incoming VM: %s", reason);
}

/* Streams 1.. of this migration: connections that start with STREAM_HELLO naming the
 * session of HELLO. Strangers are dropped; at most twice as many connections as streams
 * are looked at, and each must send its STREAM_HELLO within the handshake timeout. */
static int accept_streams(struct incoming *in, const struct vs_wire_hello *hello)
{
    unsigned have = 1, tries = 0;
    while (have < hello->nr_streams) {
        if (!in->opts->accept_stream)
            return vs_fail(EPROTONOSUPPORT, "the source wants %u streams but this receiver "
                           "takes only one", hello->nr_streams);
        if (++tries > 2 * hello->nr_streams)
            return vs_fail(EPROTO, "only %u of %u streams arrived among %u connections",
                           have, hello->nr_streams, tries - 1);
        struct vs_channel *ch;
        int rc = in->opts->accept_stream(in->opts->accept_ctx, hello->nr_streams - have,
                                         in->opts->timeout_ms, &ch);
        if (rc < 0)
            return vs_fail_context(rc, "waiting for stream %u of %u", have, hello->nr_streams);
        if (rc > 0)
            continue;           /* refused (and logged) before it could be a stream */
        vs_channel_set_timeout(ch, in->opts->timeout_ms);
        vs_channel_set_deadline(ch, in->opts->handshake_timeout_ms, "its STREAM_HELLO");
        struct vs_wire_reader r;
        struct vs_wire_header h;
        struct vs_wire_stream_hello sh;
        vs_wire_reader_init(&r, ch);
        rc = vs_wire_read_header(&r, &h);
        if (!rc)
            rc = vs_wire_read_fixed(&r, &h, VS_REC_STREAM_HELLO, &sh, sizeof(sh));
        if (!rc)
            rc = vs_wire_check_stream_hello(&sh, hello);
        if (!rc && in->rs.s[sh.index].ch)
            rc = vs_fail(EPROTO, "stream %u arrived twice", sh.index);
        if (!rc)
            rc = vs_channel_set_deadline(ch, 0, NULL);
        if (rc) {
            vs_warn("dropped a connection from %s: %s", ch->peer, vs_last_error());
            vs_channel_close(ch);
            continue;
        }
        pthread_mutex_lock(&in->stop_lock);
        vs_recv_streams_set_channel(&in->rs, sh.index, ch);
        pthread_mutex_unlock(&in->stop_lock);
        in->rs.s[sh.index].r.next_seq = r.next_seq;
        in->rs.s[sh.index].r.offset = r.offset;
        have++;
    }
    return 0;
}

/* Whether this host has the free memory for a VM of hello's size (--max-mem and
 * --max-vcpus are checked with the rest of HELLO, vs_handshake_admit). Fills why when
 * not. */
static bool fits_here(const struct vs_wire_hello *hello, char *why, size_t len)
{
    char a[32], b[32];
    uint64_t avail = vs_host_available_memory();
    if (!avail || hello->ram_size <= avail)
        return true;
    snprintf(why, len, "its RAM (%s) is more than this host has free (%s)",
             vs_format_size(hello->ram_size, a, sizeof(a)), vs_format_size(avail, b, sizeof(b)));
    return false;
}

int vs_dest_handshake(struct incoming *in)
{
    struct vs_wire_hello hello;
    vs_channel_set_deadline(in->ch, in->opts->handshake_timeout_ms, "its HELLO");
    int len = vs_handshake_read_hello(in->r, &hello);
    int rc = len < 0 ? len : vs_channel_set_deadline(in->ch, 0, NULL);
    if (rc)
        return rc;
    in->hello_read = true;
    if (vs_handshake_admit(&hello, (uint32_t)len, in->opts->max_mem, in->opts->max_vcpus))
        return refuse(in, vs_last_error());
    char a[32];
    vs_info("incoming VM: %s RAM, %u vCPU(s), %s machine, stream version %u.%u",
            vs_format_size(hello.ram_size, a, sizeof(a)), hello.nr_vcpus,
            hello.version_minor < 3 || hello.machine == VS_WIRE_MACHINE_FLAT ? "flat" : "pc",
            hello.version_major, hello.version_minor);
    char why[160];
    if (!fits_here(&hello, why, sizeof(why)))
        return refuse(in, why);
    struct vs_cpu_features host_cpu;
    if (vs_cpu_host_features(in->opts->kvm_device, &host_cpu) ||
        vs_handshake_check_cpu(&hello, &host_cpu))
        return refuse(in, vs_last_error());
    in->stats->ram_total_bytes = hello.ram_size;
    in->stats->vcpus = hello.nr_vcpus;
    in->stats->nr_streams = hello.nr_streams;
    memcpy(in->session->id, hello.session, sizeof(hello.session));
    in->legacy_commit = hello.version_minor < 2;
    in->legacy_machine = hello.version_minor < 3;
    in->session->resolve_port = hello.resolve_port;
    _Static_assert(VS_WIRE_MACHINE_PC == VS_MACHINE_PC &&
                   VS_WIRE_MACHINE_FLAT == VS_MACHINE_FLAT, "HELLO machine is enum vs_machine");
    struct vs_device_list sent = { 0 }, devices;
    if ((hello.features & VS_FEATURE_DEVICES) && vs_handshake_read_vm_config(in->r, &sent))
        return refuse(in, vs_last_error());
    if (vs_device_list_for_destination(&sent, in->opts->local_devices, &devices))
        return refuse(in, vs_last_error());
    struct vs_vm_config cfg = {
        .devices = &devices,
        .machine = in->legacy_machine ? VS_MACHINE_FLAT : (enum vs_machine)hello.machine,
        .kvm_device = in->opts->kvm_device,
        .mem_size = hello.ram_size,
        .ram_backing = in->opts->tuning.ram_backing,
        .nr_vcpus = hello.nr_vcpus,
        .serial = in->opts->serial,
        .cmdline = "",
        .incoming = true,
    };
    if (vs_vm_create(&in->vm, &cfg))
        return refuse(in, vs_last_error());
    if (hello.version_minor >= 4)   /* what the guest was given: a later HELLO sends it on */
        vs_cpu_features_store(in->vm->kvm.cpuid, hello.cpu_features);
    if ((hello.features & VS_FEATURE_DISKS) &&
        vs_disk_recv_new(&in->disks, in->vm, hello.disks_copied,
                         in->opts->local_devices && in->opts->local_devices->nr))
        return refuse(in, vs_last_error());
    pthread_mutex_lock(&in->stop_lock);
    int err = vs_recv_streams_init(&in->rs, in->vm, hello.nr_streams, hello.codecs);
    in->rs_ready = err == 0;
    pthread_mutex_unlock(&in->stop_lock);
    if (err)
        return refuse(in, vs_last_error());
    if (vs_digest_tracker_new(&in->digest, &in->vm->mem) ||
        vs_digest_tracker_start(in->digest, 20))
        return refuse(in, vs_last_error());
    in->rs.digest = in->digest;
    vs_recv_streams_set_channel(&in->rs, 0, in->ch);
    /* Stream 0 is read through the streams' reader from now on. */
    in->rs.s[0].r.next_seq = in->r0.next_seq;
    in->rs.s[0].r.offset = in->r0.offset;
    in->r = &in->rs.s[0].r;
    if (accept_streams(in, &hello))
        return refuse(in, vs_last_error());
    vs_recv_streams_tune(&in->rs, &in->opts->tuning);
    in->stats->ram_pages = in->rs.ram_pages;
    bool postcopy = (hello.features & VS_FEATURE_POSTCOPY) && in->opts->postcopy &&
                    vs_uffd_available();
    for (unsigned i = 0; i < hello.nr_streams; i++)
        in->rs.s[i].r.postcopy = postcopy;
    in->rs.s[0].r.disks = in->disks != NULL;   /* disk records come on stream 0 only */
    struct vs_wire_hello_reply reply = { .accepted = 1, .codecs = hello.codecs,
                                         .features = (postcopy ? VS_FEATURE_POSTCOPY : 0) |
                                                     (in->disks ? VS_FEATURE_DISKS : 0) };
    vs_boot_id(reply.boot_id);
    in->same_clock = memcmp(hello.boot_id, reply.boot_id, sizeof(reply.boot_id)) == 0;
    in->stats->downtime_exact = in->same_clock;
    vs_fault_point("dst.hello", 0, in->ch);
    return vs_wire_send(&in->w, VS_REC_HELLO_REPLY, &reply, sizeof(reply));
}

