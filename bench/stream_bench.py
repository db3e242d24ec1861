#!/usr/bin/python3
"""Per-stream efficiency (issue 16): how much one migration stream carries, and what it
costs in CPU on each side, vmshift against QEMU in the same run.

Every migration moves a VM whose RAM holds random (incompressible) data from 4 MiB up
(vmshift: `--fill random`; QEMU: the same bytes through its loader device) over loopback,
plain TCP unless it says TLS. The guest is idle. Each VMM's source process is pinned to
the first half of the cores and its destination to the second (taskset: CPU 0 and CPU 1
on a 2-core host, so one stream's limit shows there); run nothing else. Stream counts:
1, 2, 4, 8, 16 as far as the cores allow (--streams LIST to choose). For each count the
N-sender ceiling: N iperf3 clients and N servers on their own ports at once, pinned like
the VMMs, summed (Debian's iperf3 runs all -P streams in one thread). Configurations:
  vmshift   each stream count (--streams) with guest RAM on each backing, both sides
            (--ram-backing memfd: shmem, pages pwritten into it with 4 KiB pages, the
            only backing before this bench's second version; anon: anonymous memory with
            MADV_HUGEPAGE, as QEMU's); auto, the default, picks one per host (the table
            says which): the ratios against QEMU use that choice; and TLS 1.3 with a PSK
            on the default backing (the TLS/plain ratio)
  QEMU      plain pre-copy, multifd with each stream count (Debian's qemu-system-x86)
Memory states, each a separate table:
  warm      freed memory stays with this machine (page reporting off: page_reporting_order
            raised to 11 for the run) and one unmeasured migration runs first, so the
            destination's first touch finds memory the hypervisor has backed already
  cold      page reporting on (order 9, the kernel's default) and --cold-wait seconds
            (default 8) of quiet before each run, so the memory the last run freed has been
            reported back to the hypervisor and the next first touch is the hypervisor's:
            what a fresh destination pays. A first-touch probe (--probe-mb of anonymous
            memory, touched page by page) before each run shows which case it really was.
Huge pages: --shmem-thp never|advise|host sets /sys/kernel/mm/transparent_hugepage/
shmem_enabled for the run (restored after): vmshift's memfd RAM is shmem and gets 2 MiB
pages only with advise (it asks with MADV_HUGEPAGE); anonymous RAM (vmshift's anon,
QEMU's) follows transparent_hugepage/enabled (madvise here: both ask). Every table says
which.

CPU seconds per GB: utime+stime of each process (vmshift: its report, from
CLOCK_PROCESS_CPUTIME_ID, the same counter as /proc/PID/stat; QEMU: /proc/PID/stat) from
`migrate` to the end, minus the vCPU threads, divided by the GB (1e9 bytes) transferred.
On one host the kernel's loopback TCP receive work partly runs in the sender's context.

    bench/run.sh --streams-bench [--quick] [--mem 1G] [--reps 3] [--out DIR]
                 [--states warm,cold] [--shmem-thp never|advise|host] [--streams 1,2,4]

Prints one table per memory state with the core count, the load average and the page
sizes, each row also as a fraction of its stream count's ceiling; writes results.json,
streams.csv and streams.png (gnuplot: Gbit/s against streams for both VMMs, warm and
cold, and the ceiling) into --out. --quick: a 256 MiB VM, one rep, warm only, one
stream per configuration; it checks that every migration completed and that the tables
and the plot were written with sane figures (not timings).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import netlab        # noqa: E402
import plots         # noqa: E402
import qemu_peer     # noqa: E402
import vmshift_peer  # noqa: E402

VMSHIFT = vmshift_peer.VMSHIFT
WORK_START = 0x400000
THP = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
ANON_THP = "/sys/kernel/mm/transparent_hugepage/enabled"
ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"
CORES = os.cpu_count() or 1
HALF = max(1, CORES // 2)
# The source gets the first half of the cores, the destination the second (CPU 0 and 1 here).
SRC_CPU = "0" if HALF == 1 else "0-%d" % (HALF - 1)
DST_CPU = SRC_CPU if CORES == 1 else (
    "%d" % HALF if CORES - HALF == 1 else "%d-%d" % (HALF, CORES - 1))


def read_setting(path):
    try:
        with open(path) as f:
            s = f.read().strip()
    except OSError:
        return None
    return s[s.index("[") + 1:s.index("]")] if "[" in s else s


def write_setting(path, value):
    try:
        with open(path, "w") as f:
            f.write(str(value))
        return True
    except OSError:
        return False


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def first_touch_gbs(mb):
    """GB/s of faulting in mb MiB of fresh anonymous memory (MADV_POPULATE_WRITE; page by
    page from Python where the kernel lacks it), then freed."""
    import mmap
    n = mb << 20
    m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    t0 = time.monotonic()
    try:
        m.madvise(23)      # MADV_POPULATE_WRITE
    except (OSError, ValueError):
        for off in range(0, n, 4096):
            m[off] = 1
    dt = time.monotonic() - t0
    m.close()
    return n / 1e9 / dt


def fill_image(mem, cache):
    path = os.path.join(cache, "random-%s.img" % mem)
    size = qemu_peer.parse_size(mem) - WORK_START
    if not os.path.exists(path) or os.path.getsize(path) != size:
        subprocess.run([VMSHIFT, "fill-image", "--size", str(size), "--out", path,
                        "--fill", "random", "--seed", "1"], check=True)
    return path


def pin(cpu):
    return ["taskset", "-c", cpu]


def run_vmshift(cfg, mem, timeout):
    r = vmshift_peer.vmshift_migrate(
        mem=mem, workload="idle", fill="random", streams=cfg["streams"],
        src_prefix=pin(SRC_CPU), dst_prefix=pin(DST_CPU), settle_s=0.2, timeout_s=timeout,
        security="psk" if cfg.get("tls") else "insecure",
        run_args=["--ram-backing", cfg["backing"]],
        recv_args=["--ram-backing", cfg["backing"]])
    return {"status": r.get("status"), "error": r.get("error"),
            "time_s": (r.get("total_time_ms") or 0) / 1e3,
            "bytes": r.get("transferred_bytes") or 0,
            "cpu_src_s": r.get("cpu_src_s"), "cpu_dst_s": r.get("cpu_dst_s"),
            "downtime_ms": r.get("downtime_ms")}


def run_qemu(cfg, mem, image, timeout):
    start, size = qemu_peer.qemu_workload_range(qemu_peer.parse_size(mem))
    cmdline = ("workload=idle start=0x%x size=0x%x rate=0 fill=random seed=1 cpus=1"
               % (start, size))
    r = qemu_peer.qemu_migrate(mem=mem, cmdline=cmdline, image=image, streams=cfg["streams"],
                               multifd=cfg["multifd"], src_prefix=pin(SRC_CPU),
                               dst_prefix=pin(DST_CPU), settle_s=0.5, timeout_s=timeout,
                               verify_passes=1)
    return {"status": r.get("status"), "error": r.get("error"),
            "time_s": (r.get("total_time_ms") or 0) / 1e3,
            "bytes": r.get("transferred_bytes") or 0,
            "cpu_src_s": r.get("cpu_src_s"), "cpu_dst_s": r.get("cpu_dst_s"),
            "downtime_ms": r.get("blackout_ms"), "dst_anon_huge_mb": r.get("dst_anon_huge_mb")}


def default_streams(quick):
    """1, 2, 4, 8, 16 as far as the cores allow (at least 1 and 2); quick: 1."""
    return [1] if quick else [n for n in (1, 2, 4, 8, 16) if n <= max(2, CORES)]


def configs(streams):
    out = []
    for n in streams:
        for backing in ("memfd", "anon"):
            out.append({"vmm": "vmshift", "name": "vmshift %d %s" % (n, backing),
                        "streams": n, "backing": backing})
        if n == 1:
            out.append({"vmm": "qemu", "name": "QEMU plain", "streams": 1, "multifd": False})
        out.append({"vmm": "qemu", "name": "QEMU multifd %d" % n, "streams": n,
                    "multifd": True})
    out.append({"vmm": "vmshift", "name": "vmshift 1 TLS", "streams": 1,
                "backing": "auto", "tls": True})
    return out


def summarize(runs):
    ok = [r for r in runs if r["status"] == "completed" and r["time_s"] > 0 and r["bytes"]]
    if not ok:
        return None

    def med(key):
        vals = [r[key] for r in ok if r.get(key) is not None]
        return statistics.median(vals) if vals else None
    gb = statistics.median(r["bytes"] for r in ok) / 1e9
    t = med("time_s")
    return {"n": len(ok), "of": len(runs), "time_s": t, "min_s": min(r["time_s"] for r in ok),
            "max_s": max(r["time_s"] for r in ok), "gbit_s": gb * 8 / t,
            "src_s_per_gb": med("cpu_src_s") / gb if med("cpu_src_s") is not None else None,
            "dst_s_per_gb": med("cpu_dst_s") / gb if med("cpu_dst_s") is not None else None,
            "downtime_ms": med("downtime_ms"), "gb": gb}


def fmt(v, spec):
    return "-" if v is None else spec % v


def print_table(state, cells, meta):
    print("\n### %s memory: %d cores, %s VM with random data, loopback, source on CPU %s, "
          "destination on CPU %s; vmshift guest RAM pages: %s; QEMU anon THP: %s; "
          "load average %.2f-%.2f; first touch %.2f-%.2f GB/s" % (
              state, meta["cores"], meta["mem"], SRC_CPU, DST_CPU, meta["vmshift_pages"],
              meta["anon_thp"], min(meta["load"][state]), max(meta["load"][state]),
              min(meta["touch"][state]), max(meta["touch"][state])))
    print("| configuration | runs | time s (median, min-max) | Gbit/s | per stream | "
          "of N-sender ceiling | src CPU s/GB | dst CPU s/GB | downtime ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        s = c["summary"]
        if not s:
            print("| %s | 0 of %d | failed: %s | | | | | | |" % (c["name"], len(c["runs"]),
                                                               c["runs"][-1].get("error")))
            continue
        ceiling = meta["ceiling"].get(c["streams"])
        print("| %s | %d of %d | %.3f (%.3f-%.3f) | %.2f | %.2f | %s | %s | %s | %s |" % (
            c["name"], s["n"], s["of"], s["time_s"], s["min_s"], s["max_s"], s["gbit_s"],
            s["gbit_s"] / c["streams"],
            "%.0f%% of %.1f" % (100 * s["gbit_s"] / ceiling, ceiling) if ceiling else "-",
            fmt(s["src_s_per_gb"], "%.3f"),
            fmt(s["dst_s_per_gb"], "%.3f"), fmt(s["downtime_ms"], "%.1f")))
    by = {c["name"]: c["summary"] for c in cells}
    auto = auto_backing(meta)
    print("(vmshift's default, --ram-backing auto, is %s on this host)" % auto)
    pairs = [("vmshift 1 " + auto, "QEMU plain")]
    for n in meta["streams"]:
        pairs += [("vmshift %d %s" % (n, auto), "QEMU multifd %d" % n),
                  ("vmshift %d anon" % n, "vmshift %d memfd" % n)]
    pairs.append(("vmshift 1 TLS", "vmshift 1 " + auto))
    for a, b in pairs:
        if by.get(a) and by.get(b):
            print("%s / %s: %.2fx the throughput, src CPU/GB %s, dst CPU/GB %s" % (
                a, b, by[a]["gbit_s"] / by[b]["gbit_s"],
                ratio(by[a]["src_s_per_gb"], by[b]["src_s_per_gb"]),
                ratio(by[a]["dst_s_per_gb"], by[b]["dst_s_per_gb"])))


def auto_backing(meta):
    """What --ram-backing auto picks on this host (ram_backing.c): the memfd where shmem
    gets huge pages, else anonymous memory where that does."""
    if meta["shmem_thp"] in ("advise", "always", "within_size", "force"):
        return "memfd"
    return "anon" if meta["anon_thp"] in ("madvise", "always") else "memfd"


def ratio(a, b):
    return "%.2fx" % (a / b) if a is not None and b else "-"


def plot(results, out, meta):
    rows = []
    auto = auto_backing(meta)
    for state, cells in results.items():
        for c in cells:
            if c["summary"] and not c.get("tls") and c.get("backing", auto) == auto:
                rows.append((state, c["vmm"], c["streams"], c["summary"]["gbit_s"],
                             c["name"]))
    with open(os.path.join(out, "streams.csv"), "w") as f:
        f.write("state,vmm,streams,gbit_s,name\n")
        for r in rows:
            f.write("%s,%s,%d,%.4f,%s\n" % r)
    series = []
    for state in results:
        for vmm in ("vmshift", "qemu"):
            pts = sorted((r[2], r[3]) for r in rows if r[0] == state and r[1] == vmm and
                         "plain" not in r[4])
            if pts:
                name = "%s-%s.dat" % (vmm, state)
                with open(os.path.join(out, name), "w") as f:
                    f.writelines("%d %.4f\n" % p for p in pts)
                series.append("'%s' using 1:2 with linespoints title '%s %s'" % (
                    name, "QEMU multifd" if vmm == "qemu" else "vmshift", state))
    ceiling = sorted(meta["ceiling"].items())
    if ceiling:
        with open(os.path.join(out, "ceiling.dat"), "w") as f:
            f.writelines("%d %.4f\n" % p for p in ceiling)
        series.append("'ceiling.dat' using 1:2 with linespoints dashtype 2 "
                      "title 'iperf3, N senders'")
    if not series:
        return False
    plots.gnuplot("set terminal png size 800,500\nset output 'streams.png'\n"
                  "set xlabel 'streams'\nset ylabel 'Gbit/s'\nset xtics 1\nset yrange [0:*]\n"
                  "set key left top\nset title 'one migration, loopback, pinned, %d cores'\n"
                  % meta["cores"] +
                  "plot " + ", ".join(series) + "\n", out)
    return True


def measure_ceilings(streams):
    """The loopback N-sender ceiling for each stream count, pinned as the VMMs are: N
    iperf3 clients on the source's cores, N servers on the destination's."""
    out = {}
    for n in streams:
        try:
            out[n] = max(netlab.iperf_parallel(None, n, 3, client_prefix=pin(SRC_CPU),
                                               server_prefix=pin(DST_CPU))["gbit_received"]
                         for _ in range(2))
        except Exception as e:   # no ceiling is a missing column, not the end of the bench
            print("note: the %d-sender iperf3 ceiling failed: %s" % (n, e))
            continue
        print("iperf3 ceiling, %d senders pinned like the VMMs: %.1f Gbit/s" % (n, out[n]),
              flush=True)
    return out


def run_state(state, cfgs, args, image, meta):
    meta["load"][state], meta["touch"][state] = [], []
    if state == "warm":
        write_setting(ORDER, 11)
        run_vmshift(cfgs[0], args.mem, args.timeout)    # unmeasured: warms the memory
    else:
        write_setting(ORDER, 9)
    cells = [dict(c, runs=[]) for c in cfgs]
    for rep in range(args.reps):
        for c in cells:
            if state == "cold":
                time.sleep(args.cold_wait)
            meta["touch"][state].append(first_touch_gbs(args.probe_mb))
            meta["load"][state].append(loadavg())
            try:
                r = (run_vmshift(c, args.mem, args.timeout) if c["vmm"] == "vmshift"
                     else run_qemu(c, args.mem, image, args.timeout))
            except Exception as e:    # a failed run is a row, not the end of the bench
                r = {"status": "error", "error": str(e)[:300], "time_s": 0, "bytes": 0}
            c["runs"].append(r)
            print("%s rep %d %-20s %s %.3f s load %.2f" % (state, rep, c["name"],
                  r["status"], r["time_s"], meta["load"][state][-1]), flush=True)
    for c in cells:
        c["summary"] = summarize(c["runs"])
    return cells


def sane(results):
    """--quick: every cell completed with positive figures (not timings)."""
    problems = []
    for state, cells in results.items():
        for c in cells:
            s = c["summary"]
            if not s or s["n"] != s["of"]:
                problems.append("%s %s: not every run completed" % (state, c["name"]))
            elif not (s["gbit_s"] > 0 and s["gb"] > 0.1):
                problems.append("%s %s: no throughput" % (state, c["name"]))
            elif any(s[k] is None or s[k] <= 0 for k in ("src_s_per_gb", "dst_s_per_gb")):
                problems.append("%s %s: no CPU figure" % (state, c["name"]))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--mem", default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--states", default=None, help="warm,cold (default both; quick: warm)")
    ap.add_argument("--shmem-thp", default="host", choices=("never", "advise", "host"))
    ap.add_argument("--cold-wait", type=float, default=8.0)
    ap.add_argument("--probe-mb", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--streams", default=None,
                    help="stream counts, e.g. 1,2,4 (default 1, 2, 4, 8, 16 up to the cores; "
                    "quick: 1)")
    ap.add_argument("--out", default=os.path.join(os.getcwd(), "stream-bench-results"))
    args = ap.parse_args()
    args.mem = args.mem or ("256M" if args.quick else "1G")
    args.reps = args.reps or (1 if args.quick else 3)
    states = (args.states or ("warm" if args.quick else "warm,cold")).split(",")
    os.makedirs(args.out, exist_ok=True)
    old_thp, old_order = read_setting(THP), read_setting(ORDER)
    if args.shmem_thp != "host" and not write_setting(THP, args.shmem_thp):
        print("note: cannot set %s; the host's setting (%s) stays" % (THP, old_thp))
    image = fill_image(args.mem, args.out)
    meta = {"cores": os.cpu_count(), "mem": args.mem, "anon_thp": read_setting(ANON_THP),
            "shmem_thp": read_setting(THP), "load": {}, "touch": {}}
    meta["vmshift_pages"] = "memfd %s (shmem_enabled=%s), anon %s (enabled=%s)" % (
        "2 MiB" if meta["shmem_thp"] in ("advise", "always", "within_size", "force")
        else "4 KiB", meta["shmem_thp"],
        "2 MiB" if meta["anon_thp"] in ("madvise", "always") else "4 KiB", meta["anon_thp"])
    meta["streams"] = ([int(n) for n in args.streams.split(",")] if args.streams
                       else default_streams(args.quick))
    meta["ceiling"] = measure_ceilings(meta["streams"])
    results = {}
    try:
        cfgs = configs(meta["streams"])
        for state in states:
            results[state] = run_state(state, cfgs, args, image, meta)
    finally:
        if old_thp and args.shmem_thp != "host":
            write_setting(THP, old_thp)
        if old_order is not None:
            write_setting(ORDER, old_order)
        os.unlink(image)
    for state, cells in results.items():
        print_table(state, cells, meta)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
    drawn = plot(results, args.out, meta)
    print("\nwrote %s/results.json, streams.csv%s" % (args.out, ", streams.png" if drawn else ""))
    if args.quick:
        problems = sane(results)
        if not drawn or not os.path.getsize(os.path.join(args.out, "streams.png")):
            problems.append("no plot")
        for p in problems:
            print("FAIL: " + p)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
