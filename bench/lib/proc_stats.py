"""CPU accounting of a process from /proc: per-thread CPU seconds (utime + stime) sampled
over a window, with the vCPU threads ("CPU n/TCG", "CPU n/KVM") told apart, peak memory,
and the host's steal time. Used to report what a VMM's migration costs in CPU.

stdlib only.
"""
import os
import re

CLK_TCK = os.sysconf("SC_CLK_TCK")
VCPU_THREAD = re.compile(r"^CPU \d+/(TCG|KVM)$")


def _stat_ticks(path):
    """(comm, utime+stime ticks) from a /proc stat file."""
    with open(path) as f:
        s = f.read()
    lp, rp = s.index("("), s.rindex(")")
    rest = s[rp + 2:].split()
    return s[lp + 1:rp], int(rest[11]) + int(rest[12])   # fields 14, 15


def _threads(pid):
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            out[int(tid)] = _stat_ticks("/proc/%d/task/%s/stat" % (pid, tid))
        except (OSError, ValueError):
            pass
    return out


def _proc_ticks(pid):
    return _stat_ticks("/proc/%d/stat" % pid)[1]


def _proc_field_kb(path, key):
    """The kB figure of `key:` in a /proc file such as status or smaps_rollup."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def status_kb(pid, key):
    return _proc_field_kb("/proc/%d/status" % pid, key)


def rollup_kb(pid, key):
    return _proc_field_kb("/proc/%d/smaps_rollup" % pid, key)


class CpuMeter:
    """CPU of one process over a window, minus its vCPU threads."""

    def __init__(self, pid):
        self.pid = pid
        self.total0 = _proc_ticks(pid)
        self.thr0 = _threads(pid)
        self.last = dict(self.thr0)          # tid -> (name, ticks) last seen
        self.total1 = None

    def sample(self):
        self.last.update(_threads(self.pid))

    def stop(self):
        """End the window (only the first call counts)."""
        if self.total1 is not None:
            return
        self.sample()
        self.total1 = _proc_ticks(self.pid)

    def result(self):
        per_tid = {}
        for tid, (name, t) in self.last.items():
            t0 = self.thr0.get(tid, (name, 0))[1]
            per_tid[tid] = (name, t - t0)
        vcpu = sum(d for n, d in per_tid.values() if VCPU_THREAD.match(n))
        mig = (self.total1 - self.total0) - vcpu
        names = {}
        for n, d in per_tid.values():
            if not VCPU_THREAD.match(n):
                names[n] = names.get(n, 0) + d
        return {
            "cpu_s": mig / CLK_TCK,
            "vcpu_s": vcpu / CLK_TCK,
            "threads": {n: d / CLK_TCK for n, d in sorted(names.items())},
            "counted": sorted(names),
            "excluded": sorted({n for n, _ in per_tid.values() if VCPU_THREAD.match(n)}),
        }


def cpu_steal():
    """Steal ticks of all CPUs (/proc/stat): time the hypervisor ran something else."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return None
