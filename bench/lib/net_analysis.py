"""What the network benchmark's client saw (bench/lib/net_client.py probe output), per
migration and per run, and the plot of it (bench/net_bench.py).

A probe file: {"sent": [[kind, seq, t_sent]], "replies": [[kind, seq, t_arrival]]}, host
wall-clock seconds; a migration: {"t_migrate", "t_stop", "t_resume", "downtime_ms",
"from", "to"} (bench/lib/net_vms.py).
"""
import os

import plots

WINDOW_AFTER_S = 1.5      # a migration's window: from 0.5 s before the stop to this long
                          # after the resume
BASE_S = 1.0              # the quiet second before `migrate`


def _arrivals(data):
    """Replies in arrival order, each with a flag: it came after the answer to a later
    probe (reordered)."""
    reps = sorted(data["replies"], key=lambda r: r[2])
    out, top = [], -1
    for kind, seq, t in reps:
        out.append((seq, t, seq < top))
        top = max(top, seq)
    return out


def _longest_gap(times, lo, hi):
    """(length, start) of the longest time between consecutive arrivals, over pairs that
    touch [lo, hi]."""
    best, at = 0.0, None
    for a, b in zip(times, times[1:]):
        if b >= lo and a <= hi and b - a > best:
            best, at = b - a, a
    return best, at


def migration_figures(data, m):
    arr = _arrivals(data)
    times = [t for _, t, _ in arr]
    w0 = m["t_migrate"]
    resume = m.get("t_resume")
    w1 = (resume if resume is not None else w0) + WINDOW_AFTER_S
    answered = {}
    for seq, t, _ in arr:
        answered[seq] = answered.get(seq, 0) + 1
    stop = m.get("t_stop") or w0
    # Lost and duplicated: probes sent from 0.5 s before the stop to 1 s after the resume
    # (the switchover's neighbourhood; an overloaded guest loses probes all the time).
    in_win = [s for _, s, t in data["sent"] if stop - 0.5 <= t <= w1 - 0.5]
    after = [t for t in times if resume is not None and t > resume]
    base = [t for t in times if w0 - BASE_S <= t <= w0]
    gap, gap_at = _longest_gap(times, stop - 0.5, w1)
    # The silence the blackout caused: the longest gap between replies that overlaps
    # [stop, resume] (vmshift's stop is known to a few ms, so not just the gap across
    # the resume).
    across = sorted(((b - a) for a, b in zip(times, times[1:])
                     if resume is not None and b >= stop and a <= resume), reverse=True)
    sent_at = {s: t for _, s, t in data["sent"]}
    new = [t for seq, t, _ in arr if resume is not None and t > resume and
           sent_at.get(seq, 0) > resume]
    return {
        "move": "%s->%s" % (m["from"].upper(), m["to"].upper()),
        "downtime_ms": m.get("downtime_ms"),
        "total_ms": m.get("total_ms"),
        "outage_ms": across[0] * 1000.0 if across else None,
        "worst_gap_ms": gap * 1000.0 if gap_at is not None else None,
        "worst_gap_from_stop_ms": (gap_at - stop) * 1000.0 if gap_at is not None and stop else None,
        "new_back_ms": (new[0] - resume) * 1000.0 if new else None,
        "first_back_ms": (after[0] - resume) * 1000.0 if after else None,
        "sent": len(in_win),
        "lost": sum(1 for s in in_win if s not in answered),
        "dup": sum(answered.get(s, 0) - 1 for s in in_win if answered.get(s, 0) > 1),
        "reordered": sum(1 for _, t, late in arr if late and stop - 0.5 <= t <= w1),
        "base_gap_ms": _longest_gap(base, w0 - BASE_S, w0)[0] * 1000.0 if len(base) > 1 else None,
        "replies_per_s": len(base) / BASE_S,
        "t_stop": m.get("t_stop"), "t_resume": resume,
    }


def whole_run(data):
    arr = _arrivals(data)
    answered = {}
    for seq, _, _ in arr:
        answered[seq] = answered.get(seq, 0) + 1
    sent = data["sent"]
    end = sent[-1][2] if sent else 0
    counted = [s for _, s, t in sent if t <= end - 1.0]
    span = (sent[-1][2] - sent[0][2]) if len(sent) > 1 else 0
    return {"sent": len(sent), "answered": len(answered),
            "lost": sum(1 for s in counted if s not in answered),
            "dup": sum(n - 1 for n in answered.values()),
            "reordered": sum(1 for _, _, late in arr if late),
            "sent_per_s": len(sent) / span if span else None,
            "replies_per_s": len(arr) / span if span else None}


def series(data, t0):
    """For the plot: rtt [(t_sent - t0, ms, kind)] of each probe's first answer, gaps
    [(t_arrival - t0, ms since the previous arrival)], lost [t_sent - t0]."""
    sent = {s: (k, t) for k, s, t in data["sent"]}
    first = {}
    for k, s, t in sorted(data["replies"], key=lambda r: r[2]):
        first.setdefault(s, t)
    rtt = [(sent[s][1] - t0, (t - sent[s][1]) * 1000.0, sent[s][0])
           for s, t in first.items() if s in sent]
    rtt.sort()
    times = sorted(t for _, _, t in data["replies"])
    gaps = [(b - t0, (b - a) * 1000.0) for a, b in zip(times, times[1:])]
    end = data["sent"][-1][2] if data["sent"] else t0
    lost = [t - t0 for _, s, t in data["sent"] if s not in first and t <= end - 1.0]
    return {"rtt": rtt, "gaps": gaps, "lost": lost}


