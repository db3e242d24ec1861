"""Three namespace hosts on one bridge segment, for the network benchmark (net_bench.py).

    with Segment() as seg:
        seg.exec_args("a") + ["build/vmshift", "run", ..., "--nic", "tap=vm0,...,bridge=brA"]
        seg.attach_tap("b", "qb0")          # a TAP QEMU made, into B's bridge

Layout (every name carries the creating PID, so concurrent runs do not meet):
  vsnb-PID-seg  the segment: bridge brseg, the uplinks of A, B and C are its ports
  vsnb-PID-a    host A: bridge brA, its uplink veth nbPIDAu <-> nbPIDAs (in seg)
  vsnb-PID-b    host B: bridge brB, its uplink nbPIDBu <-> nbPIDBs
  vsnb-PID-c    client C: nbPIDC with 198.18.0.100/24 <-> nbPIDCs (in seg)
  the migration link: nbPIDMa 198.18.1.1/24 (A) <-> nbPIDMb 198.18.1.2/24 (B)
The VMs' addresses are 198.18.0.x on the segment. Only 198.18.0.0/15 is used. destroy()
(also on leaving the with-block and at exit) kills what still runs in the namespaces (only
what the caller started there) and deletes them, which deletes every veth, bridge and TAP
in them. cleanup_stale() removes those of dead PIDs.
"""
import atexit
import os
import re
import subprocess

import netlab

PREFIX = "vsnb-"
CLIENT_ADDR = "198.18.0.100"
MIG_ADDR = {"a": "198.18.1.1", "b": "198.18.1.2"}
_live = set()


def _sh(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        raise netlab.NetlabError("%s failed (%d): %s" % (" ".join(argv), p.returncode,
                                                          (p.stderr or p.stdout).strip()))
    return p.stdout


class Segment:
    MIG_ADDR = MIG_ADDR
    CLIENT_ADDR = CLIENT_ADDR

    def __init__(self):
        pid = os.getpid()
        self.ns = {h: "%s%d-%s" % (PREFIX, pid, h) for h in ("seg", "a", "b", "c")}
        self.dev = "nb%d" % pid          # + Au, As, Bu, Bs, C, Cs, Ma, Mb
        self.client_dev = self.dev + "C"
        self._made = []
        _live.add(self)
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    def _ip(self, host, *args):
        return _sh(["ip", "-n", self.ns[host]] + list(args))

    def _create(self):
        for h, ns in self.ns.items():
            _sh(["ip", "netns", "add", ns])
            self._made.append(ns)
            self._ip(h, "link", "set", "lo", "up")
        self._ip("seg", "link", "add", "brseg", "type", "bridge")
        self._ip("seg", "link", "set", "brseg", "up")
        for h in ("a", "b"):
            br, up, port = "br" + h.upper(), self.dev + h.upper() + "u", self.dev + h.upper() + "s"
            self._ip(h, "link", "add", br, "type", "bridge")
            self._ip(h, "link", "set", br, "up")
            _sh(["ip", "link", "add", up, "netns", self.ns[h], "type", "veth", "peer", "name",
                 port, "netns", self.ns["seg"]])
            self._ip(h, "link", "set", up, "master", br, "up")
            self._ip("seg", "link", "set", port, "master", "brseg", "up")
        c, cs = self.client_dev, self.dev + "Cs"
        _sh(["ip", "link", "add", c, "netns", self.ns["c"], "type", "veth", "peer", "name", cs,
             "netns", self.ns["seg"]])
        self._ip("c", "addr", "add", CLIENT_ADDR + "/24", "dev", c)
        self._ip("c", "link", "set", c, "up")
        self._ip("seg", "link", "set", cs, "master", "brseg", "up")
        ma, mb = self.dev + "Ma", self.dev + "Mb"
        _sh(["ip", "link", "add", ma, "netns", self.ns["a"], "type", "veth", "peer", "name", mb,
             "netns", self.ns["b"]])
        for h, d in (("a", ma), ("b", mb)):
            self._ip(h, "addr", "add", MIG_ADDR[h] + "/24", "dev", d)
            self._ip(h, "link", "set", d, "up")

    def exec_args(self, host):
        return ["ip", "netns", "exec", self.ns[host]]

    def bridge(self, host):
        return "br" + host.upper()

    def attach_tap(self, host, tap):
        """Make an existing TAP of host a port of its bridge, up."""
        self._ip(host, "link", "set", tap, "master", self.bridge(host), "up")

    def links(self, host):
        """Names of the interfaces in a host's namespace."""
        out = self._ip(host, "-o", "link", "show")
        return [m.group(1).split("@")[0] for m in re.finditer(r"^\d+: ([^:]+):", out, re.M)]

    def destroy(self):
        errors = []
        for ns in self._made:
            left = netlab._kill_ns_processes(ns)
            if left:
                errors.append("%s: processes %s survived SIGKILL" % (ns, left))
            p = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if p.returncode != 0:
                errors.append(p.stderr.strip())
        self._made = []
        _live.discard(self)
        if errors:
            raise netlab.NetlabError("; ".join(errors))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False


def cleanup_stale():
    removed = []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)-(seg|a|b|c)$" % re.escape(PREFIX), name)
        if m and not netlab._pid_alive(int(m.group(1))):
            netlab._kill_ns_processes(name)
            if subprocess.run(["ip", "netns", "del", name]).returncode == 0:
                removed.append(name)
    return removed


@atexit.register
def _at_exit():
    for s in list(_live):
        try:
            s.destroy()
        except Exception:
            pass
