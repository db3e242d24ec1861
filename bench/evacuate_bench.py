#!/usr/bin/python3
"""Host evacuation benchmark (issue 6; `bench/run.sh --evacuate` runs it with the host's
memory set up as for the migration benchmark): the total drain time of N VMs between two
network-namespace hosts, each running vmshiftd, with `vmshift evacuate --parallel 1, 2,
4, 8` and `auto`, and the time to migrate one VM of the same total memory; QEMU (TCG,
same guest; plain pre-copy and multifd with the same stream count, the faster counts)
migrates the same N VMs all at once (no host agent decides a degree) and the one large
VM, in the same run, for the ratios.

The N VMs move back and forth (A -> B with the first degree, B -> A with the next, ...),
so every degree drains the same VMs with the same memory contents. The link is shaped
with tbf (--link), and its iperf3 ceiling is measured first.

    bench/evacuate_bench.py [--vms 8] [--mem 512M] [--big 4G] [--workload once]
                            [--link 10gbit] [--degrees 1,2,4,8,auto] [--streams 2]
                            [--no-qemu] [--quick] [--out DIR]

Writes table.md, results.json, drain-time.png (bars) and bandwidth-over-time.png
(aggregate bandwidth of each drain) into --out (default bench/results/evacuate-DATE).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
import netlab            # noqa: E402
from plots import gnuplot  # noqa: E402
import vmshift_peer      # noqa: E402

ROOT = os.path.dirname(HERE)
VMSHIFT = vmshift_peer.VMSHIFT
VMSHIFTD = os.environ.get("VMSHIFTD_BIN") or os.path.join(os.path.dirname(VMSHIFT), "vmshiftd")
ctl = vmshift_peer.ctl


class Daemon:
    """vmshiftd in one namespace host."""

    def __init__(self, hosts, side, workdir, security):
        self.name = side.upper()
        self.dir = os.path.join(workdir, side)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "host.sock")
        self.log = os.path.join(self.dir, "vmshiftd.log")
        argv = hosts.exec_args(side) + [VMSHIFTD, "--ctl", self.sock, "--name", self.name,
                                        "--state-dir", os.path.join(self.dir, "vms"),
                                        "--migration-addr", hosts.addr(side),
                                        "--vms-die-with-daemon", "--vmshift", VMSHIFT]
        for a in vmshift_peer.security_options(security)[0]:
            argv += ["--receive-opt", a]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("vmshiftd %s did not start: %s" % (self.name,
                                                                      open(self.log).read()))
            time.sleep(0.05)

    def cmd(self, cmd, **args):
        return ctl(self.sock, cmd, timeout=60, **args)

    def stop(self):
        try:
            self.cmd("host-shutdown")
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def start_vms(host, names, mem, workload):
    fill = "none" if workload in ("idle", "continuous") else "random"
    for n in names:
        host.cmd("vm-start", name=n, mem=mem, workload=workload, fill=fill)
    deadline = time.monotonic() + 600
    for n in names:
        while True:
            e = [v for v in host.cmd("vm-list")["vms"] if v["name"] == n][0]
            if e["state"] == "running":
                st = host.cmd("vm-ctl", name=n, **{"vm-cmd": "status"})
                if st.get("guest", {}).get("state") in ("running", "idle"):
                    break
            elif e["state"] != "starting":
                raise RuntimeError("VM %s: %s" % (n, e))
            if time.monotonic() > deadline:
                raise RuntimeError("VM %s did not start its workload" % n)
            time.sleep(0.2)


def forget(host, names):
    for n in names:
        try:
            host.cmd("vm-stop", name=n)
        except vmshift_peer.VmshiftPeerError:
            pass


def evacuate(src, dst, degree, args, outdir, label):
    report = os.path.join(outdir, "evacuate-%s.json" % label)
    argv = [VMSHIFT, "evacuate", "--from", src.sock, "--to", dst.sock, "--parallel", degree,
            "--report", report, "--streams", str(args.streams)]
    for k, v in vmshift_peer.security_options(args.security)[1].items():
        argv += ["--migrate-opt", "%s=%s" % (k, "true" if v is True else v)]
    t0 = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=3600)
    wall = time.monotonic() - t0
    with open(os.path.join(outdir, "evacuate-%s.log" % label), "w") as f:
        f.write(p.stderr + p.stdout)
    r = json.load(open(report)) if os.path.exists(report) else {}
    vms = r.get("vms", [])
    return {
        "label": label, "degree": degree, "exit": p.returncode, "wall_s": wall,
        "status": "completed" if p.returncode == 0 else "failed",
        "error": "" if p.returncode == 0 else (p.stderr.strip().splitlines() or ["?"])[-1],
        "drain_s": r.get("drain-time", 0) / 1000.0,
        "moved": r.get("vms-moved", 0), "vms": len(vms),
        "bytes": r.get("bytes", 0), "mbps": r.get("mbps", 0),
        "downtime_max_ms": max([v.get("downtime", 0) for v in vms] or [0]),
        "vm_time_max_s": max([v.get("total-time", 0) for v in vms] or [0]) / 1000.0,
        "per_vm": [{k: v.get(k) for k in ("name", "result", "total-time", "downtime", "bytes",
                                           "start", "end", "digest-match")} for v in vms],
        "bandwidth": r.get("bandwidth", {}),
        "degree_path": path_of(r.get("samples", {}).get("degree", [])),
    }


def path_of(degrees):
    out = []
    for d in degrees:
        if not out or out[-1] != d:
            out.append(d)
    return out


def run_qemu(args, hosts, n, mem):
    """QEMU: n VMs of mem at once, or one, each with plain pre-copy and with multifd; the
    faster (migration_bench.qemu_best)."""
    import migration_bench
    qargs = types.SimpleNamespace(streams=args.streams, compress="none", settle=1.0,
                                  cache=os.path.join(args.out, "images"))
    os.makedirs(qargs.cache, exist_ok=True)
    case = {"name": "qemu", "workload": args.workload,
            "fill": "none" if args.workload in ("idle", "continuous") else "random",
            "mem": mem, "vms": n}
    r = migration_bench.qemu_best(case, hosts, qargs)
    return {"status": r.get("status"), "error": r.get("error"), "drain_s": r.get("time_s"),
            "bytes": (r.get("data_gbit") or 0) * 1e9 / 8, "mbps": (r.get("bw_gbit") or 0) * 1e3,
            "downtime_max_ms": r.get("downtime_ms"), "config": r.get("config"),
            "configs": r.get("configs")}


def fmt(v, f):
    return f % v if isinstance(v, (int, float)) else "-"


def write_outputs(res, out):
    rows = res["rows"]
    lines = ["# Host evacuation, %s, %s CPUs, link %s (iperf3 %.1f Gbit/s, %d streams)\n" % (
        res["started"], res["cpus"], res["link"], res["iperf3_gbit"], res["streams"]),
        "%d VMs x %s (%s workload) vs 1 VM x %s; vmshift evacuate with %d stream(s) per "
        "migration\n" % (res["nvms"], res["mem"], res["workload"], res["big"], res["streams"]),
        "| case | drain time s | moved | data GiB | aggregate Gbit/s | longest VM s | "
        "max downtime ms | degrees used | vs QEMU |", "|" + "---|" * 9]
    for r in rows:
        ratio = r.get("vs_qemu")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["case"], fmt(r.get("drain_s"), "%.2f"),
            "%s/%s" % (r.get("moved", "-"), r.get("vms", "-")) if "moved" in r else "-",
            fmt((r.get("bytes") or 0) / 2**30, "%.2f"), fmt((r.get("mbps") or 0) / 1e3, "%.2f"),
            fmt(r.get("vm_time_max_s"), "%.2f"), fmt(r.get("downtime_max_ms"), "%.0f"),
            " -> ".join(str(d) for d in r.get("degree_path", [])) or "-",
            fmt(ratio, "%.2f")))
    table = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(table)
    plot(res, out)


def plot(res, out):
    with open(os.path.join(out, "drain.dat"), "w") as f:
        f.write("# case seconds\n")
        for r in res["rows"]:
            f.write('"%s" %s\n' % (r["case"], r["drain_s"] if r.get("status") == "completed"
                                   and r.get("drain_s") else "NaN"))
    gnuplot("""
