#!/usr/bin/python3
"""Convergence benchmark (issue 5): a guest that dirties memory continuously, migrated
between two network-namespace hosts over links shaped with tc, with vmshift's throttle
next to QEMU's auto-converge in the same run.

For each link it measures the iperf3 ceiling, then runs, in this order:
  vmshift-ring   vmshift --converge throttle, KVM dirty ring: per-vCPU dirty limits
  vmshift-sleep  vmshift --converge throttle, dirty-log bitmap: every vCPU sleeps a share
  qemu-ac        QEMU (TCG) with the auto-converge capability (20% +10% per step, <= 99%)
  vmshift-none   (only with --plain) plain pre-copy, --max-passes 8: "not converging"
and reports total time, downtime, the guest's stall, the data sent, the passes and the
deepest throttle. Guest stall is measured the same way for both VMMs, from the workload
guest's own telemetry (pages written, all vCPUs; vmshift: its control socket, QEMU:
pmemsave of the telemetry page every 0.1 s): the guest's rate in the second before the
migration is its baseline; lost progress = the sum over 0.1 s intervals, from the start
of the migration to the switchover, of (1 - rate / baseline) * interval; the table's
"stall" is that plus the downtime (the guest-visible pause), the figure the vMotion
write-up calls I/O halt time.

    bench/converge_bench.py [--links 10gbit,40gbit] [--mem 1G] [--vcpus 2] [--rate PAGES]
                            [--cases vmshift-ring,vmshift-sleep,qemu-ac] [--plain]

Dirty rates: the same guest ELF runs ~10x faster under QEMU's TCG (about 1M pages/s on one
vCPU here) than under this host's KVM (about 150k pages/s per vCPU, less while dirty
logging and sending compete for the 2 cores); --rate caps both at the same rate.

Writes table.md, results.json, results.csv and converge-*.png into bench/results/DATE-converge/.
Absolute times on a shared 2-core machine are noise; compare within one run.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import netlab        # noqa: E402
import plots         # noqa: E402
import qemu_peer     # noqa: E402
import vmshift_peer  # noqa: E402

ROOT = os.path.dirname(HERE)
GUEST = os.environ.get("VMSHIFT_GUEST") or os.path.join(ROOT, "build", "guest", "vmshift-guest.elf")


def lost_progress(samples, baseline, until_s):
    """[(t_s, cumulative pages)] -> seconds of guest work lost before until_s."""
    lost = 0.0
    for (t0, p0), (t1, p1) in zip(samples, samples[1:]):
        if t1 > until_s or t1 <= t0 or baseline <= 0:
            break
        frac = (p1 - p0) / (baseline * (t1 - t0))
        lost += max(0.0, 1.0 - frac) * (t1 - t0)
    return lost


def run_vmshift(case, hosts, a):
    ring = case == "vmshift-ring"
    migrate_args = {"converge": "none" if case == "vmshift-none" else "throttle",
                    "max_passes": 8 if case == "vmshift-none" else 30}
    r = vmshift_peer.vmshift_migrate(
        mem=a.mem, vcpus=a.vcpus, workload="continuous", fill="none", streams=a.streams,
        rate=a.rate,
        src_prefix=hosts.exec_args("a"), dst_prefix=hosts.exec_args("b"),
        dst_addr=hosts.addr("b"), settle_s=a.settle, timeout_s=a.timeout,
        run_args=["--dirty-ring", "65536"] if ring else [], migrate_args=migrate_args,
        guest_samples=True)
    rep = r.get("report", {})
    thr = rep.get("throttle", {})
    sw = (r.get("switchover_at_ms") or 0) / 1e3 or r.get("wall_s", 0)
    lost = lost_progress(r.get("guest_samples", []), r.get("guest_baseline_pps", 0), sw)
    passes = rep.get("passes", [])
    return {
        "status": r.get("status"), "error": r.get("error"),
        "total_s": (r.get("total_time_ms") or 0) / 1e3,
        "downtime_ms": r.get("downtime_ms") or 0,
        "lost_s": lost,
        "stall_s": lost + (r.get("downtime_ms") or 0) / 1e3 if r.get("status") == "completed" else lost,
        "data_gb": (r.get("transferred_bytes") or 0) / 1e9,
        "passes": r.get("iterations"),
        "throttle_max_pct": thr.get("max-percent", 0),
        "throttle_mode": thr.get("mode"),
        "guest_baseline_pps": r.get("guest_baseline_pps"),
        "dirty_pps_pass1": passes[1].get("dirty-pages-rate") if len(passes) > 1 else None,
        "mbps": r.get("mbps"),
        "vmshift_guest_stall_ms": thr.get("guest-stall-time"),
        "throttle_samples": thr.get("percent-samples", []),
        "guest_samples": r.get("guest_samples", []),
    }


def run_qemu(hosts, a):
    start, size = qemu_peer.qemu_workload_range(a.mem)
    cmdline = ("workload=continuous start=0x%x size=0x%x rate=%d fill=none seed=1 cpus=1"
               % (start, size, a.rate))
    r = qemu_peer.qemu_migrate(
        mem=a.mem, cmdline=cmdline, guest_elf=GUEST, streams=a.streams,
        multifd=a.streams > 1, src_prefix=hosts.exec_args("a"),
        dst_prefix=hosts.exec_args("b"), dst_addr=hosts.addr("b"), settle_s=a.settle,
        timeout_s=a.timeout, capabilities={"auto-converge": True}, guest_samples=True)
    samples = r.get("samples", [])
    gs = [(s["t_s"], s["guest_pages"]) for s in samples if "guest_pages" in s]
    sw = ((r.get("switchover_at_ms") or 0) / 1e3 or (r.get("total_time_ms") or 0) / 1e3
          or (gs[-1][0] if gs else 0))
    lost = lost_progress(gs, r.get("guest_baseline_pps") or 0, sw)
    down = r.get("blackout_ms") or r.get("downtime_ms") or 0
    return {
        "status": r.get("status"), "error": r.get("error"),
        "total_s": (r.get("total_time_ms") or 0) / 1e3,
        "downtime_ms": down,
        "lost_s": lost,
        "stall_s": lost + down / 1e3 if r.get("status") == "completed" else lost,
        "data_gb": (r.get("transferred_bytes") or 0) / 1e9,
        "passes": r.get("iterations"),
        "throttle_max_pct": max([s.get("throttle") or 0 for s in samples] or [0]),
        "throttle_mode": "auto-converge",
        "guest_baseline_pps": r.get("guest_baseline_pps"),
        "mbps": r.get("mbps"),
        "throttle_samples": [s.get("throttle") or 0 for s in samples],
        "guest_samples": gs,
    }


HEADER = ("| link | iperf3 Gbit/s | case | status | total s | downtime ms | guest stall s "
          "(lost + downtime) | data GB | passes | deepest throttle % | guest pages/s before "
          "| total vs QEMU | stall vs QEMU |\n|" + "---|" * 13)


def row(link, ceiling, case, r, q):
    ok = r.get("status") == "completed"
    qok = q is not None and q.get("status") == "completed"

    def ratio(k):
        return "%.2f" % (r[k] / q[k]) if ok and qok and q[k] else "-"
    return "| %s | %.1f | %s | %s | %s | %s | %s | %.2f | %s | %.0f | %.0f | %s | %s |" % (
        link, ceiling, case, r.get("status"), "%.2f" % r["total_s"] if ok else "-",
        "%.0f" % r["downtime_ms"] if ok else "-",
        "%.2f (%.2f + %.2f)" % (r["stall_s"], r["lost_s"], r["downtime_ms"] / 1e3) if ok else
        "%.2f lost" % r["lost_s"], r["data_gb"], r.get("passes"), r.get("throttle_max_pct") or 0,
        r.get("guest_baseline_pps") or 0, ratio("total_s") if case != "qemu-ac" else "-",
        ratio("stall_s") if case != "qemu-ac" else "-")


def plot(results, out):
    """Guest progress (relative to its baseline) and throttle over time, per link."""
    for link, lr in results["links"].items():
        files = []
        for case, r in lr["cases"].items():
            base = r.get("guest_baseline_pps") or 0
            gs = r.get("guest_samples") or []
            if not gs or base <= 0:
                continue
            path = os.path.join(out, "progress-%s-%s.dat" % (link, case))
            with open(path, "w") as f:   # over 1 s windows: the telemetry comes in bursts
                for (t0, p0), (t1, p1) in zip(gs, gs[10:]):
                    if t1 > t0:
                        f.write("%.3f %.1f\n" % (t1, 100.0 * (p1 - p0) / (base * (t1 - t0))))
            files.append((os.path.basename(path), case))
        if not files:
            continue
        lines = ", ".join('"%s" using 1:2 with lines lw 2 title "%s"' % (f, c) for f, c in files)
        script = """
