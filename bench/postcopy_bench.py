#!/usr/bin/python3
"""Post-copy benchmark (issue 5): vmshift post-copy next to QEMU post-copy, in the same
run, on the same guest ELF and links, for the continuous workload (the guest dirties its
whole range over and over).

For each link (shaped to 10 and 40 Gbit/s with tbf between two network-namespace hosts;
the iperf3 ceiling is measured first) it migrates a VM running the continuous workload
and switches to post-copy `--postcopy-after` seconds after the migration starts:
  vmshift   `start-postcopy` (also with one stream: urgent pages then share the
            background stream, to show head-of-line blocking)
  QEMU      capability postcopy-ram on both sides, `migrate-start-postcopy` (TCG; plain
            migration stream: QEMU 7.2 cannot combine post-copy with multifd)
and reports total time, downtime (source pause to destination run), guest stall (the
progress the guest lost: elapsed time minus pages written / the guest's own rate before
the migration, from the workload counters in guest memory), bytes transferred, and for
vmshift the post-copy details (pages requested on demand, fault wait). Writes table.md,
results.json and postcopy.png (gnuplot) into the output directory.

    bench/postcopy_bench.py [--mem 1G] [--links 10gbit,40gbit] [--reps 3] [--out DIR]
                            [--no-qemu]

With --reps N every case runs N times (interleaved) and the table shows medians, with
the range of total time and guest stall; every run is in results.json.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import netlab        # noqa: E402
import plots         # noqa: E402
import qemu_peer     # noqa: E402
import vmshift_peer  # noqa: E402

ROOT = os.path.dirname(HERE)


def guest_stall_s(r):
    """Seconds of guest work lost between just before the migration and the last sample
    on the destination: elapsed time minus the pages written meanwhile at the guest's own
    rate from before the migration."""
    prog, rate = r.get("guest_progress") or [], r.get("guest_rate_pages_s") or 0
    if len(prog) < 2 or rate <= 0:
        return None
    (t0, w0), (t1, w1) = prog[0], prog[-1]
    return max(0.0, (t1 - t0) - (w1 - w0) / rate)


def run_vmshift(args, hosts, streams):
    r = vmshift_peer.vmshift_migrate(
        mem=args.mem, vcpus=1, workload="continuous", fill="none", streams=streams,
        src_prefix=hosts.exec_args("a"), dst_prefix=hosts.exec_args("b"),
        dst_addr=hosts.addr("b"), settle_s=args.settle, postcopy_after_s=args.postcopy_after,
        after_s=args.after)
    pc = (r.get("report") or {}).get("postcopy") or {}
    return {"impl": "vmshift %d stream%s" % (streams, "s" if streams > 1 else ""),
            "status": r.get("status"), "error": r.get("error"),
            "total_s": (r.get("total_time_ms") or 0) / 1e3, "downtime_ms": r.get("downtime_ms"),
            "stall_s": guest_stall_s(r), "bytes": r.get("transferred_bytes"),
            "postcopy_s": (pc.get("postcopy-time") or 0) / 1e3,
            "requested": pc.get("requested-pages"), "fault_avg_ms": pc.get("fault-wait-avg"),
            "fault_max_ms": pc.get("fault-wait-max"), "missing": pc.get("missing-pages"),
            "guest_errors": r.get("guest_errors"), "rate": r.get("guest_rate_pages_s"),
            "progress": r.get("guest_progress")}


def run_qemu(args, hosts):
    start, size = qemu_peer.qemu_workload_range(qemu_peer.parse_size(args.mem))
    cmdline = ("workload=continuous start=0x%x size=0x%x rate=0 fill=none seed=1 cpus=1"
               % (start, size))
    r = qemu_peer.qemu_migrate(
        mem=args.mem, cmdline=cmdline, streams=1, src_prefix=hosts.exec_args("a"),
        dst_prefix=hosts.exec_args("b"), dst_addr=hosts.addr("b"), settle_s=args.settle,
        capabilities={"postcopy-ram": True}, postcopy_after_s=args.postcopy_after,
        verify_passes=1, wire_dev=hosts.dev["a"] if hasattr(hosts, "dev") else None)
    return {"impl": "QEMU", "status": r.get("status"), "error": r.get("error"),
            "total_s": (r.get("total_time_ms") or 0) / 1e3,
            "downtime_ms": r.get("blackout_ms") or r.get("downtime_ms"),
            "stall_s": guest_stall_s(r), "bytes": r.get("transferred_bytes"),
            "postcopy_s": None, "requested": (r.get("query_migrate") or {}).get("ram", {})
            .get("postcopy-requests"), "fault_avg_ms": None, "fault_max_ms": None,
            "missing": None, "guest_errors": r.get("guest_errors"),
            "rate": r.get("guest_rate_pages_s"), "progress": r.get("guest_progress")}


def median_of(runs):
    """One row from several runs of a case: medians; total and stall also as min-max."""
    ok = [r for r in runs if r.get("status") == "completed"]
    if not ok:
        return dict(runs[0], status=runs[0].get("status") or "failed")
    out = dict(ok[0], reps=len(runs), completed=len(ok))
    for k in ("total_s", "downtime_ms", "stall_s", "bytes", "postcopy_s", "requested",
              "fault_avg_ms", "fault_max_ms"):
        vals = [r[k] for r in ok if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
        out[k + "_range"] = (min(vals), max(vals)) if vals else None
    out["guest_errors"] = sum(r.get("guest_errors") or 0 for r in ok)
    return out


def fmt_range(r, k, f):
    v, rg = r.get(k), r.get(k + "_range")
    if v is None:
        return "-"
    if not rg or r.get("reps", 1) < 2:
        return f % v
    return (f + " (" + f + "-" + f + ")") % (v, rg[0], rg[1])


def fmt(v, f):
    return f % v if v is not None else "-"


HEADER = ("| link | iperf3 Gbit/s | impl | runs ok | total s | downtime ms | guest stall s | "
          "transferred MiB | post-copy s | pages requested | fault wait avg / max ms | "
          "guest errors | time ratio to QEMU |\n|" + "---|" * 13)


def row(link, ceiling, r, qemu):
    ok = r.get("status") == "completed"
    ratio = (r["total_s"] / qemu["total_s"] if ok and qemu and qemu.get("status") ==
             "completed" and qemu.get("total_s") else None)
    if not ok:
        return "| %s | %.1f | %s | failed: %s |" % (link, ceiling, r["impl"], r.get("error"))
    return "| %s | %.1f | %s | %s/%s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |" % (
        link, ceiling, r["impl"], r.get("completed", 1), r.get("reps", 1),
        fmt_range(r, "total_s", "%.2f"), fmt(r["downtime_ms"], "%.1f"),
        fmt_range(r, "stall_s", "%.2f"), fmt((r["bytes"] or 0) / 1048576.0, "%.0f"),
        fmt(r["postcopy_s"], "%.2f"), fmt(r["requested"], "%d"),
        fmt(r["fault_avg_ms"], "%.2f"), fmt(r["fault_max_ms"], "%.1f"),
        fmt(r["guest_errors"], "%d"), fmt(ratio, "%.2f"))


def plot(results, out):
    """Total time, downtime and guest stall per link and implementation (gnuplot)."""
    dat = os.path.join(out, "postcopy.dat")
    with open(dat, "w") as f:
        f.write("# label total_s downtime_s stall_s\n")
        for link, lr in results["links"].items():
            for r in lr["runs"]:
                if r.get("status") == "completed":
                    f.write('"%s\\n%s" %.3f %.3f %.3f\n' % (
                        link, r["impl"], r["total_s"], (r["downtime_ms"] or 0) / 1e3,
                        r["stall_s"] or 0))
    script = """set terminal pngcairo size 1100,500
