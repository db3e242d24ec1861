#include "migrate/precopy/handshake.h"
#include "codec/codec.h"
#include "common/error.h"
#include "common/size.h"
#include "vmm/cpu_model.h"
#include "vmm/device_list.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vs_handshake_read_hello(struct vs_wire_reader *r, struct vs_wire_hello *hello)
{
    struct vs_wire_header h;
    memset(hello, 0, sizeof(*hello));
    int rc = vs_wire_read_header(r, &h);
    if (!rc && h.type != VS_REC_HELLO)
        rc = vs_fail(EPROTO, "migration stream: the first record is %s, not HELLO: is the "
                     "peer a vmshift source?", vs_wire_type_name(h.type));
    if (!rc)
        rc = vs_wire_read_payload(r, &h, hello, sizeof(*hello));
    return rc ? rc : (int)h.length;
}

int vs_handshake_read_vm_config(struct vs_wire_reader *r, struct vs_device_list *out)
{
    struct vs_wire_header h;
    uint8_t buf[VS_WIRE_MAX_VM_CONFIG];
    int rc = vs_wire_read_header(r, &h);
    if (!rc && h.type != VS_REC_VM_CONFIG)
        rc = vs_fail(EPROTO, "migration stream: HELLO announced the VM's devices, but the "
                     "next record is %s, not VM_CONFIG", vs_wire_type_name(h.type));
    if (!rc)
        rc = vs_wire_read_payload(r, &h, buf, sizeof(buf));
    return rc ? rc : vs_device_list_decode(buf, h.length, out);
}

static int refusal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int refusal(const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return vs_fail(EPERM, "%s", why);
}

int vs_handshake_admit(const struct vs_wire_hello *hello, uint32_t length, uint64_t max_mem,
                       unsigned max_vcpus)
{
    if (vs_wire_check_hello(hello))
        return vs_fail(EPERM, "%s", vs_last_error());
    uint32_t want = hello->version_minor < 2   ? VS_WIRE_HELLO_OLD_SIZE
                    : hello->version_minor < 4 ? VS_WIRE_HELLO_V22_SIZE
                                               : (uint32_t)sizeof(struct vs_wire_hello);
    if (length != want)
        return refusal("HELLO of version %u.%u is %u bytes long, expected %u",
                       hello->version_major, hello->version_minor, length, want);
    char a[32], b[32];
    if (max_mem && hello->ram_size > max_mem)
        return refusal("its RAM (%s) exceeds this host's --max-mem %s",
                       vs_format_size(hello->ram_size, a, sizeof(a)),
                       vs_format_size(max_mem, b, sizeof(b)));
    if (max_vcpus && hello->nr_vcpus > max_vcpus)
        return refusal("its %u vCPUs exceed this host's --max-vcpus %u", hello->nr_vcpus,
                       max_vcpus);
    uint32_t unknown = hello->codecs & ~vs_codec_supported_mask();
    if (unknown)
        return refusal("this vmshift cannot decompress codec mask 0x%x; migrate with "
                       "--compress none or upgrade the destination", unknown);
    return 0;
}

int vs_handshake_read_reply(struct vs_wire_reader *r, const struct vs_wire_hello *sent,
                            const char *to, const char *compress, bool *same_boot,
                            uint32_t *features)
{
    struct vs_wire_header hdr;
    struct vs_wire_hello_reply reply;
    int rc = vs_wire_read_header(r, &hdr);
    if (rc)
        return rc;
    if (hdr.type == VS_REC_ABORT) {
        char why[VS_WIRE_MAX_REASON + 1] = "";
        if ((rc = vs_wire_read_payload(r, &hdr, why, VS_WIRE_MAX_REASON)))
            return rc;
        return vs_fail(ECONNREFUSED, "the destination aborted: %s", why);
    }
    if ((rc = vs_wire_read_fixed(r, &hdr, VS_REC_HELLO_REPLY, &reply, sizeof(reply))) ||
        (rc = vs_wire_check_reason(reply.reason, sizeof(reply.reason))))
        return rc;
    if (!reply.accepted)
        return vs_fail(ECONNREFUSED, "the destination %s refused the VM: %s", to,
                       reply.reason);
    if (reply.codecs != sent->codecs)
        return vs_fail(EPROTONOSUPPORT, "the destination %s cannot decode --compress %s "
                       "(it offers codec mask 0x%x); use --compress none", to, compress,
                       reply.codecs);
    *same_boot = memcmp(reply.boot_id, sent->boot_id, sizeof(sent->boot_id)) == 0;
    *features = reply.features & sent->features;
    return 0;
}

int vs_handshake_check_cpu(const struct vs_wire_hello *hello,
                           const struct vs_cpu_features *host)
{
    if (hello->version_minor < 4)
        return 0;   /* a 2.0-2.3 source says nothing: its CPUID section is loaded as is */
    struct vs_cpu_features guest;
    memcpy(guest.w, hello->cpu_features, sizeof(guest.w));
    return vs_cpu_check_destination(&guest, host);
}
