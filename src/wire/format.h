/* The vmshift migration stream, version 2 (documented in docs/stream-format.md).
 *
 * A migration runs over 1..VS_WIRE_MAX_STREAMS channels ("streams"). Stream 0 carries the
 * handshake, the state and the verdict as well as pages; streams 1.. carry only pages and
 * pass ends. On each stream, a sequence of records in both directions: every record is a
 * 32-byte header and a payload; all integers are little-endian. Each direction of each
 * stream numbers its records from 0 (seq), so a lost, repeated or reordered record is
 * detected. */
#ifndef VS_WIRE_FORMAT_H
#define VS_WIRE_FORMAT_H

#include <stdint.h>

#define VS_WIRE_MAGIC          0x31525356u   /* "VSR1" */
#define VS_WIRE_VERSION_MAJOR  2
#define VS_WIRE_VERSION_MINOR  6         /* 2.1: post-copy records 15..20; 2.2: settling
                                               the commit window (RESOLVE, CLAIM, GRANT,
                                               HELLO resolve_port); 2.3: the device
                                               platform (HELLO machine, MACHINE_STATE as
                                               device-state sections, vCPU LAPIC and
                                               TSC_KHZ sections); 2.4: HELLO
                                               cpu_features (CPU models); 2.5: VM_CONFIG
                                               (NICs, disks); 2.6: disks copied
                                               with the VM (DISK_BLOCKS, DISK_DIGEST) */
#define VS_WIRE_PAGE_SIZE      4096u
#define VS_WIRE_MAX_PAGES      1024u         /* pages in one PAGES or ZERO_PAGES record */
#define VS_WIRE_MAX_STATE      (1u << 20)    /* bytes of one VCPU_STATE or MACHINE_STATE */
#define VS_WIRE_MAX_REASON     256           /* bytes of a reason string, NUL included */
#define VS_WIRE_MAX_STREAMS    16            /* channels of one migration */
#define VS_WIRE_SESSION_LEN    16            /* random id tying extra streams to stream 0 */
#define VS_WIRE_MAX_RAM        (64ULL << 30) /* largest ram_size the post-copy bitmaps cover */
#define VS_WIRE_BLOCK_SIZE     (2ULL << 20)  /* RAM block of the post-copy block digests */
/* Bytes of a page bitmap of a RAM size: one bit per page, whole u64 words. */
#define VS_WIRE_BITMAP_BYTES(ram) ((((ram) / VS_WIRE_PAGE_SIZE + 63) / 64) * 8)

enum vs_wire_type {
    VS_REC_HELLO = 1,          /* src->dst  struct vs_wire_hello */
    VS_REC_HELLO_REPLY = 2,    /* dst->src  struct vs_wire_hello_reply */
    VS_REC_PAGES = 3,          /* src->dst  struct vs_wire_pages, gpa[count], count pages */
    VS_REC_ZERO_PAGES = 4,     /* src->dst  struct vs_wire_pages, gpa[count] (all-zero pages) */
    VS_REC_PASS_END = 5,       /* src->dst  struct vs_wire_pass_end */
    VS_REC_VCPU_STATE = 6,     /* src->dst  struct vs_wire_vcpu_state, blob */
    VS_REC_MACHINE_STATE = 7,  /* src->dst  blob (VM clock, devices): 2.3 device-state
                                            sections (docs/device-state.md); before 2.3
                                            tagged sections CLOCK, PVPORT, SERIAL */
    VS_REC_DIGEST = 8,         /* src->dst  struct vs_wire_digest */
    VS_REC_VERIFY_REPLY = 9,   /* dst->src  struct vs_wire_verdict */
    VS_REC_COMMIT = 10,        /* src->dst  empty: the source has committed */
    VS_REC_RESUMED = 11,       /* dst->src  struct vs_wire_resumed */
    VS_REC_ABORT = 12,         /* either    NUL-terminated reason (<= VS_WIRE_MAX_REASON) */
    VS_REC_STREAM_HELLO = 13,  /* src->dst  struct vs_wire_stream_hello: first record of
                                            streams 1.. */
    VS_REC_CPAGES = 14,        /* src->dst  struct vs_wire_cpages, gpa[count], compressed
                                            data of the count pages */
    /* Post-copy (version 2.1), only after HELLO_REPLY agreed VS_FEATURE_POSTCOPY: */
    VS_REC_POSTCOPY_START = 15,    /* src->dst  struct vs_wire_postcopy_start, missing-page
                                                bitmap (stream 0) */
    VS_REC_POSTCOPY_DIGESTS = 16,  /* src->dst  struct vs_wire_postcopy_digests, u64 block
                                                digest[nblocks] (stream 0) */
    VS_REC_POSTCOPY_PAGES = 17,    /* src->dst  struct vs_wire_postcopy_pages, gpa[count],
                                                (count - zero) pages of data */
    VS_REC_PAGE_REQUEST = 18,      /* dst->src  struct vs_wire_page_request, gpa[count]
                                                (stream 0) */
    VS_REC_POSTCOPY_END = 19,      /* either    struct vs_wire_postcopy_end */
    VS_REC_POSTCOPY_RESUME = 20,   /* either    struct vs_wire_postcopy_resume (+ bitmap from
                                                the destination): first record of a
                                                reconnected stream 0 */
    /* Settling the commit window (version 2.2): */
    VS_REC_RESOLVE = 21,       /* either    struct vs_wire_resolve, on a fresh connection:
                                            settling the outcome of a migration whose
                                            stream 0 was lost in the commit window */
    VS_REC_CLAIM = 22,         /* dst->src  empty: after COMMIT, the destination asks to run
                                            the VM */
    VS_REC_GRANT = 23,         /* src->dst  empty: the source grants the claim (its point of
                                            no return); the destination resumes */
    /* The VM's devices (version 2.5), right after HELLO when HELLO has VS_FEATURE_DEVICES: */
    VS_REC_VM_CONFIG = 24,     /* src->dst  the device list (src/vmm/device_list.h) */
    /* Disks copied with the VM (version 2.6), only after HELLO_REPLY agreed VS_FEATURE_DISKS
     * (src/migrate/disk/disk_wire.h): */
    VS_REC_DISK_BLOCKS = 25,   /* src->dst  struct vs_wire_disk_blocks, block[count],
                                            (count - zero) blocks of data (stream 0) */
    VS_REC_DISK_DIGEST = 26,   /* src->dst  struct vs_wire_disk_digest (stream 0) */
    VS_REC_POSTCOPY_FIRST = 15,
    VS_REC_POSTCOPY_LAST = 20,
    VS_REC_TYPE_MAX = 26,
};

