#!/usr/bin/python3
"""The client C of the network benchmark (bench/net_bench.py): numbered probes to a VM,
every reply timestamped by the kernel, written as one JSON file when stopped.

    ip netns exec C python3 bench/lib/net_client.py probe --target 198.18.0.10 \
        --interval-ms 1 --out /tmp/probes.json [--no-udp] [--no-ping]
    ip netns exec C python3 bench/lib/net_client.py blast --target 198.18.0.10 \
        --size 1400 --pps 20000 --seconds 3 --out /tmp/blast.json

probe: every interval a probe numbered 0, 1, 2, ...: ICMP echo requests (raw socket) at
even numbers and UDP datagrams to port 7777 at odd ones (the guest's net workload echoes
UDP to any port); --no-ping or --no-udp sends only the other kind. Each carries its
number and the send time. It runs until SIGTERM/SIGINT, then writes
{"sent": [[kind, seq, t_sent], ...],
"replies": [[kind, seq, t_arrival], ...]} (kind 0 = ping, 1 = UDP; times are host
wall-clock seconds, CLOCK_REALTIME, the clock of QMP event timestamps; arrival times
are the kernel's, SO_TIMESTAMPNS, so a starved client does not stretch the gaps).
Sending keeps an absolute schedule: a late wake-up sends what is due at once, in order.

reach: pings every 50 ms until one is answered (exit 0) or --timeout s pass (exit 1).

blast: UDP datagrams of SIZE payload bytes at PPS for SECONDS (sent in bursts every
millisecond), and the echoes counted in a window from 0.5 s after the start to the end
of sending: {"sent", "echoed", "echoed_in_window", "window_s", "size"}.

stdlib only; needs root (raw ICMP socket).
"""
import argparse
import json
import os
import select
import signal
import socket
import struct
import time

UDP_PORT = 7777
SO_TIMESTAMPNS = 35
MAGIC = 0x76736e62          # "vsnb": our probes, not someone else's echo


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _icmp_echo(ident, seq, payload):
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
    csum = _checksum(hdr + payload)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq & 0xFFFF) + payload


def _arrival(ancdata):
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec / 1e9
    return time.time()


def _socket(kind):
    if kind == "icmp":
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setblocking(False)
    return s


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def probe(target, interval_s, use_ping, use_udp, out):
    ident = os.getpid() & 0xFFFF
    ping = _socket("icmp") if use_ping else None
    udp = _socket("udp") if use_udp else None
    socks = [s for s in (ping, udp) if s]
    sent, replies = [], []
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    seq, t_next = 0, time.time()
    try:
        while True:
            now = time.time()
            while now >= t_next:
                body = struct.pack("!IId", MAGIC, seq, now)
                kind = 0 if not udp else 1 if not ping else seq % 2
                if kind == 0:
                    try:
                        ping.sendto(_icmp_echo(ident, seq, body), (target, 0))
                        sent.append((0, seq, now))
                    except OSError:
                        pass
                else:
                    try:
                        udp.sendto(body, (target, UDP_PORT))
                        sent.append((1, seq, now))
                    except OSError:
                        pass
                seq += 1
                t_next += interval_s
            r, _, _ = select.select(socks, [], [], max(0.0, t_next - time.time()))
            for s in r:
                _drain(s, s is ping, ident, replies)
    except _Stop:
        pass
    for s in socks:
        try:
            _drain(s, s is ping, ident, replies)
        except _Stop:
            pass
    with open(out, "w") as f:
        json.dump({"target": target, "interval_s": interval_s, "sent": sent,
                   "replies": replies}, f)


def _drain(s, is_ping, ident, replies):
    while True:
        try:
            data, anc, _, _ = s.recvmsg(4096, 256)
        except (BlockingIOError, InterruptedError):
            return
        t = _arrival(anc)
        if is_ping:
            ihl = (data[0] & 0xF) * 4           # raw ICMP sockets get the IP header
            icmp = data[ihl:]
            if len(icmp) < 8 + 16 or icmp[0] != 0:
                continue
            rid, = struct.unpack("!H", icmp[4:6])
            magic, seq, _ = struct.unpack("!IId", icmp[8:24])
            if rid != ident or magic != MAGIC:
                continue
            replies.append((0, seq, t))
        else:
            if len(data) < 16:
                continue
            magic, seq, _ = struct.unpack("!IId", data[:16])
            if magic == MAGIC:
                replies.append((1, seq, t))


def reach(target, timeout):
    """Ping every 50 ms until an answer comes (exit 0) or timeout seconds pass (exit 1)."""
    ident = os.getpid() & 0xFFFF
    s = _socket("icmp")
    replies, seq, deadline = [], 0, time.time() + timeout
    while time.time() < deadline:
        s.sendto(_icmp_echo(ident, seq, struct.pack("!IId", MAGIC, seq, time.time())),
                 (target, 0))
        seq += 1
        select.select([s], [], [], 0.05)
        _drain(s, True, ident, replies)
        if replies:
            return 0
    return 1


def blast(target, size, pps, seconds, out):
    s = _socket("udp")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    payload = bytearray(max(size, 16))
    t0 = time.time()
    w0, w1 = t0 + 0.5, t0 + seconds
    sent = echoed = in_window = 0
    t_end_recv = w1 + 0.3
    while True:
        now = time.time()
        if now >= t_end_recv:
            break
        due = min(int((min(now, w1) - t0) * pps), int(seconds * pps))
        while sent < due:
            struct.pack_into("!IId", payload, 0, MAGIC, sent, now)
            try:
                s.sendto(payload, (target, UDP_PORT))
            except (BlockingIOError, OSError):
                pass
            sent += 1
        r, _, _ = select.select([s], [], [], 0.001)
        if r:
            while True:
                try:
                    data, anc, _, _ = s.recvmsg(65536, 256)
                except (BlockingIOError, InterruptedError):
                    break
                if len(data) < 16 or struct.unpack("!I", data[:4])[0] != MAGIC:
                    continue
                echoed += 1
                t = _arrival(anc)
                if w0 <= t <= w1:
                    in_window += 1
    with open(out, "w") as f:
        json.dump({"target": target, "size": size, "pps_offered": pps, "seconds": seconds,
                   "sent": sent, "echoed": echoed, "echoed_in_window": in_window,
                   "window_s": w1 - w0}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--target", required=True)
    p.add_argument("--interval-ms", type=float, default=1.0)
    p.add_argument("--no-ping", action="store_true")
    p.add_argument("--no-udp", action="store_true")
    p.add_argument("--out", required=True)
    r = sub.add_parser("reach")
    r.add_argument("--target", required=True)
    r.add_argument("--timeout", type=float, default=60)
    b = sub.add_parser("blast")
    b.add_argument("--target", required=True)
    b.add_argument("--size", type=int, default=1400)
    b.add_argument("--pps", type=float, default=20000)
    b.add_argument("--seconds", type=float, default=3)
    b.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "reach":
        raise SystemExit(reach(a.target, a.timeout))
    if a.cmd == "probe":
        probe(a.target, a.interval_ms / 1000.0, not a.no_ping, not a.no_udp, a.out)
    else:
        blast(a.target, a.size, a.pps, a.seconds, a.out)


if __name__ == "__main__":
    main()