set output '%s'
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set ylabel 'seconds'
set title 'post-copy, continuous workload, %s guest: vmshift vs QEMU (same run)'
set xtics font ',9'
set key outside right top
plot '%s' using 2:xtic(1) title 'total time', '' using 3 title 'downtime', \\
     '' using 4 title 'guest stall'
""" % (os.path.join(out, "postcopy.png"), results["mem"], dat)
    try:
        plots.gnuplot(script, out)
    except RuntimeError as e:
        print(e, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--links", default="10gbit,40gbit")
    ap.add_argument("--postcopy-after", type=float, default=0.5,
                    help="seconds after the start of the migration to switch to post-copy")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds the guest runs before the migration (its rate is measured)")
    ap.add_argument("--after", type=float, default=2.0,
                    help="seconds the destination guest is watched after the migration")
    ap.add_argument("--reps", type=int, default=1, help="runs of every case (medians)")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  "postcopy-" + time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    netlab.install_sigterm_handler()
    results = {"mem": args.mem, "cpus": os.cpu_count(), "postcopy_after_s": args.postcopy_after,
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "links": {}}
    rows = []
    print(HEADER, flush=True)
    with netlab.Hosts() as hosts:
        for link in args.links.split(","):
            hosts.reshape(None if link == "unshaped" else link)
            ceiling = netlab.iperf_ceiling(hosts, 1, seconds=3)
            cases = [lambda: run_vmshift(args, hosts, 2), lambda: run_vmshift(args, hosts, 1)]
            if not args.no_qemu:
                cases.append(lambda: run_qemu(args, hosts))
            all_runs = [[] for _ in cases]
            for _ in range(args.reps):          # interleaved: drifting load hits all alike
                for i, case in enumerate(cases):
                    all_runs[i].append(case())
            runs = [median_of(r) for r in all_runs]
            qemu = None if args.no_qemu else runs[-1]
            results["links"][link] = {"iperf3_gbit": ceiling, "runs": runs,
                                      "all_runs": all_runs}
            for r in runs:
                rows.append(row(link, ceiling, r, qemu))
                print(rows[-1], flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("# Post-copy benchmark, %s, %d CPUs, %s guest, continuous workload, switch "
                "to post-copy %.1f s after the start, median of %d run(s)\n\n"
                % (results["started"], results["cpus"], args.mem, args.postcopy_after,
                   args.reps))
        f.write(HEADER + "\n" + "\n".join(rows) + "\n")
    plot(results, args.out)
    print("results, table and plot in %s" % args.out)
    bad = [r for lr in results["links"].values() for r in lr["runs"]
           if r["impl"].startswith("vmshift") and r.get("status") != "completed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
