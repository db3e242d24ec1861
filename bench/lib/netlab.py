#!/usr/bin/python3
"""Two "hosts" on one machine for migration benchmarks: network namespaces and a veth link.

    from netlab import Hosts, iperf_ceiling
    with Hosts(rate="10gbit") as h:            # A = 198.18.0.1 (source), B = 198.18.0.2
        argv = h.exec_args("a") + ["build/vmshift", "run", ...]
        print(iperf_ceiling(h, streams=4))      # Gbit/s that B received
        h.reshape("40gbit"); h.reshape(None)    # change or drop the shaping at any time
    iperf_ceiling(None, streams=1)              # loopback, no namespaces: 127.0.0.1

Layout. Two namespaces vsb-a-<pid>[-<n>] and vsb-b-<pid>[-<n>] (<n> counts extra Hosts
objects of the same process), joined by one veth pair: vsa<pid>[x<n>] in A with
198.18.0.1/24 and vsb<pid>[x<n>] in B with 198.18.0.2/24, lo up in both. Only
198.18.0.0/15 (benchmarking range, RFC 2544) and loopback are ever used. Nothing is
created in the caller's namespace except those two namespace names.

MTU. Default 1500, the Ethernet default, because that is what a migration between two
ordinary hosts sees. veth does TSO/GSO with 64 KiB super-packets either way, so the MTU
matters far less here than on a real NIC, but it still changes per-packet costs (ACKs,
GRO), so it is a parameter (mtu=9000 for "jumbo frames") and the benchmark should record it.

Shaping. rate="10gbit" (tc syntax: kbit, mbit, gbit, or a plain number of bit/s) puts a
token bucket (tbf) as root qdisc on the egress of both veth ends, so A->B and B->A are each
limited to the rate. tbf is used, not htb: with one class there is nothing htb adds, and
at 10-40 Gbit/s htb's per-class quantum/burst defaults (derived from r2q and HZ) are far
too small, which makes it undershoot unless every knob is tuned; tbf with a large bucket
held the configured rate closely in our measurements (see iperf_ceiling and the module's
CLI: `python3 bench/lib/netlab.py --rates 10gbit,40gbit`). The bucket is the larger of
4 MiB and 2 ms at the rate (10 MB at 40 Gbit/s), enough for 64 KiB GSO packets and for
timer/softirq jitter on a small machine; the queue limit is the bucket plus 5 ms at the
rate. tbf counts whole Ethernet frames, so TCP goodput tops out at 1448/1514 = 95.6% of
the rate with MTU 1500 (about 99% with 9000): 10gbit measured 9.56 Gbit/s of iperf3
goodput, i.e. the shaper holds the configured rate exactly. A rate above what the machine
can push simply does not bind (the ceiling then is the unshaped one, 15-40 Gbit/s here and
very noisy): measure it, do not assume it. iperf3 3.12 (Debian 12) runs all -P streams
in one thread, so its multi-stream numbers are limited by one core.

Clean-up. destroy() (also on leaving the with-block, on exceptions, and from an atexit
hook for objects never destroyed) kills by PID whatever still runs inside the two
namespaces (only things the caller started there) and deletes the namespaces, which
removes the veth pair too. cleanup_stale() removes vsb-a-/vsb-b- namespaces whose
creating PID no longer exists (left behind by SIGKILL). SIGTERM does not run atexit
hooks by default; install_sigterm_handler() turns it into SystemExit so it does.

stdlib only; needs root, iproute2 (ip, tc) and, for iperf_ceiling, iperf3.
"""
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ADDR = {"a": "198.18.0.1", "b": "198.18.0.2"}
PREFIX_LEN = 24
NS_PREFIX = "vsb-"

_live = set()              # Hosts objects not yet destroyed, for the atexit hook
_live_lock = threading.Lock()
_counter = 0


class NetlabError(RuntimeError):
    pass


def _run(argv, check=True, timeout=30):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise NetlabError("%s failed (%d): %s" % (" ".join(argv), p.returncode,
                                                   (p.stderr or p.stdout).strip()))
    return p


_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(bit|bps)?\s*$", re.I)


