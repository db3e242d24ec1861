"""PNG plots and a CSV of the migration benchmark's results (gnuplot)."""
import os
import subprocess


def _rates(samples):
    """[(t_s, cumulative bytes)] (vmshift) or [{"t_s", "transferred"}] (QEMU's query-migrate
    samples) -> [(t_s, Gbit/s over the interval ending at t_s)]."""
    out, pt, pb = [], 0.0, 0.0
    for s in samples:
        t, b = (s[0], s[1]) if isinstance(s, (list, tuple)) else (s["t_s"], s["transferred"])
        if t > pt:
            out.append((t, (b - pb) * 8 / 1e9 / (t - pt)))
        pt, pb = t, b
    return out


def gnuplot(script, out_dir):
    """Run a gnuplot script in out_dir (relative file names land there); RuntimeError with
    gnuplot's own message when it fails."""
    try:
        r = subprocess.run(["gnuplot"], input=script, text=True, cwd=out_dir,
                           capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError("gnuplot could not run: %s (apt-get install gnuplot-nox)" % e)
    if r.returncode != 0:
        raise RuntimeError("gnuplot failed: " + r.stderr[-2000:])


def write_csv(results, out_dir):
    path = os.path.join(out_dir, "results.csv")
    with open(path, "w") as f:
        keys = ("bw_gbit", "time_s", "data_gbit", "downtime_ms", "cpu_src_s", "cpu_dst_s",
                "cpu_src_s_per_gb", "cpu_dst_s_per_gb")
        f.write("link,iperf3_gbit,case,impl,config,status,vms,%s,guest_errors\n" % ",".join(keys))
        for link, lr in results["links"].items():
            for case, cr in lr["cases"].items():
                for impl, r in cr.items():
                    f.write("%s,%.2f,%s,%s,%s,%s,%s,%s,%s\n" % (
                        link, lr["iperf3_gbit"], case, impl, r.get("config") or "",
                        r.get("status"), r.get("vms", ""),
                        ",".join("%.3f" % r[k] if isinstance(r.get(k), (int, float)) else ""
                                 for k in keys),
                        r.get("guest_errors", "")))
    return path


def plot_times(results, out_dir):
    dat = os.path.join(out_dir, "times.dat")
    n = 0
    with open(dat, "w") as f:
        f.write("cell vmshift qemu\n")
        for link, lr in results["links"].items():
            for case, cr in lr["cases"].items():
                v, q = cr.get("vmshift", {}), cr.get("qemu", {})
                vt = v.get("time_s") if v.get("status") == "completed" else None
                qt = q.get("time_s") if q.get("status") == "completed" else None
                f.write('"%s\\n%s" %s %s\n' % (case, link, vt if vt is not None else "NaN",
                                                qt if qt is not None else "NaN"))
                n += 1
    gnuplot("""
set terminal pngcairo size %d,600 font ",9"
set output "migration-time.png"
set title "Migration time per case (lower is better; log scale)"
set ylabel "seconds"
set logscale y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set xtics rotate by -35 scale 0
set grid ytics mytics
plot "times.dat" using 2:xtic(1) title "vmshift", "" using 3 title "QEMU"
""" % (max(900, 90 * n)), out_dir)


def plot_bandwidth(results, out_dir):
    """Throughput over time of the one-large-VM 'once' case on every link, both VMMs."""
    plots = []
    for link, lr in results["links"].items():
        for case, cr in lr["cases"].items():
            if not case.startswith("once-1x"):
                continue
            for impl, r in cr.items():
                if r.get("status") != "completed" or not r.get("samples"):
                    continue
                name = "bw-%s-%s.dat" % (link, impl)
                with open(os.path.join(out_dir, name), "w") as f:
                    f.write("# t_s gbit_s\n")
                    for t, g in _rates(r["samples"]):
                        f.write("%.3f %.3f\n" % (t, g))
                plots.append('"%s" using 1:2 with steps lw 2 title "%s, %s (%s)"'
                             % (name, impl, link, case))
    if not plots:
        return
    gnuplot("""
set terminal pngcairo size 1100,600 font ",10"
set output "bandwidth-over-time.png"
set title "Throughput during pre-copy and switchover (100 ms samples)"
set xlabel "seconds since the migration started"
set ylabel "Gbit/s"
set grid
set key outside right
plot %s
""" % ", \\\n     ".join(plots), out_dir)


def write_all(results, out_dir):
    write_csv(results, out_dir)
    plot_times(results, out_dir)
    plot_bandwidth(results, out_dir)
