#!/usr/bin/env python3
"""Write the seed corpora of the virtio fuzz targets: fuzz_virtqueue (guest RAM images with
well-formed and malformed queues: flags, last_avail_idx, used_idx, RAM image from address
0), fuzz_virtio_mmio (a RAM image and a driver's register accesses), fuzz_virtio_blk
(virtio-blk requests in a queue, and the disk's read-only flag) and fuzz_virtio_net (a
RAM image with a virtio-net driver's three queues, then register accesses, frames from the
wire, pauses, migrations and clock steps), in the input formats the targets describe.

usage: make_virtio_seeds.py CORPUS_DIR     (writes CORPUS_DIR/virtqueue, .../virtio_mmio,
                                            .../virtio_blk, .../virtio_net)
"""
import os
import struct
import sys

DESC, AVAIL, USED, BUF = 0x0, 0x1000, 0x1800, 0x4000
NEXT, WRITE, INDIRECT = 1, 2, 4


class Image:
    def __init__(self, log2_size, indirect=False, event_idx=False, last_avail=0, used=0):
        self.size = 1 << log2_size
        self.flags = (1 if indirect else 0) | (2 if event_idx else 0) | (log2_size << 2)
        self.last_avail, self.used = last_avail, used
        self.ram = bytearray(0x6000)
        self.avail_idx = last_avail

    def desc(self, table, i, addr, length, flags, nxt=0):
        struct.pack_into('<QIHH', self.ram, table + 16 * i, addr, length, flags, nxt)

    def offer(self, head):
        struct.pack_into('<H', self.ram, AVAIL + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xffff
        struct.pack_into('<H', self.ram, AVAIL + 2, self.avail_idx)

    def bytes(self):
        return struct.pack('<BHH', self.flags, self.last_avail, self.used) + bytes(self.ram)


def seeds():
    s = Image(3)                                   # read + write chain
    s.desc(DESC, 0, BUF, 16, NEXT, 1)
    s.desc(DESC, 1, BUF + 0x100, 32, WRITE)
    s.offer(0)
    s.offer(0)
    yield 'chain', s
    s = Image(4, indirect=True, event_idx=True)    # direct buffer, then an indirect table
    s.desc(0x3000, 0, BUF, 8, NEXT, 1)
    s.desc(0x3000, 1, BUF + 0x40, 64, WRITE)
    s.desc(DESC, 2, BUF + 0x80, 4, NEXT, 3)
    s.desc(DESC, 3, 0x3000, 32, INDIRECT)
    s.offer(2)
    yield 'indirect', s
    s = Image(2, last_avail=65534, used=65534)     # indices wrapping
    for i in range(4):
        s.desc(DESC, i, BUF + 0x20 * i, 0x20, WRITE)
        s.offer(i)
    yield 'wrap', s
    s = Image(3)                                   # a loop
    s.desc(DESC, 0, BUF, 8, NEXT, 1)
    s.desc(DESC, 1, BUF, 8, NEXT, 0)
    s.offer(0)
    yield 'loop', s
    s = Image(8, indirect=True)                    # a full-size queue, buffers past RAM
    s.desc(DESC, 0, 0xfff0, 0x100, WRITE)
    s.offer(0)
    yield 'outside', s


# virtio-mmio registers
STATUS, DRV_FEAT, DRV_FEAT_SEL, QSEL, QNUM, QREADY, QNOTIFY = 0x70, 0x20, 0x24, 0x30, 0x38, 0x44, 0x50
ISR, ACK, QDESC, QDRIVER, QDEVICE, GEN = 0x60, 0x64, 0x80, 0x90, 0xa0, 0xfc


def wr(off, val, width=4):
    return struct.pack('<BHI', 1 | ({1: 0, 2: 1, 4: 2, 8: 3}[width] << 1), off, val & 0xffffffff)


def rd(off, width=4):
    return struct.pack('<BHI', {1: 0, 2: 1, 4: 2, 8: 3}[width] << 1, off, 0)


def driver_start(features_low, qsize=8):
    return b''.join([
        wr(STATUS, 1), wr(STATUS, 3), wr(DRV_FEAT_SEL, 1), wr(DRV_FEAT, 1),
        wr(DRV_FEAT_SEL, 0), wr(DRV_FEAT, features_low), wr(STATUS, 11), rd(STATUS),
        wr(QSEL, 0), rd(0x34), wr(QNUM, qsize), wr(QDESC, DESC), wr(QDESC + 4, 0),
        wr(QDRIVER, AVAIL), wr(QDRIVER + 4, 0), wr(QDEVICE, USED), wr(QDEVICE + 4, 0),
        wr(QREADY, 1), wr(STATUS, 15)])


def mmio_seeds():
    for name, image in seeds():
        ram = image.bytes()[5:]
        script = driver_start((1 << 28) | (1 << 29)) + wr(QNOTIFY, 0) + rd(ISR) + wr(ACK, 1)
        script += rd(GEN) + rd(0x100, 1) + wr(STATUS, 0) + rd(STATUS)
        yield name, struct.pack('<H', len(ram)) + ram + script


# virtio-blk request types
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES = 0, 1, 4, 8, 11, 13


def blk_request(image, slot, rtype, sector, data_len, data_writable, extra=b''):
    """Header, data (if any), status: descriptors 3*slot.., buffers at BUF + 0x400*slot."""
    base, d0 = BUF + 0x400 * slot, 3 * slot
    struct.pack_into('<IIQ', image.ram, base, rtype, 0, sector)
    image.ram[base + 0x20:base + 0x20 + len(extra)] = extra
    if data_len:
        image.desc(DESC, d0, base, 16, NEXT, d0 + 1)
        image.desc(DESC, d0 + 1, base + 0x20, data_len, NEXT | (WRITE if data_writable else 0),
                   d0 + 2)
    else:
        image.desc(DESC, d0, base, 16, NEXT, d0 + 2)
    image.desc(DESC, d0 + 2, base + 0x10, 1, WRITE)
    image.offer(d0)


def blk_seeds():
    s = Image(4)
    blk_request(s, 0, T_OUT, 8, 512, False, bytes(range(256)) * 2)
    blk_request(s, 1, T_IN, 8, 512, True)
    blk_request(s, 2, T_FLUSH, 0, 0, False)
    blk_request(s, 3, T_GET_ID, 0, 20, True)
    yield 'rw', s, 0
    s = Image(3)
    segs = struct.pack('<QII', 0, 8, 0) + struct.pack('<QII', 100, 16, 1)
    blk_request(s, 0, T_WRITE_ZEROES, 0, len(segs), False, segs)
    blk_request(s, 1, T_DISCARD, 0, 16, False, struct.pack('<QII', 64, 8, 0))
    yield 'ranges', s, 0
    s = Image(3)
    blk_request(s, 0, T_IN, 2047, 1024, True)               # runs past the end
    blk_request(s, 1, T_OUT, (1 << 55), 512, False)         # sector * 512 overflows
    blk_request(s, 2, 99, 0, 0, False)                      # unknown type
    yield 'bad', s, 0
    s = Image(3)
    blk_request(s, 0, T_OUT, 0, 512, False)
    yield 'ro', s, 1


# fuzz_virtio_net: queue q at 0x2000 * q (desc; avail +0x800; used +0x1000), buffers from
# 0x8000; operations of 7 bytes (u8 op, le16 a, le32 v).
NET_RAM = 0xa000
NET_BUF = 0x8000
MRG_RXBUF, CTRL_VQ, GUEST_ANNOUNCE, MAC, STATUS_F = 1 << 15, 1 << 17, 1 << 21, 1 << 5, 1 << 16


def net_op(kind, a=0, v=0, width=4):
    return struct.pack('<BHI', kind | ({1: 0, 2: 1, 4: 2, 8: 3}[width] << 3), a, v & 0xffffffff)


def net_driver_start(features_low):
    ops = [net_op(1, STATUS, 3), net_op(1, DRV_FEAT_SEL, 1), net_op(1, DRV_FEAT, 1),
           net_op(1, DRV_FEAT_SEL, 0), net_op(1, DRV_FEAT, features_low), net_op(1, STATUS, 11)]
    for q in range(3):
        base = 0x2000 * q
        ops += [net_op(1, QSEL, q), net_op(1, QNUM, 8), net_op(1, QDESC, base),
                net_op(1, QDRIVER, base + 0x800), net_op(1, QDEVICE, base + 0x1000),
                net_op(1, QREADY, 1)]
    return b''.join(ops + [net_op(1, STATUS, 15)])


class NetImage:
    def __init__(self):
        self.ram = bytearray(NET_RAM)
        self.avail = [0, 0, 0]

    def desc(self, q, i, addr, length, flags, nxt=0):
        struct.pack_into('<QIHH', self.ram, 0x2000 * q + 16 * i, addr, length, flags, nxt)

    def offer(self, q, head):
        base = 0x2000 * q + 0x800
        struct.pack_into('<H', self.ram, base + 4 + 2 * (self.avail[q] % 8), head)
        self.avail[q] += 1
        struct.pack_into('<H', self.ram, base + 2, self.avail[q])


def net_seeds():
    img = NetImage()
    for i in range(4):                                  # receive buffers
        img.desc(0, i, NET_BUF + 0x400 * i, 0x400, WRITE)
        img.offer(0, i)
    img.desc(1, 0, NET_BUF + 0x1000, 12, NEXT, 1)       # a frame to send
    img.desc(1, 1, NET_BUF + 0x1100, 60, 0)
    img.offer(1, 0)
    struct.pack_into('<6s6sH', img.ram, NET_BUF + 0x1100, b'\xff' * 6,
                     bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]), 0x0806)
    img.desc(2, 0, NET_BUF + 0x1800, 2, NEXT, 1)        # ANNOUNCE_ACK
    img.desc(2, 1, NET_BUF + 0x1810, 1, WRITE)
    img.offer(2, 0)
    img.ram[NET_BUF + 0x1800] = 3
    ram = bytes(img.ram)
    feats = MAC | STATUS_F | CTRL_VQ | GUEST_ANNOUNCE
    traffic = (net_op(1, QNOTIFY, 0) + net_op(2, 7, 90) + net_op(2, 9, 1514) +
               net_op(1, QNOTIFY, 1) + net_op(7) + net_op(0, ISR) + net_op(1, ACK, 3))
    migrate = (net_op(4, 0, 1) + net_op(2, 3, 60) + net_op(6) + net_op(4, 0, 0) +
               net_op(5, 0, 0) + net_op(5, 0, 50) + net_op(1, QNOTIFY, 2) + net_op(5, 0, 150) +
               net_op(0, 0x100, 0, 1) + net_op(0, 0x106, 0, 2) + net_op(7))
    yield 'traffic', struct.pack('<H', len(ram)) + ram + net_driver_start(feats) + traffic
    yield 'merged', (struct.pack('<H', len(ram)) + ram + net_driver_start(feats | MRG_RXBUF) +
                     traffic + net_op(2, 1, 3000))
    yield 'migrate', struct.pack('<H', len(ram)) + ram + net_driver_start(feats) + migrate
    yield 'reset', (struct.pack('<H', len(ram)) + ram + net_driver_start(feats) + traffic +
                    net_op(1, STATUS, 0) + net_driver_start(MAC) + traffic)
    # VLAN 10 and 2000 bytes/s: tagged frames of VLAN 10 and 11, then time passing.
    yield 'vlan-rate', (struct.pack('<H', len(ram)) + ram + net_driver_start(feats) +
                        net_op(7 | 0x20, 0, (31 << 16) | 10) + net_op(1, QNOTIFY, 0) +
                        net_op(2, 0x800a, 90) + net_op(2, 0x800b, 90) + net_op(2, 0x800a, 1400) +
                        net_op(2, 0x800a, 1400) + net_op(1, QNOTIFY, 1) + net_op(5, 0, 700) +
                        net_op(3) + net_op(7))


def main():
    out = sys.argv[1]
    for target, items in (('virtqueue', ((n, i.bytes()) for n, i in seeds())),
                          ('virtio_mmio', mmio_seeds()),
                          ('virtio_blk', ((n, i.bytes()[:5] + bytes([ro]) + i.bytes()[5:])
                                          for n, i, ro in blk_seeds())),
                          ('virtio_net', net_seeds())):
        os.makedirs(os.path.join(out, target), exist_ok=True)
        for name, blob in items:
            with open(os.path.join(out, target, name), 'wb') as f:
                f.write(blob)


if __name__ == '__main__':
    main()
