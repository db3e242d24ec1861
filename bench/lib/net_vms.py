"""A networked VM that hops between the hosts of a net_segment.Segment, under vmshift or
under QEMU, with one interface for the network benchmark (bench/net_bench.py):

    vm = VmshiftNetVm(seg, workdir)   # or QemuNetVm(seg, workdir)
    vm.start("a")                     # the net workload at GUEST_IP, NIC on A's bridge
    m = vm.migrate("b")               # {"status", "downtime_ms", "t_migrate", "t_stop",
                                      #  "t_resume", "total_ms", ...}; now the VM runs on B
    vm.stop()

Both boot the same PVH guest ELF (build/guest/vmshift-guest.elf) with `workload=net
ip=GUEST_IP`. vmshift: `vmshift run --nic tap=...,bridge=brA` and `vmshift receive --nic
...` on the destination; the move announced by the NIC (RARP + gratuitous ARP on the
default schedule 50/550/5/100 ms) and by the guest (GUEST_ANNOUNCE). QEMU: `-M
microvm,acpi=off -accel tcg` with `-netdev tap` and `-device virtio-net-device` (modern
virtio-mmio), the TAP put into the host's bridge once QEMU made it; the destination waits
with `-incoming defer`; QEMU's announce after the move (its self-announce RARPs and
GUEST_ANNOUNCE) with the same parameters set on both sides. Each hop uses a fresh TAP
name (t<hop><host>), and the source is gone once the move completed (vmshift exits by
itself; the paused QEMU source is killed), so no TAP is left behind.

Times are host wall-clock seconds (QMP event timestamps and the client's kernel arrival
stamps share that clock). QEMU: t_stop is the source's STOP event, t_resume the
destination's RESUME event (both stamped as they happen). vmshift: t_stop is the moment
`migrate` was handled (the middle of the request's round trip, t_stop_error_ms either
way) plus the report's switchover-at (the pause), t_resume is t_stop + its downtime
(source vCPU stop to destination vCPU resume, exact on one host); its STOP event is
stamped by the monitor's 50 ms poll loop, up to 50 ms late, so it is only kept as
t_stop_event.
"""
import os
import subprocess
import time

from guest_image import elf_symbol, read_telemetry
from qmp import Qmp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VMSHIFT = os.environ.get("VMSHIFT_BIN") or os.path.join(ROOT, "build", "vmshift")
GUEST_ELF = os.environ.get("VMSHIFT_GUEST") or os.path.join(ROOT, "build", "guest",
                                                             "vmshift-guest.elf")
QEMU = "qemu-system-x86_64"
GUEST_IP = "198.18.0.10"
GUEST_MAC = "52:54:00:5e:00:10"
ANNOUNCE = {"announce-initial": 50, "announce-max": 550, "announce-rounds": 5,
            "announce-step": 100}


class NetVmError(RuntimeError):
    pass