/* HELLO / HELLO_REPLY feature bits. */
#define VS_FEATURE_POSTCOPY    0x0001u  /* the destination can run the VM before every page
                                           arrived (userfaultfd) and take records 15..20 */
#define VS_FEATURE_DEVICES     0x0002u  /* (2.5) a VM_CONFIG record follows HELLO: the VM
                                           has NICs or disks the destination must build */
#define VS_FEATURE_DISKS       0x0004u  /* (2.6) HELLO disks_copied names disks whose blocks
                                           go with the RAM (DISK_BLOCKS, DISK_DIGEST); echoed
                                           in HELLO_REPLY by a destination that takes them */
#define VS_WIRE_KNOWN_FEATURES (VS_FEATURE_POSTCOPY | VS_FEATURE_DEVICES | VS_FEATURE_DISKS)
#define VS_WIRE_MAX_VM_CONFIG  (8u + 7u * (4u + 255u))  /* bytes of a VM_CONFIG payload */

/* Header flags. */
#define VS_WIRE_FLAG_META_SUM  0x0001u  /* PAGES only: payload_sum covers the page record
                                           header and the page list, not the page data
                                           (sent straight from guest RAM while the guest
                                           runs; the end-to-end digest covers it) */

struct vs_wire_header {        /* 32 bytes */
    uint32_t magic;            /* VS_WIRE_MAGIC */
    uint16_t type;             /* enum vs_wire_type */
    uint16_t flags;            /* VS_WIRE_FLAG_*; only those its type allows */
    uint32_t length;           /* payload bytes */
    uint32_t header_sum;       /* XXH32(header with header_sum = 0, seed 0) */
    uint64_t seq;              /* record number in this direction, from 0 */
    uint64_t payload_sum;      /* XXH3-64 of the payload (0 for an empty payload) */
};

