/* Fuzz target: the handshakes, on both sides, through the functions dest.c and source.c
 * call (src/migrate/precopy/handshake.c) and the RESOLVE exchange of the commit window
 * (src/migrate/commit/resolve_wire.c).
 *
 * Input: byte 0 selects the side, byte 1 = FUZZ_* flags (fuzz_common.h), then the bytes
 * that side receives:
 *   0: destination, stream 0: HELLO, checked and admitted (and VM_CONFIG if HELLO says
 *      one follows); then, if admitted, one extra
 *      connection's first record (STREAM_HELLO) from the rest of the input, whose
 *      offset is in bytes 2..3;
 *   1: source, stream 0: the answer to its HELLO (HELLO_REPLY or ABORT);
 *   2: either side, a RESOLVE connection: the records read there. */
#include "fuzz_common.h"
#include "migrate/precopy/handshake.h"
#include "migrate/commit/resolve_wire.h"
#include "codec/codec.h"
#include "common/log.h"
#include "transport/memory_channel.h"
#include "vmm/cpu_model.h"
#include "vmm/device_list.h"
#include "wire/reader.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t session[VS_WIRE_SESSION_LEN] = "fuzz-session-id";

static void destination(const uint8_t *buf, size_t size, size_t split, size_t max_read)
{
    struct vs_channel *ch;
    struct vs_wire_reader r;
    struct vs_wire_hello hello;
    if (vs_channel_from_memory(buf, split, max_read, &ch))
        abort();
    vs_wire_reader_init(&r, ch);
    int len = vs_handshake_read_hello(&r, &hello);
    bool admitted = len >= 0 && vs_handshake_admit(&hello, (uint32_t)len, 1ull << 30, 0) == 0;
    if (admitted && (hello.features & VS_FEATURE_DEVICES)) {   /* VM_CONFIG follows HELLO */
        struct vs_device_list sent, out;
        struct vs_device_list local = { .nr = 1, .d = { { .kind = VS_DEVICE_NIC,
                                                          .spec = "tap=t0" } } };
        if (vs_handshake_read_vm_config(&r, &sent) == 0) {
            if (sent.nr > VS_MAX_DEVICES)
                abort();
            vs_device_list_for_destination(&sent, &local, &out);
        }
    }
    vs_wire_reader_destroy(&r);
    vs_channel_close(ch);
    if (!admitted)
        return;
    /* The CPU comparison against a host offering some features (any message length). */
    struct vs_cpu_features host = { .w = { 0x81202000, 0x078bfbff, 0x1800002, 0x104,
                                           0x400393, 0x23d3fbff } };
    vs_handshake_check_cpu(&hello, &host);
    if (vs_channel_from_memory(buf + split, size - split, max_read, &ch))
        abort();
    struct vs_wire_header h;
    struct vs_wire_stream_hello sh;
    vs_wire_reader_init(&r, ch);
    if (!vs_wire_read_header(&r, &h) &&
        !vs_wire_read_fixed(&r, &h, VS_REC_STREAM_HELLO, &sh, sizeof(sh)))
        vs_wire_check_stream_hello(&sh, &hello);
    vs_wire_reader_destroy(&r);
    vs_channel_close(ch);
}

static void source(const uint8_t *buf, size_t size, size_t max_read)
{
    struct vs_channel *ch;
    struct vs_wire_reader r;
    struct vs_wire_hello sent = { .version_major = VS_WIRE_VERSION_MAJOR,
                                  .version_minor = VS_WIRE_VERSION_MINOR,
                                  .page_size = VS_WIRE_PAGE_SIZE, .ram_size = 64 << 20,
                                  .nr_vcpus = 2, .nr_streams = 1,
                                  .codecs = size ? buf[0] & 6 : 0,
                                  .features = VS_FEATURE_POSTCOPY };
    bool same_boot;
    uint32_t features;
    if (vs_channel_from_memory(buf, size, max_read, &ch))
        abort();
    vs_wire_reader_init(&r, ch);
    vs_handshake_read_reply(&r, &sent, "fuzz:1", "lz4", &same_boot, &features);
    vs_wire_reader_destroy(&r);
    vs_channel_close(ch);
}

static void resolve(const uint8_t *buf, size_t size, size_t max_read)
{
    struct vs_channel *ch;
    struct vs_wire_reader r;
    if (vs_channel_from_memory(buf, size, max_read, &ch))
        abort();
    vs_wire_reader_init(&r, ch);
    uint32_t state;
    while (vs_resolve_read(&r, session, &state) == 0)
        ;
    vs_wire_reader_destroy(&r);
    vs_channel_close(ch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 4)
        return 0;
    unsigned side = data[0] % 3, flags = data[1];
    size_t split = (size_t)data[2] | (size_t)data[3] << 8;
    data += 4, size -= 4;
    if (split > size)
        split = size;
    uint8_t *buf = fuzz_copy(data, size);
    size_t max_read = flags & FUZZ_SMALL_READS ? 7 : 0;
    if (side == 0) {
        fuzz_fix_records(buf, split, flags);
        fuzz_fix_records(buf + split, size - split, flags);
        destination(buf, size, split, max_read);
    } else {
        fuzz_fix_records(buf, size, flags);
        if (side == 1)
            source(buf, size, max_read);
        else
            resolve(buf, size, max_read);
    }
    free(buf);
    return 0;
}
