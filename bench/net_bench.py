#!/usr/bin/python3
"""Network benchmark (issue 14): a networked VM migrates A -> B and back while a client
pings it every millisecond, under vmshift and under QEMU, in the same run.

Three namespace hosts on one bridge segment (bench/lib/net_segment.py): A and B (the VM's
hosts, each a Linux bridge with an uplink to the segment) and the client C
(198.18.0.100); the migration has its own veth between A and B (198.18.1.1 -> .2). The
VM (64 MiB, the guest's `net` workload at 198.18.0.10, one virtio-net NIC on a TAP of
its host's bridge) runs under vmshift, or under QEMU (microvm, TCG or --qemu-accel kvm, virtio-net-device on
a TAP, announce on), booting the same PVH guest ELF. C sends a numbered probe every
millisecond: ICMP echo requests and UDP datagrams the guest echoes, alternately
(bench/lib/net_client.py; replies stamped by the kernel on arrival), and again every
5 ms (--intervals 1,5: an emulated guest answers at most ~900 frames/s, fewer on a loaded
host, so at 1 ms its queue grows and the RTT with it). After --settle s the
VM moves A -> B, --after s later back B -> A, and --after s later the client stops.

Per migration (window: from 0.5 s before the source stops to 1.5 s after the resume):
  downtime     source vCPUs stopped to destination vCPUs running (vmshift's report;
               QEMU: destination RESUME event minus source STOP event)
  outage       the silence at C the blackout caused: the longest time between two
               replies that overlaps [stop, resume]
  first back   destination resume to the first reply C received after it (it may answer
               a probe that waited in the ring during the blackout)
  new back     destination resume to the first reply to a probe sent after the resume
               (the path through B works: bridges learned, guest answering)
  worst gap    the longest silence anywhere in the window, and when it began relative to
               the source's stop (on a loaded host, often not the switchover's)
  lost, dup, reord   probes sent in the window never answered; answers received more
               than once; answers that arrived after the answer to a later probe
  base gap     the longest silence in the second before `migrate` (the guest's own
               jitter: an emulated guest answers ~900 frames/s at most, see the guide)
Then the NIC's cost: C blasts UDP datagrams (--sizes bytes of payload, at each of the
--blast-pps offered rates, for --blast-seconds) at the VM, now back on A, and counts the
echoes per second.

The stream direction (bench/lib/net_stream.py): the VM runs the guest's net-stream
workload instead, --stream-rate numbered UDP datagrams/s to C, and moves A -> B -> A
(--after s apart); C counts them: lost, dup, reordered, the longest gap, and per move the
outage next to the downtime; the guest's own sent count from its telemetry (vmshift's
status, QEMU's memory) once the VM is paused. --stream-only runs just that (with --quick:
the check that both VMMs' guests deliver the stream; it fails if one delivers nothing).

Writes into --out (default bench/results/net/): table.md (every migration, medians per VMM
and direction, throughput), results.json, net-<interval>ms.png (gnuplot: C's RTT and the gaps
between replies over time, run 1, both VMMs) and the .dat files plotted; the client's raw
probe files in work/.

    bench/net_bench.py [--runs 3] [--intervals 1,5] [--no-qemu] [--out DIR]
    bench/net_bench.py --quick    # 1 run each, short blast; checks the outputs are sane
    bench/net_bench.py --quick --stream-only   # only the stream direction, 1 run each
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import net_analysis   # noqa: E402
import net_segment    # noqa: E402
import net_stream     # noqa: E402
import net_vms        # noqa: E402
import netlab         # noqa: E402

CLIENT = os.path.join(HERE, "lib", "net_client.py")
STREAM = os.path.join(HERE, "lib", "net_stream.py")


def log(msg):
    print("[net_bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def wait_reachable(seg, timeout=90):
    """Until C gets an answer to a ping from the VM."""
    p = subprocess.run(seg.exec_args("c") + [sys.executable, CLIENT, "reach", "--target",
                                             net_vms.GUEST_IP, "--timeout", str(timeout)],
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("the VM at %s did not answer C within %d s"
                           % (net_vms.GUEST_IP, timeout))


def client(seg, args, out, *extra):
    return subprocess.Popen(seg.exec_args("c") + [sys.executable, CLIENT] + list(extra) +
                            ["--target", net_vms.GUEST_IP, "--out", out],
                            stdin=subprocess.DEVNULL)


def stop_client(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    if p.returncode != 0:
        raise RuntimeError("the client exited with %s" % p.returncode)


def blast(seg, args, wd, tag, size, pps):
    # The TAP's queue (1000 frames) of an earlier blast drains at the guest's pace first.
    wait_reachable(seg)
    out = os.path.join(wd, "blast-%s-%d-%g.json" % (tag, size, pps))
    p = client(seg, args, out, "blast", "--size", str(size), "--pps", str(pps),
               "--seconds", str(args.blast_seconds))
    p.wait(timeout=args.blast_seconds + 60)
    with open(out) as f:
        b = json.load(f)
    frame = size + 42                  # UDP, IPv4 and Ethernet headers
    b["echo_pps"] = b["echoed_in_window"] / b["window_s"]
    b["echo_mbit"] = b["echo_pps"] * frame * 8 / 1e6
    return b


def one_run(seg, args, impl, run, wd, interval, do_blast):
    cls = net_vms.VmshiftNetVm if impl == "vmshift" else net_vms.QemuNetVm
    wd = os.path.join(wd, "%s-%gms-run%d" % (impl, interval, run))
    shutil.rmtree(wd, ignore_errors=True)      # no stale port file or socket
    os.makedirs(wd)
    vm = cls(seg, wd, mem=args.mem)
    res = {"impl": impl, "run": run, "interval_ms": interval}
    try:
        vm.start("a")
        wait_reachable(seg)
        probes = os.path.join(wd, "probes-%s-%d-%gms.json" % (impl, run, interval))
        c = client(seg, args, probes, "probe", "--interval-ms", str(interval))
        try:
            time.sleep(args.settle)
            migs = []
            for to in ("b", "a"):
                m = vm.migrate(to)
                log("%s run %d (%g ms): %s -> %s %s, downtime %s ms" % (
                    impl, run, interval, m["from"], m["to"], m["status"], _f(m.get("downtime_ms"))))
                migs.append(m)
                if m["status"] != "completed":
                    raise RuntimeError("%s migration to %s: %s (%s)" % (impl, to, m["status"],
                                                                       m.get("error")))
                time.sleep(args.after)
        finally:
            stop_client(c)
        with open(probes) as f:
            data = json.load(f)
        res["migrations"] = [net_analysis.migration_figures(data, m) for m in migs]
        res["raw_migrations"] = migs
        res["whole"] = net_analysis.whole_run(data)
        res["series"] = net_analysis.series(data, migs[0]["t_migrate"])
        res["marks"] = [(m["t_stop"] - migs[0]["t_migrate"], m["t_resume"] - migs[0]["t_migrate"])
                        for m in migs]
        if impl == "vmshift":
            res["nic"] = vm.nic_status()
        if do_blast:
            res["blast"] = [blast(seg, args, wd, "%s-%d" % (impl, run), s, pps)
                            for s in args.sizes for pps in args.blast_pps]
    finally:
        vm.stop()
    res["leftover_taps"] = [d for h in ("a", "b") for d in seg.links(h) if d.startswith("t")]
    return res


def wait_stream(out, count, what, timeout=90):
    deadline = time.monotonic() + timeout
    while net_stream.received_so_far(out) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    got = net_stream.received_so_far(out)
    if got < count:
        raise RuntimeError("the stream %s: C has %d datagrams after %d s, expected %d"
                           % (what, got, timeout, count))


def one_stream_run(seg, args, impl, run, wd):
    """The VM streams to C while it moves A -> B -> A; C's counts and the guest's."""
    cls = net_vms.VmshiftNetVm if impl == "vmshift" else net_vms.QemuNetVm
    wd = os.path.join(wd, "%s-stream-run%d" % (impl, run))
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    out = os.path.join(wd, "stream.json")
    rate = args.stream_rate
    coll = subprocess.Popen(seg.exec_args("c") + [sys.executable, STREAM, "collect", "--port",
                                                  str(net_stream.PORT), "--out", out],
                            stdin=subprocess.DEVNULL)
    vm = cls(seg, wd, mem=args.mem, stream={
        "rate": rate, "peer": "%s:%d" % (seg.CLIENT_ADDR, net_stream.PORT),
        "seed": 1000 * run + (impl == "qemu")})
    migs, sent = [], None
    try:
        vm.start("a")
        wait_stream(out, rate * args.settle, "%s from A" % impl)
        for to in ("b", "a"):
            at = net_stream.received_so_far(out)
            m = vm.migrate(to)
            log("%s stream run %d: %s -> %s %s, downtime %s ms" % (
                impl, run, m["from"], m["to"], m["status"], _f(m.get("downtime_ms"))))
            migs.append(m)
            if m["status"] != "completed":
                raise RuntimeError("%s migration to %s: %s (%s)" % (impl, to, m["status"],
                                                                   m.get("error")))
            wait_stream(out, at + rate, "%s from %s" % (impl, to.upper()))
            time.sleep(args.after)
        sent = vm.pause_and_count()
        time.sleep(0.5)                 # the last datagrams reach C
    finally:
        vm.stop()
        stop_client(coll)
    with open(out) as f:
        data = json.load(f)
    return {"impl": impl, "run": run, "stream": net_stream.figures(data, migs, sent),
            "raw_migrations": migs}


def _f(v, fmt="%.1f"):
    return "-" if v is None else fmt % v


def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def table(results, args):
    out = []
    out.append("Network benchmark: %s, probes ping/UDP alternately every %s ms, %s VM, "
               "%d core(s), QEMU's guest on %s (vmshift's on /dev/kvm), load average before %s, "
               "after %s\n" % (
                   time.strftime("%Y-%m-%d %H:%M"), ", ".join("%g" % i for i in args.intervals),
                   args.mem, os.cpu_count(), args.qemu_accel.upper(), results["load_before"],
                   results["load_after"]))
    out.append("| VMM | probe ms | run | move | downtime ms | outage ms | first back ms | "
               "new back ms | worst gap ms (at) | lost | dup | reord | base gap ms | "
               "replies/s |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        for m in r.get("migrations", []):
            out.append("| %s | %g | %d | %s | %s | %s | %s | %s | %s (%s) | %d | %d | %d | %s "
                       "| %.0f |" % (
                           r["impl"], r["interval_ms"], r["run"], m["move"],
                           _f(m["downtime_ms"]), _f(m["outage_ms"]), _f(m["first_back_ms"]),
                           _f(m["new_back_ms"]), _f(m["worst_gap_ms"]),
                           _f(m["worst_gap_from_stop_ms"], "%+.0f"), m["lost"], m["dup"],
                           m["reordered"], _f(m["base_gap_ms"]), m["replies_per_s"]))
    out.append("\nMedians over the runs (both moves of each):\n")
    out.append("| VMM | probe ms | moves | downtime ms | outage ms | outage - downtime ms | "
               "first back ms | new back ms | worst gap ms | lost | dup | reord | "
               "replies/s before |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for interval in args.intervals:
        for impl in results["impls"]:
            ms = [m for r in results["runs"] if r["impl"] == impl and
                  r["interval_ms"] == interval for m in r.get("migrations", [])]
            if not ms:
                continue
            med = lambda k: _med([m[k] for m in ms])
            excess = _med([m["outage_ms"] - m["downtime_ms"] for m in ms
                           if m["outage_ms"] is not None and m["downtime_ms"] is not None])
            out.append("| %s | %g | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                impl, interval, len(ms), _f(med("downtime_ms")), _f(med("outage_ms")),
                _f(excess), _f(med("first_back_ms")), _f(med("new_back_ms")),
                _f(med("worst_gap_ms")), _f(med("lost"), "%g"), _f(med("dup"), "%g"),
                _f(med("reordered"), "%g"), _f(med("replies_per_s"), "%.0f")))
    out.append("\nUDP echo throughput through the NIC (VM on A, C offers datagrams at a set "
               "rate for %g s; echoes per second in the window, medians over the runs; Mbit/s "
               "of Ethernet frames echoed; on 2 cores a flood also takes the CPU the guest "
               "needs, so more offered can mean fewer echoed):\n" % args.blast_seconds)
    impls = results["impls"]
    out.append("| payload B | offered /s | " +
               " | ".join("%s echoes/s | %s Mbit/s" % (i, i) for i in impls) +
               (" | vmshift/QEMU |" if len(impls) == 2 else " |"))
    out.append("|---|---|" + "---|---|" * len(impls) + ("---|" if len(impls) == 2 else ""))
    for k, (size, offered) in enumerate((s, o) for s in args.sizes for o in args.blast_pps):
        pps = {i: _med([r["blast"][k]["echo_pps"] for r in results["runs"]
                        if r["impl"] == i and r.get("blast")]) for i in impls}
        mbit = {i: _med([r["blast"][k]["echo_mbit"] for r in results["runs"]
                         if r["impl"] == i and r.get("blast")]) for i in impls}
        row = "| %d | %g | " % (size, offered) + " | ".join(
            "%s | %s" % (_f(pps[i], "%.0f"), _f(mbit[i], "%.2f")) for i in impls)
        if len(impls) == 2 and pps["qemu"]:
            row += " | %.2f" % (pps["vmshift"] / pps["qemu"])
        out.append(row + " |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--intervals", default="1,5",
                    help="probe intervals in ms, each a set of runs (default 1,5)")
    ap.add_argument("--mem", default="64M")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--after", type=float, default=2.5)
    ap.add_argument("--sizes", default="64,1400")
    ap.add_argument("--blast-pps", default="2000,20000",
                    help="offered datagrams/s of the throughput blasts, each a blast")
    ap.add_argument("--blast-seconds", type=float, default=3.0)
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--qemu-accel", default="tcg", choices=("tcg", "kvm"),
                    help="QEMU's guest engine (kvm: the same /dev/kvm as vmshift's)")
    ap.add_argument("--stream-rate", type=int, default=300,
                    help="datagrams/s of the stream direction (guest net-stream workload)")
    ap.add_argument("--stream-only", action="store_true",
                    help="only the stream direction (no probes, no blasts)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="bench/results/net")
    args = ap.parse_args()
    net_vms.QemuNetVm.accel = args.qemu_accel
    if args.quick:
        args.runs, args.settle, args.after, args.blast_seconds = 1, 1.0, 2.0, 1.5
        args.intervals = "1"
        args.blast_pps = "2000"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.blast_pps = [float(s) for s in str(args.blast_pps).split(",")]
    args.intervals = [float(s) for s in args.intervals.split(",")]
    if os.geteuid() != 0:
        sys.exit("net_bench: needs root (network namespaces, TAPs, raw ICMP)")
    netlab.install_sigterm_handler()
    net_segment.cleanup_stale()
    os.makedirs(args.out, exist_ok=True)
    impls = ["vmshift"] + ([] if args.no_qemu else ["qemu"])
    results = {"impls": impls, "runs": [], "cores": os.cpu_count(),
               "intervals_ms": args.intervals,
               "load_before": "%.1f %.1f %.1f" % os.getloadavg()}
    wd = os.path.abspath(os.path.join(args.out, "work"))
    os.makedirs(wd, exist_ok=True)
    results["stream_runs"] = []
    with net_segment.Segment() as seg:
        for k, interval in enumerate([] if args.stream_only else args.intervals):
            for run in range(1, args.runs + 1):
                for impl in impls:
                    log("%s run %d, probe every %g ms" % (impl, run, interval))
                    results["runs"].append(one_run(seg, args, impl, run, wd, interval, k == 0))
        for run in range(1, args.runs + 1):
            for impl in impls:
                log("%s stream run %d, %d datagrams/s" % (impl, run, args.stream_rate))
                results["stream_runs"].append(one_stream_run(seg, args, impl, run, wd))
    results["load_after"] = "%.1f %.1f %.1f" % os.getloadavg()
    left = [n for n in seg.ns.values()
            if n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout]
    text = "" if args.stream_only else table(results, args)
    text += net_stream.table(results["stream_runs"], args.stream_rate)
    print(text)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    for interval in [] if args.stream_only else args.intervals:
        net_analysis.plot(results, args.out, interval)
    for r in results["runs"]:
        r.pop("series", None)           # in the .dat files
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    if args.quick:
        problems = [] if args.stream_only else net_analysis.check_sane(results, args.out)
        problems += net_stream.check_sane(results["stream_runs"])
        if left:
            problems.append("namespaces left: %s" % left)
        if problems:
            print("net_bench --quick: " + "; ".join(problems), file=sys.stderr)
            sys.exit(1)
        print("net_bench --quick: outputs present and sane")


if __name__ == "__main__":
    main()
