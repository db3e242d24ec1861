/* Fuzz target: virtio-net (src/vmm/virtio/virtio_net.c) behind its virtio-mmio transport,
 * driven by a hostile guest driver and a wire that sends frames of any length, over guest
 * RAM the input chooses. The backend is a real socket pair (one frame per read).
 *   bytes 0-1  le16 length L of the RAM image (capped at what the input holds)
 *   L bytes    the guest's RAM from address 0 (FUZZ_NET_RAM bytes, zero beyond)
 *   then       operations of 7 bytes: u8 op, le16 a, le32 v; op bits 0-2 say what:
 *              0/1 a register or configuration read/write at a (masked to the window),
 *                  width 1 << (op bits 3-4), value v
 *              2   the wire sends a frame of (v % 1600) bytes, seeded by a (with a's bit 15
 *                  an 802.1Q tag for VLAN a & 0xfff after its addresses); then receive
 *              3   receive (vs_virtio_net_rx_pump)
 *              4   the VM stops (v odd) or runs (v even)
 *              5   the clock moves v % 1000 ms; due announcements go out
 *              6   save the device's sections and load them back (a migration in place)
 *              7   the wire reads what the device sent; with op bit 5: the NIC's VLAN
 *                  becomes v & 0xfff (0 none, 4095 taken as 0) and its rate v >> 16 * 64
 *                  bytes/s (0 none), as a spec or a migration would set them
 * Checks the line follows InterruptStatus after every operation. Guest RAM is a heap block
 * of exactly its size, so ASan catches any access outside it. */
#include "fuzz_common.h"
#include "common/blob.h"
#include "common/clock.h"
#include "vmm/memory.h"
#include "vmm/ram_layout.h"
#include "vmm/virtio/virtio_net.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FUZZ_NET_RAM (64u << 10)
#define MAX_OPS 2048

static void line_set(void *ctx, uint32_t gsi, bool level)
{
    (void)gsi;
    *(bool *)ctx = level;
}

static void reg_access(struct vs_virtio_mmio *t, uint8_t op, uint16_t a, uint32_t v)
{
    uint8_t data[8] = { 0 };
    memcpy(data, &v, 4);
    struct vs_bus_io io = { .offset = a % VS_VIRTIO_MMIO_SIZE, .data = data,
                            .size = 1u << ((op >> 3) & 3), .is_write = op & 1 };
    vs_virtio_mmio_io(t, &io);
}

static void wire_send(int peer, uint16_t seed, uint32_t v)
{
    uint8_t frame[VS_VIRTIO_NET_HDR + 1600];
    size_t len = VS_VIRTIO_NET_HDR + v % 1600;
    for (size_t i = 0; i < len; i++)
        frame[i] = (uint8_t)(seed + i * 31);
    if ((seed & 0x8000) && len >= VS_VIRTIO_NET_HDR + 16) {
        uint8_t *tag = frame + VS_VIRTIO_NET_HDR + 12;
        tag[0] = 0x81, tag[1] = 0x00, tag[2] = (uint8_t)((seed >> 8) & 0x0f), tag[3] = (uint8_t)seed;
    }
    if (send(peer, frame, len, MSG_DONTWAIT) < 0)
        return;   /* the socket is full: as a TAP queue would be */
}

static void wire_drain(int peer)
{
    uint8_t buf[2048];
    for (int i = 0; i < 512 && recv(peer, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
        ;
}

static void configure(struct vs_virtio_net *n, uint32_t v, uint64_t now)
{
    vs_virtio_mmio_lock(n->transport);
    n->vlan = (v & 0xfff) == 0xfff ? 0 : (uint16_t)(v & 0xfff);
    vs_tb_init(&n->rx_tb, (uint64_t)(v >> 16) * 64, now);
    vs_tb_init(&n->tx_tb, (uint64_t)(v >> 16) * 64, now);
    vs_virtio_mmio_unlock(n->transport);
}

static void migrate_in_place(struct vs_vmstate_registry *reg)
{
    struct vs_blob b = { 0 };
    if (vs_vmstate_save_all(reg, &b) == 0 && vs_vmstate_load_all(reg, b.data, b.len) != 0)
        abort();   /* what this device saved, it must load */
    vs_blob_free(&b);
}

static void operate(struct vs_virtio_net *n, struct vs_vmstate_registry *reg, int peer,
                    const uint8_t *p, uint64_t *now)
{
    uint8_t op = p[0];
    uint16_t a = (uint16_t)(p[1] | p[2] << 8);
    uint32_t v;
    memcpy(&v, p + 3, 4);
    switch (op & 7) {
    case 0: case 1: reg_access(n->transport, op, a, v); break;
    case 2: case 3:
        if ((op & 7) == 2)
            wire_send(peer, a, v);
        vs_virtio_mmio_lock(n->transport);
        vs_virtio_net_rx_pump(n);
        vs_virtio_mmio_unlock(n->transport);
        break;
    case 4: vs_virtio_net_set_running(n, !(v & 1)); break;
    case 5:
        *now += (uint64_t)(v % 1000) * 1000000;
        vs_virtio_mmio_lock(n->transport);
        vs_virtio_net_timers(n, *now);
        vs_virtio_mmio_unlock(n->transport);
        break;
    case 6: migrate_in_place(reg); break;
    default:
        if (op & 0x20)
            configure(n, v, *now);
        else
            wire_drain(peer);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 2)
        return 0;
    size_t image = (size_t)(data[0] | data[1] << 8);
    if (image > size - 2)
        image = size - 2;
    if (image > FUZZ_NET_RAM)
        image = FUZZ_NET_RAM;
    struct vs_memory mem = { .memfd = -1, .size = FUZZ_NET_RAM };
    vs_ram_layout_init(&mem.layout, FUZZ_NET_RAM, false);   /* flat: gpa = RAM offset */
    mem.base = calloc(1, FUZZ_NET_RAM);
    int sv[2];
    if (!mem.base || vs_memory_track_writes(&mem, true) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) < 0)
        abort();
    memcpy(mem.base, data + 2, image);
    struct vs_net_spec spec;
    struct vs_virtio_net *n;
    struct vs_vmstate_registry reg;
    vs_vmstate_init(&reg);
    bool level = false;
    struct vs_virtio_mmio_params p = { .mem = &mem, .vmstate = &reg, .instance = 1,
                                       .irq = { .set = line_set, .ctx = &level, .gsi = 9 } };
    if (vs_net_spec_parse("tap=fuzz0,mac=52:54:00:12:34:56,ip=198.18.0.10", &spec) ||
        vs_virtio_net_new(&n, &spec, sv[0], "fuzz0") ||
        vs_virtio_mmio_create(&n->transport, &p, &vs_virtio_net_ops, n))
        abort();
    vs_virtio_net_set_running(n, true);

    const uint8_t *op = data + 2 + image;
    size_t left = size - 2 - image;
    uint64_t now = vs_clock_ns();   /* the device's announcements count from the real clock */
    for (unsigned k = 0; left >= 7 && k < MAX_OPS; k++, op += 7, left -= 7) {
        operate(n, &reg, sv[1], op, &now);
        if (level != (n->transport->interrupt_status != 0))
            abort();   /* the line must follow InterruptStatus */
    }
    vs_virtio_net_free(n);
    close(sv[1]);
    free(mem.written);
    free(mem.base);
    return 0;
}
