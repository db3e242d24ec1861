/* The vmshift migration stream, version 1 (documented in docs/stream-format.md).
 *
 * A stream is a sequence of records in both directions over one channel. Every record is
 * a 32-byte header and a payload; all integers are little-endian. Each direction numbers
 * its records from 0 (seq), so a lost, repeated or reordered record is detected. */
#ifndef VS_WIRE_FORMAT_H
#define VS_WIRE_FORMAT_H

#include <stdint.h>

#define VS_WIRE_MAGIC          0x31525356u   /* "VSR1" */
#define VS_WIRE_VERSION_MAJOR  1
#define VS_WIRE_VERSION_MINOR  0
#define VS_WIRE_PAGE_SIZE      4096u
#define VS_WIRE_MAX_PAGES      1024u         /* pages in one PAGES or ZERO_PAGES record */
#define VS_WIRE_MAX_STATE      (1u << 20)    /* bytes of one VCPU_STATE or MACHINE_STATE */
#define VS_WIRE_MAX_REASON     256           /* bytes of a reason string, NUL included */

enum vs_wire_type {
    VS_REC_HELLO = 1,          /* src->dst  struct vs_wire_hello */
    VS_REC_HELLO_REPLY = 2,    /* dst->src  struct vs_wire_hello_reply */
    VS_REC_PAGES = 3,          /* src->dst  struct vs_wire_pages, gpa[count], count pages */
    VS_REC_ZERO_PAGES = 4,     /* src->dst  struct vs_wire_pages, gpa[count] (all-zero pages) */
    VS_REC_PASS_END = 5,       /* src->dst  struct vs_wire_pass_end */
    VS_REC_VCPU_STATE = 6,     /* src->dst  struct vs_wire_vcpu_state, blob */
    VS_REC_MACHINE_STATE = 7,  /* src->dst  blob (VM clock, devices) */
    VS_REC_DIGEST = 8,         /* src->dst  struct vs_wire_digest */
    VS_REC_VERIFY_REPLY = 9,   /* dst->src  struct vs_wire_verdict */
    VS_REC_COMMIT = 10,        /* src->dst  empty: the source has committed */
    VS_REC_RESUMED = 11,       /* dst->src  struct vs_wire_resumed */
    VS_REC_ABORT = 12,         /* either    NUL-terminated reason (<= VS_WIRE_MAX_REASON) */
    VS_REC_TYPE_MAX = 12,
};

struct vs_wire_header {        /* 32 bytes */
    uint32_t magic;            /* VS_WIRE_MAGIC */
    uint16_t type;             /* enum vs_wire_type */
    uint16_t flags;            /* 0 in version 1 */
    uint32_t length;           /* payload bytes */
    uint32_t header_sum;       /* XXH32(header with header_sum = 0, seed 0) */
    uint64_t seq;              /* record number in this direction, from 0 */
    uint64_t payload_sum;      /* XXH3-64 of the payload (0 for an empty payload) */
};

struct vs_wire_hello {
    uint16_t version_major;    /* VS_WIRE_VERSION_MAJOR: must match */
    uint16_t version_minor;
    uint32_t page_size;        /* VS_WIRE_PAGE_SIZE */
    uint64_t ram_size;         /* bytes, one region from guest-physical 0 */
    uint32_t nr_vcpus;
    uint32_t features;         /* VS_FEATURE_* bits; 0 in version 1.0 */
    uint8_t boot_id[16];       /* source kernel boot id: equal ids share CLOCK_MONOTONIC */
    uint64_t ram_digest_blocks;/* reserved, 0 */
};

struct vs_wire_hello_reply {
    uint32_t accepted;         /* 1 = the destination built a skeleton VM; 0 = refused */
    uint32_t features;         /* features both sides will use */
    uint8_t boot_id[16];
    char reason[VS_WIRE_MAX_REASON];   /* why it refused (NUL-terminated) */
};

struct vs_wire_pages {         /* followed by uint64_t gpa[count] and, for PAGES, the data */
    uint32_t count;            /* 1..VS_WIRE_MAX_PAGES */
    uint32_t pass;             /* pre-copy pass this belongs to */
};

struct vs_wire_pass_end {
    uint32_t pass;
    uint32_t final;            /* 1: the source is paused, this was the last pass */
    uint64_t pages_sent;       /* pages (data and zero) sent in this pass */
};

struct vs_wire_vcpu_state {    /* followed by the state blob (see src/migrate/vstate.h) */
    uint32_t index;
    uint32_t reserved;
};

struct vs_wire_digest {
    uint64_t ram_xxh3;         /* XXH3-64 of the XXH3-64s of consecutive 64 MiB blocks of RAM
                                  (src/migrate/digest.h) */
    uint64_t vcpu_xxh3;        /* XXH3-64 over the VCPU_STATE blobs in index order */
    uint64_t machine_xxh3;     /* XXH3-64 over the MACHINE_STATE blob */
    uint64_t pause_ns;         /* source CLOCK_MONOTONIC when its vCPUs stopped */
};

struct vs_wire_verdict {
    uint32_t ok;               /* 1: destination digests equal the source's */
    uint32_t reserved;
    char reason[VS_WIRE_MAX_REASON];
};

struct vs_wire_resumed {
    uint64_t commit_rx_ns;     /* destination CLOCK_MONOTONIC when COMMIT arrived */
    uint64_t resume_ns;        /* destination CLOCK_MONOTONIC when its vCPUs were released */
};

/* Name of a record type for messages ("PAGES"), "unknown" if out of range. */
const char *vs_wire_type_name(unsigned type);

#endif
