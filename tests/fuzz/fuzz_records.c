/* Fuzz target: the destination's record stream after the handshake, through the real
 * receiving code (src/migrate/precopy/recv_streams.c, src/wire/reader.c, src/codec) over memory
 * channels, with 8 MiB of guest RAM and no KVM. State blobs go through the validation
 * vstate.c runs before it touches KVM.
 *
 * Disk records (DISK_BLOCKS, DISK_DIGEST; --with-disks) go through the checks the
 * destination runs before it writes a disk (src/migrate/disk/disk_wire.c), against two
 * disks: disk 0 not copied, disk 1 of 1 MiB + 512 bytes (its last block is short).
 *
 * Input: byte 0 = FUZZ_* flags (fuzz_common.h), bit 3 = two streams; with two streams
 * bytes 1..2 say where stream 1's bytes begin. The rest is the stream(s) as received. */
#include "fuzz_common.h"
#include "migrate/disk/disk_wire.h"
#include "migrate/precopy/recv_streams.h"
#include "migrate/state/vstate.h"
#include "codec/codec.h"
#include "common/log.h"
#include "transport/memory_channel.h"
#include "wire/reader.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_TWO_STREAMS 8

static uint8_t state_buf[sizeof(struct vs_wire_vcpu_state) + VS_WIRE_MAX_STATE];
static uint8_t disk_buf[sizeof(struct vs_wire_disk_blocks) +
                        VS_WIRE_MAX_DISK_BLOCKS * (8 + VS_WIRE_DISK_BLOCK)];
static const uint64_t disk_size[2] = { 0, (1u << 20) + 512 };

/* What disk_recv.c checks before it writes anything. */
static int disk_record(struct vs_wire_reader *r, const struct vs_wire_header *h)
{
    if (h->type == VS_REC_DISK_DIGEST) {
        struct vs_wire_disk_digest d;
        int rc = vs_wire_read_fixed(r, h, VS_REC_DISK_DIGEST, &d, sizeof(d));
        return rc ? rc : vs_disk_digest_check(&d, disk_size, 2);
    }
    int rc = vs_wire_read_payload(r, h, disk_buf, sizeof(disk_buf));
    struct vs_disk_blocks_view v;
    if (rc || (rc = vs_disk_blocks_parse(disk_buf, h->length, disk_size, 2, &v)))
        return rc;
    uint64_t sum = 0;   /* touch what a write would read */
    for (uint32_t i = 0; i < v.head.count; i++)
        sum += vs_disk_block_len(disk_size[v.head.disk], v.block[i]);
    for (uint32_t i = 0; i < v.head.count - v.head.zero; i++)
        sum += v.data[(size_t)i * VS_WIRE_DISK_BLOCK + VS_WIRE_DISK_BLOCK - 1];
    return sum ? 0 : -1;
}

/* What dest.c's receive loop (and its claim) does with each record, minus KVM. */
static int receive(struct vs_recv_streams *rs)
{
    struct vs_wire_reader *r = &rs->s[0].r;
    bool final = false;
    for (;;) {
        struct vs_wire_header h;
        struct vs_wire_pass_end pe;
        struct vs_pass_stats totals;
        struct vs_wire_digest dg;
        char why[VS_WIRE_MAX_REASON + 1];
        int rc = vs_wire_read_header(r, &h);
        if (rc)
            return rc;
        switch (h.type) {
        case VS_REC_PAGES:
        case VS_REC_ZERO_PAGES:
        case VS_REC_CPAGES:
            rc = final ? -1 : vs_recv_page_record(rs, 0, &h);
            break;
        case VS_REC_PASS_END:
            rc = final ? -1 : vs_recv_pass_end(rs, 0, &h, &pe, &totals);
            final = !rc && pe.final;
            break;
        case VS_REC_VCPU_STATE:
            rc = vs_wire_read_payload(r, &h, state_buf, sizeof(state_buf));
            if (!rc)
                rc = vs_vstate_validate_vcpu(0, state_buf + sizeof(struct vs_wire_vcpu_state),
                                             h.length - sizeof(struct vs_wire_vcpu_state));
            break;
        case VS_REC_MACHINE_STATE:
            rc = vs_wire_read_payload(r, &h, state_buf, VS_WIRE_MAX_STATE);
            if (!rc)
                rc = vs_vstate_validate_machine(fuzz_machine_registry(1), false, state_buf,
                                                h.length);
            break;
        case VS_REC_DIGEST:
            rc = vs_wire_read_fixed(r, &h, VS_REC_DIGEST, &dg, sizeof(dg));
            break;
        case VS_REC_DISK_BLOCKS:
        case VS_REC_DISK_DIGEST:
            rc = final == (h.type == VS_REC_DISK_BLOCKS) ? -1 : disk_record(r, &h);
            break;
        case VS_REC_COMMIT:
        case VS_REC_GRANT:
            rc = vs_wire_read_payload(r, &h, NULL, 0);
            break;
        case VS_REC_ABORT:
            memset(why, 0, sizeof(why));
            rc = vs_wire_read_payload(r, &h, why, VS_WIRE_MAX_REASON);
            break;
        default:
            return -1;   /* dest.c refuses every other record here */
        }
        if (rc)
            return rc;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    data++, size--;
    size_t split = size;
    if (flags & FUZZ_TWO_STREAMS) {
        if (size < 2)
            return 0;
        split = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2, size -= 2;
        if (split > size)
            split = size;
    }
    uint8_t *buf = fuzz_copy(data, size);
    fuzz_fix_records(buf, split, flags);
    fuzz_fix_records(buf + split, size - split, flags);

    static struct vs_vm vm;
    vm.mem.base = fuzz_ram();
    vm.mem.size = FUZZ_RAM;
    struct vs_recv_streams rs;
    unsigned n = flags & FUZZ_TWO_STREAMS ? 2 : 1;
    uint32_t codecs = vs_codec_supported_mask() & ~1u;
    struct vs_channel *ch[2] = { NULL, NULL };
    size_t max_read = flags & FUZZ_SMALL_READS ? 7 : 0;
    if (vs_recv_streams_init(&rs, &vm, n, codecs) ||
        vs_channel_from_memory(buf, split, max_read, &ch[0]) ||
        (n == 2 && vs_channel_from_memory(buf + split, size - split, max_read, &ch[1])))
        abort();
    for (unsigned i = 0; i < n; i++)
        vs_recv_streams_set_channel(&rs, i, ch[i]);
    rs.s[0].r.disks = true;   /* as after a HELLO_REPLY that agreed VS_FEATURE_DISKS */
    int rc = vs_recv_streams_start(&rs);
    if (!rc)
        rc = receive(&rs);
    vs_recv_streams_fail(&rs, 0, rc ? rc : -1);
    vs_recv_streams_destroy(&rs);   /* closes the extra streams' channels */
    vs_channel_close(ch[0]);
    free(buf);
    return 0;
}