set terminal pngcairo size 1000,500 font ",10"
set output "converge-%s.png"
set title "Guest progress during migration, link %s (%% of its speed before, over 1 s; 100 = unhindered)"
set xlabel "seconds since the migration started"
set ylabel "guest progress %%"
set yrange [0:150]
set grid
set key top right
plot %s
""" % (link, link, lines)
        plots.gnuplot(script, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--links", default="10gbit,40gbit")
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--vcpus", type=int, default=2, help="vmshift vCPUs (QEMU runs one)")
    ap.add_argument("--rate", type=int, default=0,
                    help="cap both guests at this many pages/s (0: full speed, which differs: "
                    "QEMU's TCG runs the guest ~10x faster than this host's KVM)")
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--cases", default="vmshift-ring,vmshift-sleep,qemu-ac")
    ap.add_argument("--plain", action="store_true", help="also plain vmshift pre-copy")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  time.strftime("%Y%m%d-%H%M%S") + "-converge"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cases = [c for c in a.cases.split(",") if c] + (["vmshift-none"] if a.plain else [])
    netlab.install_sigterm_handler()
    results = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "mem": a.mem,
               "rate": a.rate,
               "vmshift_vcpus": a.vcpus, "qemu_vcpus": 1, "streams": a.streams,
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "links": {}}
    lines = [HEADER]
    print(HEADER, flush=True)
    with netlab.Hosts() as hosts:
        for link in a.links.split(","):
            hosts.reshape(None if link == "unshaped" else link)
            ceiling = netlab.iperf_ceiling(hosts, a.streams, seconds=3)
            lr = results["links"][link] = {"iperf3_gbit": ceiling, "cases": {}}
            for case in cases:
                try:
                    r = run_qemu(hosts, a) if case == "qemu-ac" else run_vmshift(case, hosts, a)
                except Exception as e:  # one failed case must not lose the others
                    r = {"status": "error", "error": repr(e), "total_s": 0, "downtime_ms": 0,
                         "lost_s": 0, "stall_s": 0, "data_gb": 0}
                lr["cases"][case] = r
                if r.get("status") != "completed":
                    print("  %s %s: %s" % (link, case, r.get("error")), flush=True)
            q = lr["cases"].get("qemu-ac")
            for case in cases:
                lines.append(row(link, ceiling, case, lr["cases"][case], q))
                print(lines[-1], flush=True)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(a.out, "results.csv"), "w") as f:
        f.write("link,iperf3_gbit,case,status,total_s,downtime_ms,lost_s,stall_s,data_gb,passes,"
                "throttle_max_pct,guest_baseline_pps\n")
        for link, lr in results["links"].items():
            for case, r in lr["cases"].items():
                f.write("%s,%.2f,%s,%s,%.3f,%.1f,%.3f,%.3f,%.3f,%s,%.0f,%.0f\n" % (
                    link, lr["iperf3_gbit"], case, r.get("status"), r["total_s"],
                    r["downtime_ms"], r["lost_s"], r["stall_s"], r["data_gb"], r.get("passes"),
                    r.get("throttle_max_pct") or 0, r.get("guest_baseline_pps") or 0))
    plot(results, a.out)
    print("results in %s" % a.out)


if __name__ == "__main__":
    main()