set terminal pngcairo size 1000,550 font ",10"
set output "drain-time.png"
set title "Drain time: %d x %s vs 1 x %s, link %s (lower is better)"
set ylabel "seconds"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set xtics rotate by -25 scale 0
set grid ytics
set yrange [0:*]
unset key
plot "drain.dat" using 2:xtic(1) linecolor rgb "#3060a0"
""" % (res["nvms"], res["mem"], res["big"], res["link"]), out)
    plots = []
    for r in res["rows"]:
        bw = r.get("bandwidth") or {}
        mbps = bw.get("mbps") or []
        if not mbps:
            continue
        name = "bw-%s.dat" % r["label"]
        step = bw.get("interval-ms", 100) / 1000.0
        with open(os.path.join(out, name), "w") as f:
            f.write("# t_s gbit_s\n")
            for i, v in enumerate(mbps):
                f.write("%.2f %.3f\n" % (i * step, v / 1e3))
        plots.append('"%s" using 1:2 with steps lw 2 title "%s"' % (name, r["case"]))
    if plots:
        gnuplot("""
set terminal pngcairo size 1100,600 font ",10"
set output "bandwidth-over-time.png"
set title "Aggregate migration bandwidth during each drain (100 ms samples)"
set xlabel "seconds since the drain started"
set ylabel "Gbit/s"
set grid
set key outside right
plot %s
""" % ", \\\n     ".join(plots), out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vms", type=int, default=8)
    ap.add_argument("--mem", default="512M", help="memory of each of the VMs")
    ap.add_argument("--big", default=None, help="memory of the one large VM (default: the total)")
    ap.add_argument("--workload", default="once", choices=("idle", "once", "continuous", "verify"))
    ap.add_argument("--link", default="10gbit", help="tc rate, or 'unshaped'")
    ap.add_argument("--degrees", default="1,2,4,8,auto")
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--tls", default="none", choices=("none", "psk", "cert"),
                    help="migration security (none: --insecure, like QEMU's plain tcp)")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="8 x 64M, no QEMU: checks that the drains, the table and the plots work (CI)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  "evacuate-" + time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    if args.quick:
        args.mem, args.no_qemu = "64M", True
    mem_b = vmshift_peer_size(args.mem)
    args.security = "insecure" if args.tls == "none" else args.tls
    args.big = args.big or "%dM" % (mem_b * args.vms >> 20)
    os.makedirs(args.out, exist_ok=True)
    netlab.install_sigterm_handler()
    degrees = args.degrees.split(",")
    names = ["vm%d" % i for i in range(args.vms)]
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
           "link": args.link, "streams": args.streams, "nvms": args.vms, "mem": args.mem,
           "big": args.big, "workload": args.workload, "rows": []}
    work = tempfile.mkdtemp(prefix="vmshift-evac-")
    try:
        with netlab.Hosts(rate=None if args.link == "unshaped" else args.link) as hosts:
            res["iperf3_gbit"] = netlab.iperf_ceiling(hosts, args.streams, seconds=3)
            print("iperf3 ceiling (%d streams): %.1f Gbit/s" % (args.streams, res["iperf3_gbit"]),
                  flush=True)
            a, b = Daemon(hosts, "a", work, args.security), Daemon(hosts, "b", work, args.security)
            try:
                start_vms(a, names, args.mem, args.workload)
                here, there = a, b
                for d in degrees:
                    r = evacuate(here, there, d, args, args.out, "p%s" % d)
                    r["case"] = "%d x %s, --parallel %s" % (args.vms, args.mem, d)
                    res["rows"].append(r)
                    print("  %-28s drain %.2f s, %d/%d moved, degrees %s" % (
                        r["case"], r["drain_s"], r["moved"], r["vms"], r["degree_path"]),
                        flush=True)
                    forget(here, names)
                    here, there = there, here
                forget(here, names)
                for n in names:
                    here.cmd("vm-stop", name=n)
                time.sleep(2)
                forget(here, names)
                start_vms(a, ["big"], args.big, args.workload)
                r = evacuate(a, b, "1", args, args.out, "big")
                r["case"] = "1 x %s" % args.big
                res["rows"].append(r)
                print("  %-28s drain %.2f s" % (r["case"], r["drain_s"]), flush=True)
                b.cmd("vm-stop", name="big")
            finally:
                a.stop()
                b.stop()
            if not args.no_qemu:
                for n, mem, case in ((args.vms, args.mem, "QEMU: %d x %s all at once" % (
                        args.vms, args.mem)), (1, args.big, "QEMU: 1 x %s" % args.big)):
                    try:
                        q = run_qemu(args, hosts, n, mem)
                    except Exception as e:      # still write what was measured
                        q = {"status": "failed", "error": repr(e), "drain_s": None}
                    q.update({"case": "%s (%s)" % (case, q.get("config") or "?"),
                              "label": "qemu-%d" % n})
                    res["rows"].append(q)
                    print("  %-28s %s %.2f s" % (case, q["status"], q["drain_s"] or 0), flush=True)
                qn, q1 = res["rows"][-2], res["rows"][-1]
                for r in res["rows"][:-2]:
                    q = q1 if r["label"] == "big" else qn
                    if r.get("drain_s") and q.get("status") == "completed" and q.get("drain_s"):
                        r["vs_qemu"] = r["drain_s"] / q["drain_s"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_outputs(res, args.out)
    print("results, table and plots in %s" % args.out)
    failed = [r["case"] for r in res["rows"] if r.get("status") != "completed"]
    missing = [f for f in ("table.md", "results.json", "drain-time.png",
                           "bandwidth-over-time.png")
               if not os.path.exists(os.path.join(args.out, f)) or
               (f.endswith(".png") and open(os.path.join(args.out, f), "rb").read(4) != b"\x89PNG")]
    for what, items in (("did not complete", failed), ("missing or not a PNG", missing)):
        if items:
            print("evacuate_bench: %s: %s" % (what, ", ".join(items)), file=sys.stderr)
    return 1 if failed or missing else 0


def vmshift_peer_size(s):
    import qemu_peer
    return qemu_peer.parse_size(s)


if __name__ == "__main__":
    sys.exit(main())
