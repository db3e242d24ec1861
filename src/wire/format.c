/* Record type names and compile-time checks of the wire layout. */
#include "wire/format.h"

#include <stddef.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the stream is little-endian and is written straight from host structs");
_Static_assert(sizeof(struct vs_wire_header) == 32, "record header is 32 bytes");
_Static_assert(offsetof(struct vs_wire_header, seq) == 16, "header layout");
_Static_assert(offsetof(struct vs_wire_header, payload_sum) == 24, "header layout");
_Static_assert(offsetof(struct vs_wire_hello, resolve_port) == VS_WIRE_HELLO_OLD_SIZE,
               "HELLO 2.0/2.1 layout");
_Static_assert(offsetof(struct vs_wire_hello, cpu_features) == VS_WIRE_HELLO_V22_SIZE,
               "HELLO 2.2/2.3 layout");
_Static_assert(sizeof(struct vs_wire_hello) == 104, "HELLO layout");
_Static_assert(sizeof(struct vs_wire_resolve) == 24, "RESOLVE layout");
_Static_assert(sizeof(struct vs_wire_hello_reply) == 288, "HELLO_REPLY layout");
_Static_assert(sizeof(struct vs_wire_pages) == 8, "PAGES header layout");
_Static_assert(sizeof(struct vs_wire_stream_hello) == 24, "STREAM_HELLO layout");
_Static_assert(sizeof(struct vs_wire_cpages) == 16, "CPAGES header layout");
_Static_assert(sizeof(struct vs_wire_pass_end) == 16, "PASS_END layout");
_Static_assert(sizeof(struct vs_wire_vcpu_state) == 8, "VCPU_STATE header layout");
_Static_assert(sizeof(struct vs_wire_digest) == 32, "DIGEST layout");
_Static_assert(sizeof(struct vs_wire_verdict) == 264, "VERIFY_REPLY layout");
_Static_assert(sizeof(struct vs_wire_resumed) == 16, "RESUMED layout");
_Static_assert(sizeof(struct vs_wire_postcopy_start) == 24, "POSTCOPY_START layout");
_Static_assert(sizeof(struct vs_wire_postcopy_digests) == 24, "POSTCOPY_DIGESTS layout");
_Static_assert(sizeof(struct vs_wire_postcopy_pages) == 16, "POSTCOPY_PAGES layout");
_Static_assert(sizeof(struct vs_wire_page_request) == 8, "PAGE_REQUEST layout");
_Static_assert(sizeof(struct vs_wire_postcopy_end) == 32, "POSTCOPY_END layout");
_Static_assert(sizeof(struct vs_wire_postcopy_resume) == 32, "POSTCOPY_RESUME layout");

static const char *const type_names[VS_REC_TYPE_MAX + 1] = {
    [VS_REC_HELLO] = "HELLO",
    [VS_REC_HELLO_REPLY] = "HELLO_REPLY",
    [VS_REC_PAGES] = "PAGES",
    [VS_REC_ZERO_PAGES] = "ZERO_PAGES",
    [VS_REC_PASS_END] = "PASS_END",
    [VS_REC_VCPU_STATE] = "VCPU_STATE",
    [VS_REC_MACHINE_STATE] = "MACHINE_STATE",
    [VS_REC_DIGEST] = "DIGEST",
    [VS_REC_VERIFY_REPLY] = "VERIFY_REPLY",
    [VS_REC_COMMIT] = "COMMIT",
    [VS_REC_RESUMED] = "RESUMED",
    [VS_REC_ABORT] = "ABORT",
    [VS_REC_STREAM_HELLO] = "STREAM_HELLO",
    [VS_REC_CPAGES] = "CPAGES",
    [VS_REC_POSTCOPY_START] = "POSTCOPY_START",
    [VS_REC_POSTCOPY_DIGESTS] = "POSTCOPY_DIGESTS",
    [VS_REC_POSTCOPY_PAGES] = "POSTCOPY_PAGES",
    [VS_REC_PAGE_REQUEST] = "PAGE_REQUEST",
    [VS_REC_POSTCOPY_END] = "POSTCOPY_END",
    [VS_REC_POSTCOPY_RESUME] = "POSTCOPY_RESUME",
    [VS_REC_RESOLVE] = "RESOLVE",
    [VS_REC_CLAIM] = "CLAIM",
    [VS_REC_GRANT] = "GRANT",
    [VS_REC_VM_CONFIG] = "VM_CONFIG",
    [VS_REC_DISK_BLOCKS] = "DISK_BLOCKS",
    [VS_REC_DISK_DIGEST] = "DISK_DIGEST",
};

const char *vs_wire_type_name(unsigned type)
{
    if (type == 0 || type > VS_REC_TYPE_MAX || !type_names[type])
        return "unknown";
    return type_names[type];
}
