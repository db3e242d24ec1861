/* The field checks of the handshake and settling records (HELLO, STREAM_HELLO, RESOLVE,
 * reason strings): part of the one parser of migration input (reader.c reads the records,
 * these check what their fields say). */
#include "wire/reader.h"
#include "codec/codec.h"
#include "common/error.h"
#include "vmshift/guest_abi.h"

#include <string.h>

typedef unsigned long long ull;

int vs_wire_check_hello(const struct vs_wire_hello *h)
{
    if (h->version_major != VS_WIRE_VERSION_MAJOR)
        return vs_fail(EPROTONOSUPPORT, "migration stream: HELLO: stream version %u.%u is not "
                       "supported by this vmshift (speaks %d.x); %s", h->version_major,
                       h->version_minor, VS_WIRE_VERSION_MAJOR,
                       h->version_major > VS_WIRE_VERSION_MAJOR ? "upgrade the destination"
                                                                : "upgrade the source");
    if (h->page_size != VS_WIRE_PAGE_SIZE)
        return vs_fail(EPROTO, "migration stream: HELLO: page size %u is not supported "
                       "(only %u)", h->page_size, VS_WIRE_PAGE_SIZE);
    if (h->ram_size == 0 || h->ram_size % VS_WIRE_PAGE_SIZE)
        return vs_fail(EPROTO, "migration stream: HELLO: RAM size %llu is not a positive "
                       "multiple of %u", (ull)h->ram_size, VS_WIRE_PAGE_SIZE);
    if (h->nr_vcpus < 1 || h->nr_vcpus > VS_MAX_VCPUS)
        return vs_fail(EPROTO, "migration stream: HELLO: %u vCPUs is out of range 1..%d",
                       h->nr_vcpus, VS_MAX_VCPUS);
    if (h->features & ~VS_WIRE_KNOWN_FEATURES)
        return vs_fail(EPROTONOSUPPORT, "migration stream: HELLO: unknown feature bits 0x%x "
                       "(this vmshift knows 0x%x); upgrade the destination",
                       h->features & ~VS_WIRE_KNOWN_FEATURES, VS_WIRE_KNOWN_FEATURES);
    if (h->nr_streams < 1 || h->nr_streams > VS_WIRE_MAX_STREAMS)
        return vs_fail(EPROTO, "migration stream: HELLO: %u streams is out of range 1..%d",
                       h->nr_streams, VS_WIRE_MAX_STREAMS);
    if (h->version_minor >= 3 && h->machine > VS_WIRE_MACHINE_MAX)
        return vs_fail(EPROTONOSUPPORT, "migration stream: HELLO: machine %u is unknown to "
                       "this vmshift (0 pc, 1 flat); upgrade the destination", h->machine);
    if (h->codecs & ~((1u << VS_CODEC_COUNT) - 1))
        return vs_fail(EPROTONOSUPPORT, "migration stream: HELLO: unknown codec bits 0x%x; "
                       "upgrade the destination", h->codecs & ~((1u << VS_CODEC_COUNT) - 1));
    return 0;
}

int vs_wire_check_stream_hello(const struct vs_wire_stream_hello *sh,
                               const struct vs_wire_hello *h)
{
    if (memcmp(sh->session, h->session, sizeof(sh->session)) != 0)
        return vs_fail(EACCES, "migration stream: STREAM_HELLO names another migration "
                       "session; a connection from a different source?");
    if (sh->nr_streams != h->nr_streams || sh->index < 1 || sh->index >= h->nr_streams)
        return vs_fail(EPROTO, "migration stream: STREAM_HELLO: stream %u of %u does not fit "
                       "the %u streams of HELLO", sh->index, sh->nr_streams, h->nr_streams);
    return 0;
}

int vs_wire_check_resolve(const struct vs_wire_resolve *rs)
{
    if (rs->state < 1 || rs->state > VS_OUTCOME_MAX)
        return vs_fail(EPROTO, "migration stream: RESOLVE: state %u is out of range 1..%d",
                       rs->state, VS_OUTCOME_MAX);
    return 0;
}

int vs_wire_check_reason(const char *reason, size_t cap)
{
    if (!reason || cap == 0 || !memchr(reason, '\0', cap))
        return vs_fail(EPROTO, "migration stream: reason string is not NUL-terminated "
                       "within %zu bytes", cap);
    return 0;
}