struct vs_wire_hello {
    uint16_t version_major;    /* VS_WIRE_VERSION_MAJOR: must match */
    uint16_t version_minor;
    uint32_t page_size;        /* VS_WIRE_PAGE_SIZE */
    uint64_t ram_size;         /* bytes: RAM offsets [0, ram_size) (docs/stream-format.md) */
    uint32_t nr_vcpus;
    uint32_t features;         /* VS_FEATURE_* bits; none defined in version 2.0 */
    uint8_t boot_id[16];       /* source kernel boot id: equal ids share CLOCK_MONOTONIC */
    uint8_t session[VS_WIRE_SESSION_LEN];  /* random; repeated by every extra stream */
    uint32_t nr_streams;       /* 1..VS_WIRE_MAX_STREAMS; the source has already opened
                                  streams 1..nr_streams-1 when it sends HELLO */
    uint32_t codecs;           /* bit (1 << enum vs_codec) per codec CPAGES may use */
    /* Version 2.2 (a 2.0 or 2.1 HELLO ends here, 64 bytes): */
    uint16_t resolve_port;     /* TCP port on the source's address of stream 0 where it
                                  answers RESOLVE queries (0: none) */
    uint16_t machine;          /* 2.3: VS_WIRE_MACHINE_*, the hardware the VM has (0 in
                                  2.2, which meant no machine: always flat) */
    uint32_t reserved1;
    /* Version 2.4 (a 2.2 or 2.3 HELLO ends here, 72 bytes): */
    uint32_t cpu_features[6];  /* the CPUID feature words the guest was given (vCPU 0):
                                  enum vs_cpuid_word order (vmm/cpu_model.h): leaf 1 ECX,
                                  EDX, leaf 7 EBX, ECX, leaf 0x80000001 ECX, EDX. The
                                  destination refuses the VM if its KVM lacks one */
    uint32_t disks_copied;     /* 2.6, with VS_FEATURE_DISKS: bit i = the i-th disk of
                                  VM_CONFIG (disks only, in order) is copied with the VM;
                                  0 otherwise (reserved before 2.6) */
    uint32_t reserved2;
};
#define VS_WIRE_HELLO_OLD_SIZE 64u
#define VS_WIRE_HELLO_V22_SIZE 72u   /* HELLO of versions 2.2 and 2.3 */
/* HELLO machine (2.3; equal to enum vs_machine): the destination builds the same. */
#define VS_WIRE_MACHINE_PC     0u   /* irqchip, PIT, devices on the bus */
#define VS_WIRE_MACHINE_FLAT   1u   /* what every 2.0-2.2 source runs */
#define VS_WIRE_MACHINE_MAX    1u   /* HELLO of versions 2.0 and 2.1: no resolve_port */

/* States a side reports in RESOLVE (docs/state-machine.md, "The commit window"). */
enum vs_wire_outcome {
    VS_OUTCOME_SRC_UNDECIDED = 1,  /* the source has not decided yet: ask again */
    VS_OUTCOME_SRC_COMMITTED = 2,  /* verified: the destination may claim the VM (the
                                      source still resumes it if the destination is gone
                                      before claiming) */
    VS_OUTCOME_SRC_ABORTED = 3,    /* the source keeps the VM: discard your copy (the
                                      source resumes only once it knows you did) */
    VS_OUTCOME_DST_IN_DOUBT = 4,   /* verified, paused, waiting for the outcome */
    VS_OUTCOME_DST_RUNNING = 5,    /* the destination runs the VM */
    VS_OUTCOME_DST_DISCARDED = 6,  /* the destination's copy is gone for good */
    VS_OUTCOME_UNKNOWN = 7,        /* this process knows no such session */
    VS_OUTCOME_SRC_GRANTED = 8,    /* the VM is the destination's: run it */
    VS_OUTCOME_MAX = 8,
};

struct vs_wire_resolve {
    uint8_t session[VS_WIRE_SESSION_LEN];   /* HELLO's session */
    uint32_t state;            /* enum vs_wire_outcome: the sender's state */
    uint32_t reserved;
};

struct vs_wire_stream_hello {
    uint8_t session[VS_WIRE_SESSION_LEN];
    uint32_t index;            /* 1..nr_streams-1 */
    uint32_t nr_streams;
};

struct vs_wire_hello_reply {
    uint32_t accepted;         /* 1 = the destination built a skeleton VM and has every
                                  stream; 0 = refused */
    uint32_t features;         /* features both sides will use */
    uint32_t codecs;           /* the codecs of HELLO that this destination can decode */
    uint32_t reserved;
    uint8_t boot_id[16];
    char reason[VS_WIRE_MAX_REASON];   /* why it refused (NUL-terminated) */
};

struct vs_wire_pages {         /* followed by uint64_t gpa[count] and, for PAGES, the data */
    uint32_t count;            /* 1..VS_WIRE_MAX_PAGES */
    uint32_t pass;             /* pre-copy pass this belongs to */
};

struct vs_wire_cpages {         /* followed by uint64_t gpa[count], then the compressed
                                  image of the count pages in gpa order */
    uint32_t count;            /* 1..VS_WIRE_MAX_PAGES */
    uint32_t pass;
    uint32_t codec;            /* enum vs_codec (src/codec/codec.h), never NONE */
    uint32_t reserved;
};

/* Sent on every stream at the end of each pass: all pages of the pass sent on this
 * stream precede it. The destination finishes a pass when every stream has ended it. */
struct vs_wire_pass_end {
    uint32_t pass;
    uint32_t final;            /* 1: the source is paused, this was the last pass */
    uint64_t pages_sent;       /* pages (data and zero) sent in this pass on this stream */
};