def _wait(pred, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            tail = open(log, errors="replace").read()[-1500:] if log and os.path.exists(log) else ""
            raise NetVmError("%s: the process exited (%s)\n%s" % (what, proc.returncode, tail))
        time.sleep(0.02)
    raise NetVmError("timed out waiting for " + what)


def _kill(proc):
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class _NetVm:
    impl = "?"

    def __init__(self, seg, workdir, mem="64M", stream=None):
        """stream: {"rate": datagrams/s, "peer": "IP:PORT", "seed": N} runs the
        net-stream workload (guest/net_stream.h) instead of net."""
        self.seg, self.wd, self.mem, self.stream = seg, workdir, mem, stream
        self.hop = 0
        self.host = None
        self.proc = None
        self.qmp = None
        self.workload = "net-stream" if stream else "net"
        self.params = "ip=%s" % GUEST_IP
        if stream:
            self.params += " peer=%s seed=%d" % (stream["peer"], stream["seed"])
        self.cmdline = "workload=%s %s cpus=1" % (self.workload, self.params)
        if stream:
            self.cmdline += " rate=%d" % stream["rate"]

    def _path(self, name):
        return os.path.join(self.wd, "%s-%d-%s" % (self.impl, self.hop, name))

    def tap(self, host):
        return "t%d%s" % (self.hop, host)

    def stop(self):
        if self.qmp:
            self.qmp.close()
            self.qmp = None
        _kill(self.proc)
        self.proc = None


class VmshiftNetVm(_NetVm):
    impl = "vmshift"

    def _nic(self, host):
        return "tap=%s,mac=%s,bridge=%s,ip=%s" % (self.tap(host), GUEST_MAC,
                                                   self.seg.bridge(host), GUEST_IP)

    def start(self, host):
        self.host = host
        sock, log = self._path("ctl.sock"), self._path("log")
        argv = self.seg.exec_args(host) + [
            VMSHIFT, "run", "--mem", self.mem, "--workload", self.workload, "--append",
            self.params, "--kernel", GUEST_ELF, "--nic", self._nic(host), "--ctl", sock,
            "--serial", self._path("serial")]
        if self.stream:
            argv += ["--rate", str(self.stream["rate"])]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        _wait(lambda: os.path.exists(sock), 60, "vmshift run on " + host, self.proc, log)
        self.qmp = Qmp(sock, proc=self.proc)

    def migrate(self, host):
        self.hop += 1
        sock, log, pf = self._path("ctl.sock"), self._path("log"), self._path("port")
        report = self._path("report.json")
        addr = self.seg.MIG_ADDR[host]
        argv = self.seg.exec_args(host) + [
            VMSHIFT, "receive", "--listen", addr + ":0", "--port-file", pf, "--ctl", sock,
            "--serial", self._path("serial"), "--insecure", "--report", report,
            "--nic", self._nic(host), "--timeout", "120"]
        dst = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=open(log, "w"))
        try:
            _wait(lambda: os.path.exists(pf) and open(pf).read().strip(), 60,
                  "vmshift receive on " + host, dst, log)
            port = int(open(pf).read())
            q = self.qmp
            q.execute("migrate-set-parameters", {"x-insecure": True})
            n_ev = len(q.events)
            t0 = time.time()
            q.execute("migrate", {"uri": "tcp:%s:%d" % (addr, port)})
            t1 = time.time()
            rep = self._wait_migration(q, 120)
        except BaseException:
            _kill(dst)
            raise
        stops = [e for e in q.events[n_ev:] if e["event"] == "STOP"]
        res = {"status": rep.get("status"), "error": rep.get("error"), "t_migrate": t0,
               "downtime_ms": rep.get("downtime"), "total_ms": rep.get("total-time"),
               "from": self.host, "to": host}
        if res["status"] != "completed":
            _kill(dst)
            return res
        # The migration's clock starts while `migrate` is handled (between t0 and t1);
        # switchover-at is the pause, downtime runs from there to the resume. (The STOP
        # event comes from the monitor's 50 ms poll loop: up to 50 ms late.)
        res["t_stop_event"] = stops[0]["ts"] if stops else None
        res["t_stop_error_ms"] = (t1 - t0) * 500.0
        sw = rep.get("switchover-at")
        if sw is not None and res["downtime_ms"] is not None:
            res["t_stop"] = (t0 + t1) / 2 + sw / 1000.0
            res["t_resume"] = res["t_stop"] + res["downtime_ms"] / 1000.0
        old = self.proc
        self.qmp.close()
        self.proc, self.host = dst, host
        _wait(lambda: os.path.exists(sock), 30, "the destination's control socket", dst, log)
        self.qmp = Qmp(sock, proc=dst)
        try:
            old.wait(timeout=15)          # exits 2 s after the completed migration
        except subprocess.TimeoutExpired:
            _kill(old)
        return res

    @staticmethod
    def _wait_migration(q, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = q.execute("query-migrate")
            if m.get("status") in ("completed", "failed", "cancelled", "unconfirmed"):
                return m
            time.sleep(0.02)
        raise NetVmError("migration did not end in %d s" % timeout)

    def nic_status(self):
        return (self.qmp.execute("vmshift-status").get("nics") or [{}])[0]

    def pause_and_count(self):
        """Pause the VM; the datagrams its guest sent (telemetry), or None."""
        self.qmp.execute("stop")
        g = self.qmp.execute("vmshift-status").get("guest") or {}
        return g.get("passes")


class QemuNetVm(_NetVm):
    impl = "qemu"
    accel = "tcg"      # net_bench --qemu-accel kvm: the guest on the same engine as vmshift's

    def _spawn(self, host, incoming):
        log, qsock = self._path("log"), self._path("qmp.sock")
        tap = self.tap(host)
        argv = self.seg.exec_args(host) + [
            QEMU, "-M", "microvm,acpi=off", "-accel", self.accel, "-nodefaults", "-display", "none",
            "-m", self.mem, "-kernel", GUEST_ELF, "-append", self.cmdline, "-no-reboot",
            "-global", "virtio-mmio.force-legacy=false",
            "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
            "-device", "virtio-net-device,netdev=n0,mac=" + GUEST_MAC,
            "-serial", "file:" + self._path("serial"),
            "-qmp", "unix:%s,server=on,wait=off" % qsock]
        if incoming:
            argv += ["-incoming", "defer"]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
        try:
            q = Qmp(qsock, proc=p)
            self.seg.attach_tap(host, tap)
            q.execute("migrate-set-capabilities",
                      {"capabilities": [{"capability": "events", "state": True}]})
            q.execute("migrate-set-parameters", dict(ANNOUNCE))
        except BaseException:
            _kill(p)
            raise
        return p, q

    def start(self, host):
        self.host = host
        self.proc, self.qmp = self._spawn(host, False)

    def pause_and_count(self):
        """Pause the VM; the datagrams its guest sent (telemetry via pmemsave), or None."""
        self.qmp.execute("stop")
        addr = elf_symbol(GUEST_ELF, "telemetry_page")
        tel = read_telemetry(self.qmp, addr, self._path("telemetry.bin")) if addr else None
        return tel["cpus"][0]["passes"] if tel else None

    def migrate(self, host):
        self.hop += 1
        dst, qd = self._spawn(host, True)
        addr = self.seg.MIG_ADDR[host]
        port = 47000 + self.hop
        try:
            qd.execute("migrate-incoming", {"uri": "tcp:%s:%d" % (addr, port)})
            qs = self.qmp
            n_ev = len(qs.events)
            t0 = time.time()
            qs.execute("migrate", {"uri": "tcp:%s:%d" % (addr, port)})
            rep = self._wait_migration(qs, 120)
            res = {"status": rep.get("status"), "error": rep.get("error-desc"),
                   "t_migrate": t0, "downtime_qemu_ms": rep.get("downtime"),
                   "total_ms": rep.get("total-time"), "from": self.host, "to": host}
            if res["status"] != "completed":
                raise NetVmError("QEMU migration %s: %s" % (res["status"], res["error"]))
            _wait(lambda: qd.event("RESUME") is not None, 30, "the destination's RESUME", dst,
                  self._path("log"))
        except BaseException:
            qd.close()
            _kill(dst)
            raise
        stops = [e for e in qs.events[n_ev:] if e["event"] == "STOP"]
        res["t_stop"] = stops[0]["ts"] if stops else None
        res["t_resume"] = qd.event("RESUME")["ts"]
        if res["t_stop"] is not None:
            res["downtime_ms"] = (res["t_resume"] - res["t_stop"]) * 1000.0
        self.stop()                       # the paused source and its TAP go away
        self.proc, self.qmp, self.host = dst, qd, host
        return res

    @staticmethod
    def _wait_migration(q, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = q.execute("query-migrate")
            if m.get("status") in ("completed", "failed", "cancelled"):
                if m.get("status") != "completed" or m.get("total-time"):
                    return m
            time.sleep(0.02)
        raise NetVmError("migration did not end in %d s" % timeout)
