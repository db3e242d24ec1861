#!/usr/bin/python3
"""What encryption costs a migration: the same migration (a VM of incompressible random
memory, --workload once, so the migration is one pass of all RAM) with --insecure and
with TLS 1.3 -- pre-shared key, certificates, and other cipher suites -- in the same run,
alternating, on each link: loopback (127.0.0.1), two network-namespace hosts joined by
an unshaped veth (198.18.0.1 -> .2), and that veth shaped to a rate (e.g. 2gbit: a link
slower than the CPU, where TLS should cost nothing). Each link's iperf3 ceiling with the
same stream count is measured first. QEMU (TCG, same guest and memory image) migrates the
same VM over plain TCP and over TLS with a pre-shared key (tls-creds-psk, GnuTLS) in the
same run, so both VMMs' TLS costs can be set side by side.

    bench/tls_bench.py [--mem 2G] [--reps 3] [--streams 2] [--links loopback,unshaped,2gbit]
                       [--modes insecure,psk,cert,psk-chacha20,cert-aes256] [--no-qemu]
                       [--out DIR]

Prints a table (median of --reps runs per cell): throughput (RAM bytes transferred over
the migration's total time), time, CPU seconds on each side, the ratio of the throughput
to --insecure's on the same link (TLS / plain, 1.00 = free) and to the link's iperf3
ceiling. Writes
results.json, table.md and tls-cost.png (gnuplot) into --out. Absolute numbers on a
shared machine are noise; read the ratios of the same run.
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

ROOT = os.path.dirname(HERE)

# mode -> (vmshift security, TLS 1.3 suites for both sides or None for the default)
MODES = {
    "insecure": ("insecure", None),
    "psk": ("psk", None),
    "cert": ("cert", None),
    "psk-chacha20": ("psk", "TLS_CHACHA20_POLY1305_SHA256"),
    "cert-aes256": ("cert", "TLS_AES_256_GCM_SHA384"),
}


def one_vmshift(mode, link, hosts, args):
    security, suites = MODES[mode]
    kw = {}
    if link != "loopback":
        kw = dict(src_prefix=hosts.exec_args("a"), dst_prefix=hosts.exec_args("b"),
                  dst_addr=hosts.addr("b"))
    return vmshift_peer.vmshift_migrate(mem=args.mem, workload="once", fill="random",
                                        streams=args.streams, security=security,
                                        ciphersuites=suites, settle_s=args.settle, **kw)


def one_qemu(tls, link, hosts, args):
    kw = {}
    if link != "loopback":
        kw = dict(src_prefix=hosts.exec_args("a"), dst_prefix=hosts.exec_args("b"),
                  dst_addr=hosts.addr("b"))
    start, size = qemu_peer.qemu_workload_range(qemu_peer.parse_size(args.mem))
    cmdline = ("workload=once start=0x%x size=0x%x rate=0 fill=random seed=1 cpus=1"
               % (start, size))
    return qemu_peer.qemu_migrate(mem=args.mem, cmdline=cmdline, image=args.image,
                                  streams=args.streams, settle_s=args.settle,
                                  tls_psk_dir=args.qemu_psk_dir if tls else None, **kw)


def measure(r):
    """Gbit/s, seconds, CPU src/dst of one completed migration (else None)."""
    if r.get("status") != "completed" or not r.get("total_time_ms"):
        return None
    t = r["total_time_ms"] / 1e3
    return {"gbit": r["transferred_bytes"] * 8 / 1e9 / t, "time_s": t,
            "cpu_src_s": r.get("cpu_src_s") or 0, "cpu_dst_s": r.get("cpu_dst_s") or 0,
            "cipher": r.get("cipher", "")}


def median_cell(runs):
    ok = [m for m in runs if m]
    if not ok:
        return None
    return {k: statistics.median(m[k] for m in ok) for k in ("gbit", "time_s", "cpu_src_s",
                                                               "cpu_dst_s")} | {
        "cipher": ok[0]["cipher"], "runs": len(ok), "all_gbit": [m["gbit"] for m in ok]}


def qemu_psk_dir(out):
    """QEMU's keys.psk holding the same key as the vmshift runs use."""
    d = os.path.join(out, "qemu-psk")
    os.makedirs(d, exist_ok=True)
    key = open(os.path.join(vmshift_peer.credentials(), "psk")).read().strip()
    with open(os.path.join(d, "keys.psk"), "w") as f:
        f.write("qemu:%s\n" % key)
    os.chmod(os.path.join(d, "keys.psk"), 0o600)
    return d


def plot(results, out):
    dat = os.path.join(out, "tls-cost.dat")
    with open(dat, "w") as f:
        f.write("cell gbit\n")
        for link, lr in results["links"].items():
            for who, cells in (("vmshift", lr["vmshift"]), ("QEMU", lr["qemu"])):
                for mode, c in cells.items():
                    f.write('"%s %s\\n%s" %s\n' % (who, mode, link, c["gbit"] if c else "NaN"))
    script = """
set terminal pngcairo size 1200,600 font ",9"
set output "tls-cost.png"
set title "Migration throughput, plain TCP and TLS 1.3 (median of %d runs; higher is better)"
set ylabel "Gbit/s"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set xtics rotate by -35 scale 0
set grid ytics
set yrange [0:*]
set key off
plot "tls-cost.dat" using 2:xtic(1)
""" % results["reps"]
    try:
        plots.gnuplot(script, out)
    except RuntimeError as e:
        print(e, file=sys.stderr)