/* Disks copied with the VM (2.6; docs/stream-format.md, src/migrate/disk/disk_wire.h). */
#define VS_WIRE_DISK_BLOCK      (64u << 10)  /* bytes of one disk block */
#define VS_WIRE_MAX_DISK_BLOCKS 64u          /* blocks in one DISK_BLOCKS record */
#define VS_WIRE_MAX_DISKS       7u           /* a VM_CONFIG holds at most 7 devices */
struct vs_wire_disk_blocks {   /* 16 bytes, then u64 block[count], then the data of the
                                  first count - zero blocks (VS_WIRE_DISK_BLOCK each) */
    uint32_t disk;             /* index among the VM's disks (VM_CONFIG order), copied */
    uint32_t pass;
    uint32_t count;            /* 1..VS_WIRE_MAX_DISK_BLOCKS */
    uint32_t zero;             /* 0..count: the last `zero` blocks of the list are all zero */
};

struct vs_wire_disk_digest {   /* 32 bytes */
    uint32_t disk;
    uint32_t reserved;         /* 0 */
    uint64_t size;             /* bytes of the disk */
    uint64_t xxh3;             /* XXH3-64 over the XXH3-64 of each block, in block order */
    uint64_t blocks_sent;      /* DISK_BLOCKS entries sent for this disk */
};

struct vs_wire_vcpu_state {    /* followed by the state blob (see src/migrate/state/vstate.h) */
    uint32_t index;
    uint32_t reserved;
};

struct vs_wire_digest {
    uint64_t ram_xxh3;         /* XXH3-64 of the XXH3-64s of consecutive 2 MiB blocks of RAM
                                  (src/migrate/state/digest.h) */
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

/* POSTCOPY_START: the source is paused; these pages are not (or not in their last
 * version) at the destination. Followed by the bitmap: ceil(ram_pages / 64) u64 words,
 * bit p of word p / 64 = page p is missing; no bit at or beyond ram_pages. */
struct vs_wire_postcopy_start {
    uint64_t pause_ns;         /* source CLOCK_MONOTONIC when its vCPUs stopped */
    uint64_t missing_pages;    /* bits set in the bitmap */
    uint32_t pass;             /* the pass number of the final PASS_END that preceded it */
    uint32_t reserved;
};

/* POSTCOPY_DIGESTS: the check of what the destination already holds. Followed by one
 * XXH3-64 per 2 MiB block of RAM (src/migrate/state/digest.h); the destination compares the
 * blocks without a missing page (the others are covered page by page as they arrive). */
struct vs_wire_postcopy_digests {
    uint64_t vcpu_xxh3;        /* as in DIGEST */
    uint64_t machine_xxh3;
    uint64_t nblocks;          /* ceil(ram_size / 2 MiB) */
};

/* POSTCOPY_PAGES: pages the destination is missing, each sent exactly once. The first
 * count - zero entries of gpa[] carry 4096 bytes of data each, in list order; the last
 * `zero` entries are all-zero pages. The checksum always covers the whole payload (the
 * source is paused: the data cannot change while it is summed and sent). */
struct vs_wire_postcopy_pages {
    uint32_t count;            /* 1..VS_WIRE_MAX_PAGES */
    uint32_t zero;             /* 0..count */
    uint32_t urgent;           /* 1: the answer to a PAGE_REQUEST, 0: background */
    uint32_t reserved;
};

/* PAGE_REQUEST: a vCPU (or the monitor) touched these missing pages. */
struct vs_wire_page_request {
    uint32_t count;            /* 1..VS_WIRE_MAX_PAGES */
    uint32_t reserved;
};

/* POSTCOPY_END: src->dst on every stream once it has sent its last page (pages = pages
 * sent on this stream since the switch or the last resume); dst->src on stream 0 when
 * every page is present (pages = pages received in all, plus the fault statistics). */
struct vs_wire_postcopy_end {
    uint64_t pages;
    uint64_t faults;           /* dst->src: pages requested on demand */
    uint64_t fault_wait_ns;    /* dst->src: total time vCPUs waited for them */
    uint64_t fault_wait_max_ns;
};

/* POSTCOPY_RESUME: src->dst as the first record of a new stream 0 after the connection
 * was lost in post-copy (missing_pages 0, no bitmap; STREAM_HELLO with the same session on
 * the other streams); dst->src as the answer, followed by the bitmap of the pages still
 * missing (layout as in POSTCOPY_START). */
struct vs_wire_postcopy_resume {
    uint8_t session[VS_WIRE_SESSION_LEN];  /* HELLO's session */
    uint32_t nr_streams;       /* 1..VS_WIRE_MAX_STREAMS */
    uint32_t reserved;
    uint64_t missing_pages;    /* dst->src: bits set in the bitmap that follows */
};

/* Name of a record type for messages ("PAGES"), "unknown" if out of range. */
const char *vs_wire_type_name(unsigned type);

#endif
