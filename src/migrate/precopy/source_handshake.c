/* The source's side of setting up a migration: connect and secure stream 0, HELLO, then
 * connect and secure the other streams (their TLS handshakes in parallel), STREAM_HELLO on
 * each, and the destination's answer. See docs/stream-format.md (Security, Streams). */
#include "migrate/precopy/source_internal.h"
#include "migrate/commit/boot_id.h"
#include "migrate/precopy/handshake.h"
#include "common/blob.h"
#include "common/error.h"
#include "vmm/cpu_model.h"
#include "common/fault.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Connect streams [first, first + n) and secure them (their TLS handshakes in parallel). */
static int connect_streams(struct vs_migration *m, unsigned first, unsigned n)
{
    struct vs_channel *chs[VS_WIRE_MAX_STREAMS];
    struct vs_tls_result res[VS_WIRE_MAX_STREAMS];
    int rc = 0;
    for (unsigned i = 0; i < n && !rc; i++) {
        rc = vs_dialer_connect(&m->dialer, m->opts.to, m->opts.timeout_ms, &chs[i]);
        if (rc)
            return first + i ? vs_fail_context(rc, "opening stream %u of %u", first + i,
                                               m->nr_streams) : rc;
        /* Visible to cancel (which shuts channels down) from now on. */
        pthread_mutex_lock(&m->lock);
        m->streams[first + i].ch = chs[i];
        pthread_mutex_unlock(&m->lock);
        rc = vs_source_check_cancel(m);
    }
    if (rc)
        return rc;
    vs_dialer_secure(&m->dialer, chs, n, m->opts.timeout_ms, res);
    pthread_mutex_lock(&m->lock);
    for (unsigned i = 0; i < n; i++)
        m->streams[first + i].ch = chs[i];
    m->ch = m->streams[0].ch;
    pthread_mutex_unlock(&m->lock);
    for (unsigned i = 0; i < n && !rc; i++) {
        if (res[i].err)
            rc = vs_fail(res[i].err, "%s", res[i].error);
        else if (!(rc = vs_channel_set_timeout(chs[i], m->opts.timeout_ms)))
            rc = vs_source_check_cancel(m);
    }
    return rc;
}

static uint32_t wanted_codecs(const struct vs_migration_opts *o)
{
    if (o->compress == VS_COMPRESS_AUTO)
        return 1u << VS_CODEC_ZSTD;
    return o->compress == VS_CODEC_NONE ? 0 : 1u << o->compress;
}

/* The VM's NICs and disks, right after HELLO (when it has any), so that the destination
 * builds the same devices before anything else arrives. */
static int send_vm_config(struct vs_migration *m)
{
    if (!m->vm->device_list.nr)
        return 0;
    struct vs_blob b = { 0 };
    int rc = vs_device_list_encode(&m->vm->device_list, &b);
    if (!rc)
        rc = vs_wire_send(m->w, VS_REC_VM_CONFIG, b.data, b.len);
    vs_blob_free(&b);
    return rc;
}

/* Stream 0 first: the destination takes its first connection as stream 0, reads HELLO
 * on it, and only then accepts (and secures) the other streams. */
