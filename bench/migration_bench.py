#!/usr/bin/python3
"""The migration benchmark of issue 4: the vendor white-paper matrix at this machine's
scale, vmshift against QEMU in the same run, between two network-namespace hosts.

For each link (unshaped, 40 Gbit/s, 10 Gbit/s) it measures the iperf3 ceiling with the
same stream count, then migrates, with vmshift and with QEMU (TCG, same guest ELF, same
memory image through QEMU's loader device):
  idle       memory never written (also as one 16 GiB VM)
  once       random, incompressible memory allocated once (the guest only reads it)
  continuous random memory allocated once, then dirtied by the guest continuously, at the
             same rate under both VMMs (--continuous-rate pages/s, shared by the eight
             small VMs)
each as one large VM and as eight VMs migrated at once. QEMU runs each cell twice, with
plain pre-copy (one connection) and with multifd (the same stream count as vmshift, zstd
where vmshift compresses); the faster of the two is "QEMU's best" and the ratio is taken
against it. It prints the white paper's columns (BW Gbit/s, time s, data Gbit) plus
downtime and CPU seconds per GB moved on each side, the ratio vmshift/QEMU per cell and
vmshift's fraction of the ceiling, writes results.json, results.csv and table.md, and
draws PNG plots with gnuplot.

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


def guest_rate(case, args):
    """The continuous workload runs at the same capped rate under both VMMs: uncapped, QEMU's
    TCG runs it 20-30x faster (3.5-5.5 M pages/s) than this machine's KVM instruction
    emulator (~0.15 M), and the two would not be moving the same work. The eight small VMs
    share the rate of the one large VM."""
    return args.continuous_rate // case["vms"] if case["workload"] == "continuous" else 0


def guest_cmdline(workload, mem, fill, rate):
    start, size = qemu_peer.qemu_workload_range(size_bytes(mem))
    return ("workload=%s start=0x%x size=0x%x rate=%d fill=%s seed=1 cpus=1"
            % (workload, start, size, rate, fill))


def run_vmshift(case, hosts, args, barrier=None):
    workload, fill = case["workload"], case["fill"]
    return vmshift_peer.vmshift_migrate(
        mem=case["mem"], workload=workload, fill=fill, rate=guest_rate(case, args),
        streams=args.streams, compress=args.compress, src_prefix=hosts.exec_args("a"),
        dst_prefix=hosts.exec_args("b"), dst_addr=hosts.addr("b"), settle_s=args.settle,
        timeout_s=args.timeout, start_barrier=barrier, security=SECURITY[args.tls])


SECURITY = {"none": "insecure", "psk": "psk", "cert": "cert"}


def qemu_runner(multifd):
    """QEMU with plain pre-copy over one connection, or multifd with vmshift's stream count
    (and zstd when vmshift compresses)."""
    def run_qemu(case, hosts, args, barrier=None):
        image = image_for(case["mem"], args.cache) if case["fill"] == "random" else None
        qc = {"none": "none", "lz4": "zstd", "zstd": "zstd", "auto": "zstd"}[args.compress]
        r = qemu_peer.qemu_migrate(
            mem=case["mem"], cmdline=guest_cmdline(case["workload"], case["mem"], case["fill"],
                                                   guest_rate(case, args)),
            timeout_s=args.timeout,
            image=image, streams=args.streams if multifd else 1, multifd=multifd,
            compress=qc if multifd else "none", src_prefix=hosts.exec_args("a"),
            dst_prefix=hosts.exec_args("b"), dst_addr=hosts.addr("b"), settle_s=args.settle,
            start_barrier=barrier)
        r["config"] = ("multifd %d%s" % (args.streams, " zstd" if qc != "none" else "")
                       if multifd else "plain")
        return r
    return run_qemu


def qemu_best(case, hosts, args):
    """Both QEMU configurations; the faster completed one, with the other kept beside it."""
    runs = [run_group(qemu_runner(mf), case, hosts, args) for mf in (False, True)]
    done = [r for r in runs if r.get("status") == "completed"]
    best = dict(min(done, key=lambda r: r["time_s"]) if done else runs[-1])
    best["configs"] = {r.get("config", "?"): {k: r.get(k) for k in ("status", "time_s",
                                                                     "downtime_ms", "error")}
                       for r in runs}
    return best


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
        return {"status": "failed", "error": "; ".join(errors),
                "config": (results[0] or {}).get("config") if results else None}
    try:
        wall = (max(r["t0_mono"] + r["total_time_ms"] / 1e3 for r in results)
                - min(r["t0_mono"] for r in results))
    except (KeyError, TypeError):    # a migration that did not finish has no total time
        wall = time.monotonic() - t0
    return summarize(results, wall)


def summarize(results, wall_s):
    ok = all(r.get("status") == "completed" for r in results)
    if not ok:   # a migration that failed or timed out has no times to sum
        return {"status": "failed", "vms": len(results), "config": results[0].get("config"),
                "error": "; ".join("%s: %s" % (r.get("status"), r.get("error"))
                                   for r in results if r.get("status") != "completed")}
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
        "config": results[0].get("config"),
    }
    gb = data / 1e9
    out["cpu_src_s_per_gb"] = out["cpu_src_s"] / gb if gb else None
    out["cpu_dst_s_per_gb"] = out["cpu_dst_s"] / gb if gb else None
    return out


def host_memory_setup():
    """What decides the cost of first-touching guest RAM on this host (see bench/run.sh)."""
    def read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None
    return {"shmem_thp": read("/sys/kernel/mm/transparent_hugepage/shmem_enabled"),
            "page_reporting_order": read("/sys/module/page_reporting/parameters/"
                                         "page_reporting_order")}


def cases_for(args):
    big, small, n = ("256M", "64M", 2) if args.quick else (args.big, args.small, 8)
    cases = []
    for workload, fill in (("idle", "none"), ("once", "random"), ("continuous", "random")):
        cases.append({"name": "%s-1x%s" % (workload, big), "workload": workload, "fill": fill,
                      "mem": big, "vms": 1})
        cases.append({"name": "%s-%dx%s" % (workload, n, small), "workload": workload,
                      "fill": fill, "mem": small, "vms": n})
    # The idle giant: never-touched memory must cost nothing to move.
    giant = "1G" if args.quick else args.idle_big
    cases.insert(2, {"name": "idle-1x%s" % giant, "workload": "idle", "fill": "none",
                     "mem": giant, "vms": 1})
    return cases


def cpu_cell(r):
    """CPU seconds per GB moved, source / destination (total seconds when little moved)."""
    if r.get("status") != "completed":
        return "-"
    if r.get("data_gbit", 0) < 8:     # under 1 GB: per-GB figures would be noise
        return "%.2f / %.2f s" % (r["cpu_src_s"], r["cpu_dst_s"])
    return "%.2f / %.2f" % (r["cpu_src_s_per_gb"], r["cpu_dst_s_per_gb"])


def fmt_row(link, case, v, q, ceiling):
    def cell(r, k, f):
        return f % r[k] if r and r.get("status") == "completed" else "-"
    ratio = (v["time_s"] / q["time_s"]) if (v.get("status") == q.get("status") == "completed"
                                             and q["time_s"]) else None
    frac = v["bw_gbit"] / ceiling if v.get("status") == "completed" and ceiling else None
    return ("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        link, case["name"], cell(v, "bw_gbit", "%.1f"), cell(v, "time_s", "%.2f"),
        cell(v, "data_gbit", "%.1f"), cell(v, "downtime_ms", "%.0f"),
        cpu_cell(v), cell(q, "bw_gbit", "%.1f"),
        cell(q, "time_s", "%.2f") + (" (%s)" % q["config"] if q.get("config") else ""),
        cell(q, "downtime_ms", "%.0f"), cpu_cell(q),
        "%.2f" % ratio if ratio else "-", "%.0f%%" % (frac * 100) if frac else "-"))


HEADER = ("| link | case | vmshift BW Gbit/s | time s | data Gbit | downtime ms "
          "| CPU s/GB src / dst | QEMU best BW Gbit/s | time s (config) | downtime ms "
          "| CPU s/GB src / dst | time ratio vmshift/QEMU | vmshift / iperf3 ceiling |\n|"
          + "---|" * 13)


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
    ap.add_argument("--idle-big", default="16G", help="memory of the idle giant VM")
    ap.add_argument("--links", default=None, help="comma list of unshaped,40gbit,10gbit")
    ap.add_argument("--only", default=None, help="run only cases whose name contains this")
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--continuous-rate", type=int, default=100000,
                    help="pages/s the continuous workload dirties under both VMMs (the eight "
                         "small VMs together)")
    ap.add_argument("--timeout", type=float, default=180,
                    help="seconds one migration may take before it counts as failed")
    ap.add_argument("--no-qemu", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    args.cache = os.path.join(args.out, "images")
    os.makedirs(args.cache, exist_ok=True)
    links = (args.links or ("unshaped,10gbit" if args.quick else "unshaped,40gbit,10gbit")).split(",")
    cases = [c for c in cases_for(args) if not args.only or args.only in c["name"]]
    netlab.install_sigterm_handler()
    results = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "streams": args.streams,
               "compress": args.compress, "tls": args.tls,
               "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "host_memory": host_memory_setup(), "links": {}}
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
                q = {"status": "skipped"} if args.no_qemu else qemu_best(case, hosts, args)
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
        f.write("Host memory: %s\n\n" % results["host_memory"])
        f.write(HEADER + "\n" + "\n".join(rows) + "\n")
    plots.write_all(results, args.out)
    print("results, table and plots in %s" % args.out)
    failed = [(l, c, w) for l, lr in results["links"].items() for c, cr in lr["cases"].items()
              for w, r in cr.items() if r.get("status") not in ("completed", "skipped")]
    return 1 if any(w == "vmshift" for _, _, w in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
