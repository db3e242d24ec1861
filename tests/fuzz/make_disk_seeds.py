#!/usr/bin/env python3
"""Write seeds of the disk records (DISK_BLOCKS, DISK_DIGEST; stream version 2.6) for the
records fuzz target (tests/fuzz/fuzz_records.c: disk 1 of 1 MiB + 512 bytes is copied,
disk 0 is not). Flags byte 3 (FUZZ_FIX_SUMS | FUZZ_FIX_SEQ): the target computes the sums
and sequence numbers, so the records here carry zeros there.

usage: make_disk_seeds.py CORPUS_DIR     (writes CORPUS_DIR/records/disk-*)
"""
import os
import struct
import sys

HDR = struct.Struct('<IHHIIQQ')
MAGIC, BLOCKS, DIGEST, PASS_END = 0x31525356, 25, 26, 5
BLOCK = 65536


def rec(t, payload):
    return HDR.pack(MAGIC, t, 0, len(payload), 0, 0, 0) + payload


def blocks(disk, pas, data_blocks, zero_blocks, fill=0x5a):
    blist = list(data_blocks) + list(zero_blocks)
    p = struct.pack('<IIII', disk, pas, len(blist), len(zero_blocks))
    p += b''.join(struct.pack('<Q', b) for b in blist)
    p += bytes([fill]) * (BLOCK * len(data_blocks))
    return rec(BLOCKS, p)


def digest(disk, size, xxh3=0, sent=0):
    return rec(DIGEST, struct.pack('<IIQQQ', disk, 0, size, xxh3, sent))


def pass_end(pas, final):
    return rec(PASS_END, struct.pack('<IIQ', pas, final, 0))


def main():
    out = os.path.join(sys.argv[1], 'records')
    os.makedirs(out, exist_ok=True)
    seeds = {
        'disk-bulk': blocks(1, 0, [0, 3], []) + pass_end(0, 0) +
                     blocks(1, 1, [16], [2]) + pass_end(1, 1) + digest(1, (1 << 20) + 512),
        'disk-last-short': blocks(1, 0, [16], []) + pass_end(0, 1) + digest(1, (1 << 20) + 512, 1, 1),
        'disk-zero-only': blocks(1, 2, [], [1, 2, 3]) + pass_end(2, 1),
        'disk-not-copied': blocks(0, 0, [0], []),
        'disk-outside': blocks(1, 0, [17], []),
        'disk-twice': blocks(1, 0, [4], [4]),
        'disk-size-differs': pass_end(0, 1) + digest(1, 1 << 20),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(bytes([3]) + data)


if __name__ == '__main__':
    main()