def parse_rate(rate):
    """'10gbit' -> 10e9 bit/s (tc units: decimal k/m/g/t; 'bps' = bytes per second as in
    tc). A plain number is bit/s. None -> None."""
    if rate is None:
        return None
    if isinstance(rate, (int, float)):
        return float(rate)
    m = _RATE_RE.match(str(rate))
    if not m:
        raise ValueError("bad rate %r (e.g. '10gbit', '500mbit')" % (rate,))
    v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
    if (m.group(3) or "bit").lower() == "bps":
        v *= 8
    return v


def tbf_params(rate_bps):
    """(burst_bytes, limit_bytes) used for a tbf at rate_bps bit/s."""
    byte_rate = rate_bps / 8.0
    burst = max(4 << 20, int(byte_rate * 0.002))
    limit = burst + int(byte_rate * 0.005)
    return burst, limit


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ns_pids(ns):
    p = _run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def _kill_ns_processes(ns):
    pids = _ns_pids(ns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 5
    while pids and time.time() < deadline:
        pids = [p for p in pids if _pid_alive(p)]
        if pids:
            time.sleep(0.05)
    return pids


class Hosts:
    """Two namespaces joined by a veth pair; see the module docstring."""

    def __init__(self, rate=None, mtu=1500):
        global _counter
        pid = os.getpid()
        with _live_lock:
            n = _counter
            _counter += 1
        sfx = "" if n == 0 else "-%d" % n
        self.ns = {"a": "%sa-%d%s" % (NS_PREFIX, pid, sfx), "b": "%sb-%d%s" % (NS_PREFIX, pid, sfx)}
        dsfx = "" if n == 0 else "x%d" % n
        self.dev = {"a": "vsa%d%s" % (pid, dsfx), "b": "vsb%d%s" % (pid, dsfx)}
        for d in self.dev.values():
            if len(d) > 15:
                raise NetlabError("interface name too long: " + d)
        self.mtu = int(mtu)
        self.rate = None
        self.rate_bps = None
        self._destroyed = False
        self._created = []
        with _live_lock:
            _live.add(self)
        try:
            self._create()
            self.reshape(rate)
        except BaseException:
            self.destroy()
            raise

    # -- life cycle --------------------------------------------------------------------
    def _create(self):
        for h in ("a", "b"):
            _run(["ip", "netns", "add", self.ns[h]])
            self._created.append(h)
        _run(["ip", "link", "add", self.dev["a"], "netns", self.ns["a"], "type", "veth",
              "peer", "name", self.dev["b"], "netns", self.ns["b"]])
        for h in ("a", "b"):
            ex = self.exec_args(h)
            _run(ex + ["ip", "link", "set", "lo", "up"])
            _run(ex + ["ip", "link", "set", self.dev[h], "mtu", str(self.mtu)])
            _run(ex + ["ip", "addr", "add", "%s/%d" % (ADDR[h], PREFIX_LEN), "dev", self.dev[h]])
            _run(ex + ["ip", "link", "set", self.dev[h], "up"])
        # Wait for the link to be usable (no DAD for IPv4, but the veth carrier comes up
        # asynchronously).
        deadline = time.time() + 5
        while time.time() < deadline:
            p = _run(self.exec_args("a") + ["ip", "-o", "link", "show", self.dev["a"]], check=False)
            if "LOWER_UP" in p.stdout:
                break
            time.sleep(0.02)

    def destroy(self):
        """Kill what still runs in the namespaces and delete them. Idempotent."""
        if self._destroyed:
            return
        self._destroyed = True
        errors = []
        for h in self._created:
            try:
                left = _kill_ns_processes(self.ns[h])
                if left:
                    errors.append("%s: processes %s survived SIGKILL" % (self.ns[h], left))
                p = _run(["ip", "netns", "del", self.ns[h]], check=False)
                if p.returncode != 0:
                    errors.append(p.stderr.strip())
            except Exception as e:  # keep going: delete the other namespace too
                errors.append(str(e))
        self._created = []
        with _live_lock:
            _live.discard(self)
        if errors:
            raise NetlabError("; ".join(errors))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def __del__(self):
        try:
            self.destroy()
        except Exception:
            pass

    # -- queries -------------------------------------------------------------------------
    def exec_args(self, host):
        """argv prefix that runs a command in host 'a' or 'b'."""
        return ["ip", "netns", "exec", self.ns[self._h(host)]]

    def addr(self, host):
        return ADDR[self._h(host)]

    def name(self, host):
        return self.ns[self._h(host)]

    def describe(self):
        d = {"ns": dict(self.ns), "dev": dict(self.dev), "addr": dict(ADDR), "mtu": self.mtu,
             "rate": self.rate, "rate_bps": self.rate_bps, "qdisc": None}
        if self.rate_bps:
            burst, limit = tbf_params(self.rate_bps)
            d["qdisc"] = {"kind": "tbf", "burst_bytes": burst, "limit_bytes": limit}
        return d

    @staticmethod
    def _h(host):
        h = str(host).lower()
        if h not in ADDR:
            raise ValueError("host must be 'a' or 'b', not %r" % (host,))
        return h

    # -- shaping -------------------------------------------------------------------------
    def reshape(self, rate):
        """Shape both directions to rate (tc syntax, e.g. '10gbit'), or None to remove."""
        bps = parse_rate(rate)
        for h in ("a", "b"):
            ex = self.exec_args(h)
            if bps is None:
                _run(ex + ["tc", "qdisc", "del", "dev", self.dev[h], "root"], check=False)
            else:
                burst, limit = tbf_params(bps)
                _run(ex + ["tc", "qdisc", "replace", "dev", self.dev[h], "root", "tbf",
                           "rate", "%dbit" % int(bps), "burst", str(burst), "limit", str(limit)])
        self.rate = None if bps is None else rate
        self.rate_bps = bps

    def qdisc_stats(self, host):
        """tc -s qdisc output of one side, for debugging the shaper."""
        h = self._h(host)
        return _run(self.exec_args(h) + ["tc", "-s", "qdisc", "show", "dev", self.dev[h]]).stdout


def cleanup_stale():
    """Delete vsb-a-PID / vsb-b-PID namespaces whose PID is gone. Returns the names."""
    removed = []
    p = _run(["ip", "netns", "list"], check=False)
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s[ab]-(\d+)(-\d+)?$" % re.escape(NS_PREFIX), name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_ns_processes(name)
            if _run(["ip", "netns", "del", name], check=False).returncode == 0:
                removed.append(name)
    return removed


def _atexit():
    with _live_lock:
        live = list(_live)
    for h in live:
        try:
            h.destroy()
        except Exception as e:
            print("netlab: cleanup: %s" % e, file=sys.stderr)


atexit.register(_atexit)


def install_sigterm_handler():
    """Make SIGTERM raise SystemExit, so with-blocks, finally clauses and atexit run."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


# -- iperf3 -------------------------------------------------------------------------------
def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def iperf_run(hosts, streams=1, seconds=3, port=None, extra_args=()):
    """One iperf3 test, client in A, server in B (or both on 127.0.0.1 when hosts is
    None). Returns a dict: gbit_received, gbit_sent, retransmits, streams, seconds,
    cpu_sender_pct, cpu_receiver_pct, and the config (rate, mtu)."""
    streams = int(streams)
    if hosts is None:
        srv_pre, cli_pre, addr = [], [], "127.0.0.1"
        port = port or _free_port()
    else:
        srv_pre, cli_pre, addr = hosts.exec_args("b"), hosts.exec_args("a"), hosts.addr("b")
        port = port or 5201
    server = subprocess.Popen(srv_pre + ["iperf3", "-s", "-1", "-B", addr, "-p", str(port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        res = None
        deadline = time.time() + 10
        while True:
            p = subprocess.run(cli_pre + ["iperf3", "-c", addr, "-p", str(port), "-P", str(streams),
                                          "-t", str(seconds), "-J"] + list(extra_args),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=seconds + 60)
            try:
                res = json.loads(p.stdout)
            except ValueError:
                res = {"error": (p.stderr or p.stdout).strip() or "no output"}
            err = res.get("error", "")
            if err and "connect" in err and time.time() < deadline and server.poll() is None:
                time.sleep(0.1)      # server not listening yet
                continue
            break
        if res.get("error"):
            raise NetlabError("iperf3: %s" % res["error"])
        end = res["end"]
        cpu = end.get("cpu_utilization_percent", {})
        return {
            "gbit_received": end["sum_received"]["bits_per_second"] / 1e9,
            "gbit_sent": end["sum_sent"]["bits_per_second"] / 1e9,
            "retransmits": end["sum_sent"].get("retransmits"),
            "streams": streams,
            "seconds": seconds,
            "cpu_sender_pct": cpu.get("host_total"),
            "cpu_receiver_pct": cpu.get("remote_total"),
            "rate": None if hosts is None else hosts.rate,
            "rate_gbit": None if hosts is None or not hosts.rate_bps else hosts.rate_bps / 1e9,
            "mtu": None if hosts is None else hosts.mtu,
            "link": "loopback" if hosts is None else "veth",
        }
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def _iperf_json(proc, what):
    out, err = proc.communicate()
    try:
        res = json.loads(out)
    except ValueError:
        res = {"error": (err or out).strip() or "no output"}
    if res.get("error"):
        raise NetlabError("iperf3 %s: %s" % (what, res["error"]))
    return res


def iperf_parallel(hosts, senders, seconds=3, client_prefix=(), server_prefix=()):
    """N-sender ceiling: `senders` iperf3 clients at once, one stream each, to as many
    servers on their own ports, summed. Debian's iperf3 (3.12) runs every -P stream in one
    thread, so -P N measures one core's worth, never N streams' ceiling. Clients in A,
    servers in B (hosts=None: 127.0.0.1 here); *_prefix goes before each command (e.g.
    taskset). Returns gbit_received (the sum), per_sender (list) and senders."""
    senders = int(senders)
    if hosts is None:
        srv_pre, cli_pre, addr = [], [], "127.0.0.1"
        ports = [_free_port() for _ in range(senders)]
    else:
        srv_pre, cli_pre, addr = hosts.exec_args("b"), hosts.exec_args("a"), hosts.addr("b")
        ports = [5301 + i for i in range(senders)]
    servers = [subprocess.Popen(srv_pre + list(server_prefix) +
                                ["iperf3", "-s", "-1", "-B", addr, "-p", str(p)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for p in ports]
    clients = []
    try:
        for p in ports:
            _wait_listening(srv_pre, p)
        clients = [subprocess.Popen(cli_pre + list(client_prefix) +
                                    ["iperf3", "-c", addr, "-p", str(p), "-t", str(seconds),
                                     "-J"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for p in ports]
        per = [_iperf_json(c, "client %d" % i)["end"]["sum_received"]["bits_per_second"] / 1e9
               for i, c in enumerate(clients)]
        return {"gbit_received": sum(per), "per_sender": per, "senders": senders,
                "seconds": seconds}
    finally:
        for proc in servers + clients:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _wait_listening(ns_prefix, port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(ns_prefix + ["ss", "-Hltn", "sport = :%d" % port],
                             stdout=subprocess.PIPE, text=True).stdout
        if "LISTEN" in out:
            return
        time.sleep(0.05)
    raise NetlabError("iperf3 server on port %d did not listen within %d s" % (port, timeout))


def iperf_ceiling(hosts, streams, seconds=3, samples=2):
    """Gbit/s received in B from A with `streams` parallel senders (iperf_parallel; hosts=
    None: both on 127.0.0.1 in the caller's namespace): the best of `samples` runs. A
    ceiling is a maximum, and on a 2-core machine one run now and then comes out at half
    the usual figure (one run at 40gbit gave 11.6 Gbit/s where four others gave 21-25)."""
    return max(iperf_parallel(hosts, streams, seconds)["gbit_received"]
               for _ in range(max(1, samples)))


def _main():
    import argparse
    ap = argparse.ArgumentParser(description="iperf3 ceilings on loopback and netlab hosts")
    ap.add_argument("--streams", default="1,2,4")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rates", default="", help="comma list of shaped rates, e.g. 10gbit,40gbit")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--no-loopback", action="store_true")
    ap.add_argument("--no-unshaped", action="store_true")
    a = ap.parse_args()
    install_sigterm_handler()
    streams = [int(s) for s in a.streams.split(",") if s]
    rows = []
    if not a.no_loopback:
        for s in streams:
            rows.append(iperf_run(None, s, a.seconds))
            print(json.dumps(rows[-1]), flush=True)
    with Hosts(mtu=a.mtu) as h:
        if not a.no_unshaped:
            for s in streams:
                rows.append(iperf_run(h, s, a.seconds))
                print(json.dumps(rows[-1]), flush=True)
        for r in [r for r in a.rates.split(",") if r]:
            h.reshape(r)
            for s in streams:
                rows.append(iperf_run(h, s, a.seconds))
                print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    _main()