def row(link, who, mode, c, base, ceiling):
    if not c:
        return "| %s | %s | %s | failed | | | | | |" % (link, who, mode)
    ratio = "%.2f" % (c["gbit"] / base["gbit"]) if base else "-"
    return "| %s | %s | %s | %s | %.2f | %.2f | %.2f / %.2f | %s | %.0f%% |" % (
        link, who, mode, c["cipher"] or "-", c["gbit"], c["time_s"], c["cpu_src_s"],
        c["cpu_dst_s"], ratio, 100 * c["gbit"] / ceiling if ceiling else 0)


HEADER = ("| link | VMM | security | cipher | Gbit/s | time s | CPU src / dst s "
          "| throughput vs plain TCP | vs iperf3 ceiling |\n|---|---|---|---|---|---|---|---|---|")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mem", default="2G")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--links", default="loopback,unshaped,2gbit",
                    help="loopback, unshaped, or a tc rate for the veth (e.g. 2gbit)")
    ap.add_argument("--modes", default="insecure,psk,cert,psk-chacha20,cert-aes256")
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  "tls-" + time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            ap.error("unknown mode %s; known: %s" % (m, ", ".join(MODES)))
    if "insecure" not in modes:
        modes.insert(0, "insecure")
    os.makedirs(args.out, exist_ok=True)
    if not args.no_qemu:
        args.image = os.path.join(args.out, "random-%s.img" % args.mem)
        subprocess.run([vmshift_peer.VMSHIFT, "fill-image", "--size",
                        str(qemu_peer.parse_size(args.mem) - 0x400000), "--out", args.image,
                        "--fill", "random", "--seed", "1"], check=True)
        args.qemu_psk_dir = qemu_psk_dir(args.out)
    netlab.install_sigterm_handler()
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
               "mem": args.mem, "streams": args.streams, "reps": args.reps, "links": {},
               "loadavg_before": list(os.getloadavg())}
    rows = []
    print(HEADER, flush=True)
    with netlab.Hosts() as hosts:
        for link in args.links.split(","):
            if link != "loopback":
                hosts.reshape(None if link == "unshaped" else link)
            ceiling = netlab.iperf_ceiling(None if link == "loopback" else hosts, args.streams)
            print("| %s | iperf3 ceiling, %d streams: %.1f Gbit/s |" % (link, args.streams,
                                                                        ceiling), flush=True)
            runs = {m: [] for m in modes}
            qruns = {"plain": [], "tls-psk": []}
            for rep in range(args.reps):       # alternate, so drift hits every mode alike
                for m in modes:
                    r = one_vmshift(m, link, hosts, args)
                    if r.get("status") != "completed":
                        print("  vmshift %s on %s: %s" % (m, link, r.get("error")), flush=True)
                    runs[m].append(measure(r))
                if not args.no_qemu:
                    for q, tls in (("plain", False), ("tls-psk", True)):
                        r = one_qemu(tls, link, hosts, args)
                        if r.get("status") != "completed":
                            print("  QEMU %s on %s: %s" % (q, link, r.get("error")), flush=True)
                        runs_q = measure(r)
                        if runs_q:
                            runs_q["cipher"] = "GnuTLS PSK" if tls else ""
                        qruns[q].append(runs_q)
            lr = results["links"][link] = {
                "iperf3_gbit": ceiling,
                "vmshift": {m: median_cell(runs[m]) for m in modes},
                "qemu": {q: median_cell(v) for q, v in qruns.items()} if not args.no_qemu else {}}
            base = lr["vmshift"]["insecure"]
            for m in modes:
                rows.append(row(link, "vmshift", m, lr["vmshift"][m], base, ceiling))
                print(rows[-1], flush=True)
            qbase = lr["qemu"].get("plain")
            for q, c in lr["qemu"].items():
                rows.append(row(link, "QEMU", q, c, qbase, ceiling))
                print(rows[-1], flush=True)
    results["loadavg_after"] = list(os.getloadavg())
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("# TLS cost, %s, %d CPUs, %s VM (random memory), %d streams, median of %d\n\n"
                % (results["started"], results["cpus"], args.mem, args.streams, args.reps))
        f.write("iperf3 ceilings: %s\n\n" % ", ".join(
            "%s %.1f Gbit/s" % (k, v["iperf3_gbit"]) for k, v in results["links"].items()))
        f.write(HEADER + "\n" + "\n".join(rows) + "\n")
    plot(results, args.out)
    print("results, table and plot in %s" % args.out)
    failed = [m for lr in results["links"].values() for m, c in lr["vmshift"].items() if not c]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
