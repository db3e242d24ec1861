#!/usr/bin/python3
"""The migration benchmark of issue 4: the vendor white-paper matrix at this machine's
scale, vmshift against QEMU in the same run, between two network-namespace hosts.

For each link (unshaped, 40 Gbit/s, 10 Gbit/s) it measures the iperf3 ceiling with the
same stream count, then migrates, with vmshift and with QEMU (TCG, same guest ELF, same
memory image through QEMU's loader device, multifd with the same stream count):
  idle       memory never written
  once       random, incompressible memory allocated once (the guest only reads it)
  continuous the guest dirties memory continuously
each as one large VM and as eight VMs migrated at once. It prints the white paper's
columns (BW Gbit/s, time s, data Gbit) plus downtime and CPU per side, the ratio
vmshift/QEMU per cell and vmshift's fraction of the ceiling, writes results.json,
results.csv and table.md, and draws PNG plots with gnuplot.

    bench/run.sh [--quick] [--out DIR] [--streams N] [--compress none|lz4|zstd|auto]
                 [--tls none|psk|cert]

vmshift runs with --insecure unless --tls says otherwise, like QEMU's plain tcp: migration
it is compared with; bench/tls_bench.py measures what TLS costs.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import netlab        # noqa: E402
import plots         # noqa: E402
import qemu_peer     # noqa: E402
import vmshift_peer  # noqa: E402

ROOT = os.path.dirname(HERE)
VMSHIFT = vmshift_peer.VMSHIFT
WORK_START = 0x400000


def size_bytes(s):
    return qemu_peer.parse_size(s)


def image_for(mem, cache):
    """The --fill random image of a VM of this size (what vmshift writes from 4 MiB)."""
    path = os.path.join(cache, "random-%s.img" % mem)
    size = size_bytes(mem) - WORK_START
    if not os.path.exists(path) or os.path.getsize(path) != size:
        subprocess.run([VMSHIFT, "fill-image", "--size", str(size), "--out", path,
                        "--fill", "random", "--seed", "1"], check=True)
    return path


def guest_cmdline(workload, mem, fill):
    start, size = qemu_peer.qemu_workload_range(size_bytes(mem))
    return ("workload=%s start=0x%x size=0x%x rate=0 fill=%s seed=1 cpus=1"
            % (workload, start, size, fill))


def run_vmshift(case, hosts, args, barrier=None):
    workload, fill = case["workload"], case["fill"]
    return vmshift_peer.vmshift_migrate(
        mem=case["mem"], workload=workload, fill=fill, streams=args.streams,
        compress=args.compress, src_prefix=hosts.exec_args("a"),
        dst_prefix=hosts.exec_args("b"), dst_addr=hosts.addr("b"), settle_s=args.settle,
        start_barrier=barrier, security=SECURITY[args.tls])


SECURITY = {"none": "insecure", "psk": "psk", "cert": "cert"}


def run_qemu(case, hosts, args, barrier=None):
    image = image_for(case["mem"], args.cache) if case["fill"] == "random" else None
    qc = {"none": "none", "lz4": "zstd", "zstd": "zstd", "auto": "zstd"}[args.compress]
    return qemu_peer.qemu_migrate(
        mem=case["mem"], cmdline=guest_cmdline(case["workload"], case["mem"], case["fill"]),
        image=image, streams=args.streams, multifd=args.streams > 1 or qc != "none",
        compress=qc, src_prefix=hosts.exec_args("a"), dst_prefix=hosts.exec_args("b"),
        dst_addr=hosts.addr("b"), settle_s=args.settle, start_barrier=barrier)


def run_group(fn, case, hosts, args):
    """case["vms"] migrations at once. The drain time runs from the first migration's start
    to the last one's end, each taken from the VMM's own total time (not from when this
    script noticed, which would add polling and the guest checks afterwards)."""
    n = case["vms"]
    if n == 1:
        return summarize([fn(case, hosts, args)], None)
    barrier = threading.Barrier(n + 1)
    results, errors = [None] * n, []

    def one(i):
        try:
            results[i] = fn(case, hosts, args, barrier)
        except Exception as e:  # one failure must not hang the others
            errors.append(repr(e))
            try:
                barrier.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        barrier.wait(timeout=900)
        t0 = time.monotonic()
    except threading.BrokenBarrierError:
        t0 = time.monotonic()
    for t in threads:
        t.join()
    if errors:
        return {"status": "failed", "error": "; ".join(errors)}
    try:
        wall = (max(r["t0_mono"] + r["total_time_ms"] / 1e3 for r in results)
                - min(r["t0_mono"] for r in results))
    except (KeyError, TypeError):    # a migration that did not finish has no total time
        wall = time.monotonic() - t0
    return summarize(results, wall)


def summarize(results, wall_s):
    ok = all(r.get("status") == "completed" for r in results)
    total_s = wall_s if wall_s is not None else results[0]["total_time_ms"] / 1e3
    data = sum(r.get("transferred_bytes") or 0 for r in results)
    out = {
        "status": "completed" if ok else "failed",
        "error": "; ".join(str(r.get("error")) for r in results if r.get("status") != "completed"),
        "vms": len(results),
        "time_s": total_s,
        "data_gbit": data * 8 / 1e9,
        "bw_gbit": data * 8 / 1e9 / total_s if total_s else 0,
        "downtime_ms": max(r.get("downtime_ms") or 0 for r in results),
        "cpu_src_s": sum(r.get("cpu_src_s") or 0 for r in results),
        "cpu_dst_s": sum(r.get("cpu_dst_s") or 0 for r in results),
        "guest_errors": sum(r.get("guest_errors") or 0 for r in results),
        "samples": results[0].get("samples", []),
        "switchover_s": (results[0].get("switchover_at_ms") or 0) / 1e3,
    }
    return out


def cases_for(args):
    big, small, n = ("256M", "64M", 2) if args.quick else (args.big, args.small, 8)
    cases = []
    for workload, fill in (("idle", "none"), ("once", "random"), ("continuous", "none")):
        cases.append({"name": "%s-1x%s" % (workload, big), "workload": workload, "fill": fill,
                      "mem": big, "vms": 1})
        cases.append({"name": "%s-%dx%s" % (workload, n, small), "workload": workload,
                      "fill": fill, "mem": small, "vms": n})
    return cases


def fmt_row(link, case, v, q, ceiling):
    def cell(r, k, f):
        return f % r[k] if r and r.get("status") == "completed" else "-"
    ratio = (v["time_s"] / q["time_s"]) if (v.get("status") == q.get("status") == "completed"
                                             and q["time_s"]) else None
    frac = v["bw_gbit"] / ceiling if v.get("status") == "completed" and ceiling else None
    return ("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        link, case["name"], cell(v, "bw_gbit", "%.1f"), cell(v, "time_s", "%.2f"),
        cell(v, "data_gbit", "%.1f"), cell(v, "downtime_ms", "%.0f"),
        cell(v, "cpu_src_s", "%.2f") + " / " + cell(v, "cpu_dst_s", "%.2f"),
        cell(q, "bw_gbit", "%.1f"), cell(q, "time_s", "%.2f"), cell(q, "downtime_ms", "%.0f"),
        cell(q, "cpu_src_s", "%.2f") + " / " + cell(q, "cpu_dst_s", "%.2f"),
        "%.2f" % ratio if ratio else "-", "%.0f%%" % (frac * 100) if frac else "-"))


HEADER = ("| link | case | vmshift BW Gbit/s | time s | data Gbit | downtime ms | CPU src/dst s "
          "| QEMU BW Gbit/s | time s | downtime ms | CPU src/dst s | time ratio vmshift/QEMU "
          "| vmshift / iperf3 ceiling |\n|" + "---|" * 13)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small VMs, two links (CI)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  time.strftime("%Y%m%d-%H%M%S")))
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--compress", default="none", choices=("none", "lz4", "zstd", "auto"))
    ap.add_argument("--tls", default="none", choices=("none", "psk", "cert"),
                    help="secure vmshift's migrations (QEMU's stay plain TCP)")
    ap.add_argument("--big", default="4G", help="memory of the one large VM")
    ap.add_argument("--small", default="512M", help="memory of each of the eight VMs")
    ap.add_argument("--links", default=None, help="comma list of unshaped,40gbit,10gbit")
    ap.add_argument("--only", default=None, help="run only cases whose name contains this")
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--no-qemu", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    args.cache = os.path.join(args.out, "images")
    os.makedirs(args.cache, exist_ok=True)
    links = (args.links or ("unshaped,10gbit" if args.quick else "unshaped,40gbit,10gbit")).split(",")
    cases = [c for c in cases_for(args) if not args.only or args.only in c["name"]]
    netlab.install_sigterm_handler()
    results = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "streams": args.streams,
               "compress": args.compress, "tls": args.tls, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "links": {}}
    rows = []
    print(HEADER, flush=True)
    with netlab.Hosts() as hosts:
        for link in links:
            hosts.reshape(None if link == "unshaped" else link)
            ceiling = netlab.iperf_ceiling(hosts, args.streams, seconds=2 if args.quick else 3)
            lr = results["links"][link] = {"iperf3_gbit": ceiling, "cases": {}}
            print("| %s | iperf3 ceiling, %d streams: %.1f Gbit/s |" % (link, args.streams, ceiling),
                  flush=True)
            for case in cases:
                v = run_group(run_vmshift, case, hosts, args)
                q = {"status": "skipped"} if args.no_qemu else run_group(run_qemu, case, hosts, args)
                lr["cases"][case["name"]] = {"vmshift": v, "qemu": q}
                row = fmt_row(link, case, v, q, ceiling)
                rows.append(row)
                print(row, flush=True)
                for who, r in (("vmshift", v), ("qemu", q)):
                    if r.get("status") not in ("completed", "skipped"):
                        print("  %s %s on %s: %s" % (who, case["name"], link, r.get("error")),
                              flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("# Migration benchmark, %s, %d CPUs, %d streams, compress %s, vmshift TLS %s\n\n"
                % (results["started"], results["cpus"], args.streams, args.compress, args.tls))
        f.write("iperf3 ceilings: %s\n\n" % ", ".join(
            "%s %.1f Gbit/s" % (k, v["iperf3_gbit"]) for k, v in results["links"].items()))
        f.write(HEADER + "\n" + "\n".join(rows) + "\n")
    plots.write_all(results, args.out)
    print("results, table and plots in %s" % args.out)
    failed = [(l, c, w) for l, lr in results["links"].items() for c, cr in lr["cases"].items()
              for w, r in cr.items() if r.get("status") not in ("completed", "skipped")]
    return 1 if any(w == "vmshift" for _, _, w in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