static int send_hello(struct vs_migration *m, struct vs_wire_hello *h)
{
    struct vs_vm *vm = m->vm;
    int rc = connect_streams(m, 0, 1);
    if (rc)
        return rc;
    vs_wire_reader_init(&m->r, m->ch);
    if ((rc = vs_wire_writer_init(&m->streams[0].w, m->ch)))
        return rc;
    m->w = &m->streams[0].w;
    *h = (struct vs_wire_hello){
        .version_major = VS_WIRE_VERSION_MAJOR,
        .version_minor = VS_WIRE_VERSION_MINOR,
        .page_size = VS_WIRE_PAGE_SIZE,
        .ram_size = vm->mem.size,
        .nr_vcpus = vm->nr_vcpus,
        .nr_streams = m->nr_streams,
        .codecs = wanted_codecs(&m->opts),
        .features = VS_FEATURE_POSTCOPY,   /* used only if the migration switches to it */
        .machine = (uint16_t)vm->machine,
    };
    struct vs_cpu_features cpu;   /* the table every vCPU was given (or loaded, incoming) */
    vs_cpu_features_of(vm->kvm.cpuid, &cpu);
    _Static_assert(sizeof(cpu.w) == sizeof(h->cpu_features), "HELLO cpu_features");
    memcpy(h->cpu_features, cpu.w, sizeof(cpu.w));
    vs_boot_id(h->boot_id);
    if (getrandom(h->session, sizeof(h->session), 0) != (ssize_t)sizeof(h->session))
        return vs_fail(errno, "cannot draw a random migration session id: %s", strerror(errno));
    memcpy(m->session, h->session, sizeof(m->session));
    if ((rc = vs_source_resolve_listen(m, &h->resolve_port)))
        return rc;
    pthread_mutex_lock(&m->lock);
    snprintf(m->stats.tls_cipher, sizeof(m->stats.tls_cipher), "%s",
             vs_channel_cipher(m->ch, &m->stats.ktls));
    pthread_mutex_unlock(&m->lock);
    if (vm->device_list.nr)
        h->features |= VS_FEATURE_DEVICES;
    if (m->disks_mask) {
        h->features |= VS_FEATURE_DISKS;
        h->disks_copied = m->disks_mask;
    }
    rc = vs_wire_send(m->w, VS_REC_HELLO, h, sizeof(*h));
    return rc ? rc : send_vm_config(m);
}

/* The destination's answer to HELLO on stream 0: HELLO_REPLY or ABORT. */
static int read_reply(struct vs_migration *m, const struct vs_wire_hello *h)
{
    bool same_boot = false;
    uint32_t features = 0;
    int rc = vs_handshake_read_reply(&m->r, h, m->opts.to, m->stats.compress, &same_boot,
                                     &features);
    if (rc)
        return rc;
    if (m->disks_mask && !(features & VS_FEATURE_DISKS))
        return vs_fail(EPROTONOSUPPORT, "the destination %s does not take disks copied with "
                       "the VM (--with-disks): upgrade it", m->opts.to);
    m->post.agreed = features & VS_FEATURE_POSTCOPY;
    m->r.postcopy = m->post.agreed;   /* PAGE_REQUEST may come back */
    pthread_mutex_lock(&m->lock);
    m->stats.downtime_exact = same_boot;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* The other streams could not be opened: the destination may have refused the VM right
 * after HELLO (and stopped listening). Its reason, if it gave one, beats ours. */
static int extra_streams_failed(struct vs_migration *m, const struct vs_wire_hello *h, int rc)
{
    char ours[512];
    snprintf(ours, sizeof(ours), "%s", vs_last_error());
    vs_channel_set_timeout(m->ch, 1000);
    int why = read_reply(m, h);
    if (why == -ECONNREFUSED)
        return why;
    return vs_fail(rc, "%s", ours);
}

int vs_source_handshake(struct vs_migration *m)
{
    struct vs_wire_hello h;
    int rc = send_hello(m, &h);
    if (rc)
        return rc;
    if (m->nr_streams > 1 && (rc = connect_streams(m, 1, m->nr_streams - 1)))
        return extra_streams_failed(m, &h, rc);
    rc = vs_send_streams_init(m);
    for (unsigned i = 1; i < m->nr_streams && !rc; i++) {
        struct vs_wire_stream_hello sh = { .index = i, .nr_streams = m->nr_streams };
        memcpy(sh.session, h.session, sizeof(sh.session));
        rc = vs_wire_send(&m->streams[i].w, VS_REC_STREAM_HELLO, &sh, sizeof(sh));
    }
    vs_fault_point("src.handshake", 0, m->ch);
    return rc ? rc : read_reply(m, &h);
}