def plot(results, out_dir, interval):
    """net-<interval>ms.png: for run 1 of each VMM, C's RTT per probe (top) and the time between
    consecutive replies (bottom) over time since the first `migrate`; dashed lines at each
    migration's stop and resume. Also writes the .dat files it plots."""
    runs = [r for r in results["runs"] if r["run"] == 1 and r.get("series") and
            r["interval_ms"] == interval]
    tag = "%gms" % interval
    if not runs:
        return None
    for r in runs:
        s = r["series"]
        with open(os.path.join(out_dir, "rtt-%s-%s.dat" % (r["impl"], tag)), "w") as f:
            f.write("# t_s rtt_ms kind(0 ping, 1 udp)\n")
            f.writelines("%.6f %.3f %d\n" % p for p in s["rtt"])
        with open(os.path.join(out_dir, "gaps-%s-%s.dat" % (r["impl"], tag)), "w") as f:
            f.write("# t_s gap_ms\n")
            f.writelines("%.6f %.3f\n" % p for p in s["gaps"])
        with open(os.path.join(out_dir, "lost-%s-%s.dat" % (r["impl"], tag)), "w") as f:
            f.write("# t_s (sent, never answered)\n")
            f.writelines("%.6f\n" % t for t in s["lost"])
    n = len(runs)
    g = ["set terminal pngcairo size %d,700 font \",9\"" % (560 * n),
         "set output 'net-%s.png'" % tag,
         "set multiplot layout 2,%d title 'C -> VM every %g ms while the VM moves A->B and back'"
         % (n, interval),
         "set grid", "set key top right", "set xlabel 'seconds since the first migrate'"]
    for row in ("rtt", "gaps"):
        for r in runs:
            g.append("unset arrow")
            for stop, resume in r["marks"]:
                for x in (stop, resume):
                    g.append("set arrow from %.4f, graph 0 to %.4f, graph 1 nohead dt 2 lc "
                             "rgb 'gray40'" % (x, x))
            name = "%s-%s" % (r["impl"], tag)
            if row == "rtt":
                g += ["set logscale y", "set ylabel 'RTT ms'", "set yrange [*:*]",
                      "set title '%s: round-trip time per probe (lost: x at the bottom)'"
                      % r["impl"]]
                lost = os.path.getsize(os.path.join(out_dir, "lost-%s.dat" % name)) > 40
                g.append("plot 'rtt-%s.dat' u 1:($3==0?$2:1/0) w p pt 7 ps 0.3 t 'ping', "
                         "'' u 1:($3==1?$2:1/0) w p pt 7 ps 0.3 t 'UDP echo'" % name +
                         (", 'lost-%s.dat' u 1:(0.01) w p pt 2 ps 0.6 lc rgb 'red' t 'lost'"
                          % name if lost else ""))
            else:
                g += ["set logscale y", "set ylabel 'gap ms'",
                      "set title '%s: time between consecutive replies at C'" % r["impl"],
                      "set yrange [0.1:*]",
                      "plot 'gaps-%s.dat' u 1:2 w l lw 1 t 'gap'" % name]
    g.append("unset multiplot")
    plots.gnuplot("\n".join(g) + "\n", out_dir)
    return os.path.join(out_dir, "net-%s.png" % tag)


def check_sane(results, out_dir):
    """--quick: the outputs exist and hold sensible values (not timings)."""
    problems = []
    for name in ["table.md", "results.json"] + ["net-%gms.png" % i
                                                 for i in results["intervals_ms"]]:
        p = os.path.join(out_dir, name)
        if not os.path.exists(p) or os.path.getsize(p) == 0:
            problems.append("%s missing or empty" % name)
    for impl in results["impls"]:
        runs = [r for r in results["runs"] if r["impl"] == impl]
        if not runs:
            problems.append("%s: no run" % impl)
        for r in runs:
            ms = r.get("migrations") or []
            if len(ms) != 2:
                problems.append("%s run %d: %d migrations, expected 2" % (impl, r["run"], len(ms)))
            for m in ms:
                if m["downtime_ms"] is None or not 0 <= m["downtime_ms"] < 60000:
                    problems.append("%s %s: downtime %s" % (impl, m["move"], m["downtime_ms"]))
                if m["worst_gap_ms"] is None or m["worst_gap_ms"] <= 0:
                    problems.append("%s %s: no outage measured" % (impl, m["move"]))
                if m["first_back_ms"] is None:
                    problems.append("%s %s: no reply after the resume" % (impl, m["move"]))
                if m["dup"] != 0:
                    problems.append("%s %s: %d duplicated replies" % (impl, m["move"], m["dup"]))
            w = r.get("whole") or {}
            if not w.get("answered") or w["answered"] < w.get("sent", 0) / 10:
                problems.append("%s run %d: %s of %s probes answered" % (
                    impl, r["run"], w.get("answered"), w.get("sent")))
            for b in r.get("blast") or []:
                if b["echoed"] <= 0 or b["echoed"] > b["sent"]:
                    problems.append("%s blast %d B: %d echoed of %d" % (
                        impl, b["size"], b["echoed"], b["sent"]))
            if r.get("leftover_taps"):
                problems.append("%s run %d: TAPs left %s" % (impl, r["run"], r["leftover_taps"]))
    return problems
