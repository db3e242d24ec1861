#!/usr/bin/env python3
"""Turn recordings of real migrations (VMSHIFT_RECORD_DIR, see scripts/fuzz.sh --record)
into the fuzz targets' seed corpus (tests/fuzz/corpus/TARGET/), small enough to check in.

Every seed is made of real records. To stay small, PAGES records keep their first two
pages, ZERO_PAGES their first 16 entries, CPAGES over 64 KiB are left out, and PASS_END's
pass number and page count are rewritten to match what was kept. The targets recompute
checksums and sequence numbers of seeds whose flags byte asks for it (fuzz_common.h).

usage: make_seeds.py OUT_DIR RECORDING_DIR...
"""
import hashlib
import os
import struct
import sys

HDR = struct.Struct('<IHHIIQQ')
HELLO, HELLO_REPLY, PAGES, ZERO, PASS_END, VCPU, MACHINE = 1, 2, 3, 4, 5, 6, 7
STREAM_HELLO, CPAGES, RESOLVE = 13, 14, 21
FIX = 3          # FUZZ_FIX_SUMS | FUZZ_FIX_SEQ
TWO = 8          # two streams (fuzz_records)


def records(data):
    off = 0
    while off + 32 <= len(data):
        h = list(HDR.unpack_from(data, off))
        yield h, bytes(data[off + 32:off + 32 + h[3]])
        off += 32 + h[3]


def pack(h, payload):
    h = list(h)
    h[3] = len(payload)
    return HDR.pack(*h) + payload


def trimmed(recs):
    """The page records trimmed, passes renumbered, PASS_END counts made to agree."""
    out, kept, pass_no = [], 0, 0
    for h, p in recs:
        t = h[1]
        if t == PAGES:
            count, pas = struct.unpack_from('<II', p)
            n = min(count, 2)
            gpas = p[8:8 + 8 * n]
            data = p[8 + 8 * count:8 + 8 * count + 4096 * n]
            p = struct.pack('<II', n, pas) + gpas + data
            kept += n
        elif t == ZERO:
            count, pas = struct.unpack_from('<II', p)
            n = min(count, 16)
            p = struct.pack('<II', n, pas) + p[8:8 + 8 * n]
            kept += n
        elif t == CPAGES:
            if len(p) > 65536:
                continue
            kept += struct.unpack_from('<I', p)[0]
        elif t == PASS_END:
            _, final, _ = struct.unpack('<IIQ', p)
            p = struct.pack('<IIQ', pass_no, final, kept)
            pass_no += 1
            kept = 0
        out.append(pack(h, p))
    return out


def write(out_dir, target, name, data):
    d = os.path.join(out_dir, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name + '-' + hashlib.sha1(data).hexdigest()[:12])
    with open(path, 'wb') as f:
        f.write(data)


def main():
    out_dir, dirs = sys.argv[1], sys.argv[2:]
    for rec_dir in dirs:
        tag = os.path.basename(rec_dir.rstrip('/'))
        files = sorted(os.listdir(rec_dir))
        streams = {}
        for f in files:
            data = open(os.path.join(rec_dir, f), 'rb').read()
            recs = list(records(data))
            if not recs:
                continue
            first = recs[0][0][1]
            if first == RESOLVE:                # a settling connection, either side
                write(out_dir, 'handshake', tag + '-resolve',
                      bytes([2, 0, 0, 0]) + b''.join(pack(h, p) for h, p in recs))
                continue
            if f.endswith('connect.bin'):     # what a source received on stream 0
                write(out_dir, 'handshake', tag + '-src-reply',
                      bytes([1, 0, 0, 0]) + pack(*recs[0]))
                continue
            if first == HELLO:
                streams[0] = recs
            elif first == STREAM_HELLO:
                streams[len(streams) + 1] = recs
        if 0 not in streams:
            continue
        s0 = streams[0]
        hello = pack(*s0[0])
        extra = [s for i, s in sorted(streams.items()) if i > 0]
        sh = pack(*extra[0][0]) if extra else b''
        write(out_dir, 'handshake', tag + '-dst-hello',
              bytes([0, 0]) + struct.pack('<H', len(hello)) + hello + sh)
        body0 = b''.join(trimmed(s0[1:]))
        if extra:
            body1 = b''.join(trimmed(extra[0][1:]))
            write(out_dir, 'records', tag + '-two-streams',
                  bytes([FIX | TWO]) + struct.pack('<H', len(body0)) + body0 + body1)
        else:
            write(out_dir, 'records', tag + '-stream', bytes([FIX]) + body0)
        for h, p in s0:
            if h[1] == VCPU and struct.unpack_from('<I', p)[0] == 0:   # vCPU 0's only
                write(out_dir, 'vstate', tag + '-vcpu', bytes([0]) + p[8:])
            elif h[1] == MACHINE:
                # 2.3 device-state sections of a pc machine (fuzz_vstate.c: bits 0-2)
                write(out_dir, 'vstate', tag + '-machine', bytes([7]) + p)


if __name__ == '__main__':
    main()
