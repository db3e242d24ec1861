#!/usr/bin/python3
"""The stream direction of the network benchmark (bench/net_bench.py): the VM runs the
guest's `net-stream` workload (numbered UDP datagrams at a set rate to the client C,
guest/net_stream.h) while it moves A -> B -> A; C collects them.

    ip netns exec C python3 bench/lib/net_stream.py collect --port 9000 --out /tmp/s.json

collect: binds UDP PORT, takes every datagram of the stream (magic, seed, sequence number;
the kernel's arrival stamp, SO_TIMESTAMPNS, host wall-clock seconds like QMP event
timestamps) until SIGTERM/SIGINT, then writes {"port", "arrivals": [[seq, seed, t], ...],
"malformed"}; while it runs, OUT.count holds the number received so far (for waiting).

figures(data, migrations, sent): received, lost (numbers below the highest never
received), dup, reordered (arrived after a higher number), the longest gap between two
datagrams anywhere, and per move the outage (the longest gap overlapping [stop, resume])
next to the downtime, and first back (the resume to the first datagram C received after
it); `sent` is the guest's own count (telemetry), so sent - received -
lost is what was still in flight at the end (0 once the VM is paused and C drained).

stdlib only.
"""
import argparse
import json
import os
import select
import signal
import socket
import struct
import time

PORT = 9000
MAGIC = 0x5453564D
SO_TIMESTAMPNS = 35


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def _arrival(ancdata):
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec / 1e9
    return time.time()


def collect(port, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", port))
    s.setblocking(False)
    arrivals, malformed, last_count = [], 0, 0.0
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    def drain():
        nonlocal malformed
        while True:
            try:
                data, anc, _, _ = s.recvmsg(2048, 256)
            except BlockingIOError:
                return
            if len(data) < 24 or struct.unpack_from("<I", data)[0] != MAGIC:
                malformed += 1
                continue
            seed, seq = struct.unpack_from("<QQ", data, 8)
            arrivals.append((seq, seed, _arrival(anc)))

    try:
        while True:
            select.select([s], [], [], 0.1)
            drain()
            if time.time() - last_count > 0.2:
                last_count = time.time()
                with open(out + ".count.tmp", "w") as f:
                    f.write(str(len(arrivals)))
                os.replace(out + ".count.tmp", out + ".count")
    except _Stop:
        pass
    time.sleep(0.3)                      # late datagrams
    drain()
    with open(out, "w") as f:
        json.dump({"port": port, "arrivals": arrivals, "malformed": malformed}, f)


def received_so_far(out):
    try:
        with open(out + ".count") as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def figures(data, migrations, sent):
    arr = data["arrivals"]
    seeds = {a[1] for a in arr}
    seen, highest, dup, reord = set(), -1, 0, 0
    for seq, _, _ in arr:
        if seq in seen:
            dup += 1
            continue
        seen.add(seq)
        if seq < highest:
            reord += 1
        highest = max(highest, seq)
    times = sorted(a[2] for a in arr)
    gaps = [(times[i] - times[i - 1], times[i - 1]) for i in range(1, len(times))]
    worst = max(gaps) if gaps else (None, None)
    moves = []
    for m in migrations:
        lo, hi = m.get("t_stop"), m.get("t_resume")
        over = [g for g in gaps if lo is not None and hi is not None and
                g[1] <= hi and g[1] + g[0] >= lo]
        after = [t for t in times if hi is not None and t >= hi]
        moves.append({"move": "%s->%s" % (m["from"], m["to"]),
                      "downtime_ms": m.get("downtime_ms"),
                      "outage_ms": max(over)[0] * 1000 if over else None,
                      "first_back_ms": (after[0] - hi) * 1000 if after else None})
    return {"received": len(seen), "lost": highest + 1 - len(seen), "dup": dup,
            "reordered": reord, "seeds": len(seeds), "malformed": data.get("malformed", 0),
            "sent": sent, "in_flight": None if sent is None else sent - (highest + 1),
            "worst_gap_ms": None if worst[0] is None else worst[0] * 1000,
            "worst_gap_from_first_stop_ms": None if worst[0] is None or not migrations or
            migrations[0].get("t_stop") is None else (worst[1] - migrations[0]["t_stop"]) * 1000,
            "moves": moves}


def _f(v, fmt="%.1f"):
    return "-" if v is None else fmt % v


def table(runs, rate):
    """Markdown rows: one per run and move, then the run's stream totals."""
    out = ["\nThe stream direction: the VM sends %d numbered UDP datagrams/s to C (guest "
           "workload net-stream) while it moves A -> B -> A; C counts them (kernel arrival "
           "stamps). outage: the longest gap at C overlapping the move's blackout; worst gap: "
           "the longest anywhere in the run; back: the resume to the first datagram at C after it; sent: the guest's own count (telemetry), "
           "in flight = sent - (received + lost) after the VM was paused:\n" % rate,
           "| VMM | run | received | lost | dup | reord | worst gap ms | A->B downtime ms | "
           "A->B outage ms | A->B back ms | B->A downtime ms | B->A outage ms | B->A back ms | "
           "sent | in flight |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r.get("stream")
        if not s:
            continue
        mv = s["moves"] + [{}] * (2 - len(s["moves"]))
        cells = [_f(m.get(k)) for m in mv for k in ("downtime_ms", "outage_ms", "first_back_ms")]
        out.append("| %s | %d | %d | %d | %d | %d | %s | %s | %s | %s |" % (
            r["impl"], r["run"], s["received"], s["lost"], s["dup"], s["reordered"],
            _f(s["worst_gap_ms"]), " | ".join(cells), _f(s["sent"], "%d"),
            _f(s["in_flight"], "%d")))
    return "\n".join(out) + "\n"


def check_sane(runs):
    """Problems of the stream runs (--quick): every VMM delivered, none duplicated."""
    problems = []
    for r in runs:
        s = r.get("stream")
        if s is None:
            problems.append("%s: no stream result" % r["impl"])
            continue
        if s["received"] < 100:
            problems.append("%s: C received only %d datagrams of the stream" % (
                r["impl"], s["received"]))
        if s["dup"] or s["seeds"] > 1 or s["malformed"]:
            problems.append("%s: %d duplicated, %d seeds, %d malformed" % (
                r["impl"], s["dup"], s["seeds"], s["malformed"]))
        if len(s["moves"]) != 2:
            problems.append("%s: %d moves" % (r["impl"], len(s["moves"])))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--port", type=int, default=PORT)
    c.add_argument("--out", required=True)
    a = ap.parse_args()
    collect(a.port, a.out)


if __name__ == "__main__":
    main()
