"""One vmshift live migration for the benchmark: boot a source VM (vmshift run) in one
host, a receiver (vmshift receive) in the other, migrate, and return the measurements in
the same shape as qemu_peer.qemu_migrate() so the two can be put side by side.

    r = vmshift_migrate(mem="4G", workload="once", fill="random", streams=2,
                        src_prefix=hosts.exec_args("a"), dst_prefix=hosts.exec_args("b"),
                        dst_addr="198.18.0.2")

A threading.Barrier may be passed as start_barrier: every migration of a group then waits
for the others before it starts (eight VMs migrated at once).

security: "insecure" (plain TCP, the default: what QEMU's plain tcp: migration compares
with), "psk" (TLS 1.3 with a pre-shared key) or "cert" (TLS 1.3 with certificates both
ways), with credentials made once per process by scripts/make-test-certs.sh.
ciphersuites: an OpenSSL TLS 1.3 suite list for both sides (VMSHIFT_TLS_CIPHERSUITES), to
compare ciphers; None = vmshift's default.
recv_args: more `vmshift receive` options (e.g. ["--page-writes", "mapping"]);
run_args: more `vmshift run` options (e.g. ["--dirty-ring", "65536"]); migrate_args: more
fields of the migrate request (e.g. {"converge": "throttle"}); guest_samples: poll the
guest's telemetry (pages written, all vCPUs) every 0.1 s from 1 s before the migration
until the switchover, as result["guest_samples"] [(t_s since migrate, pages)] and
result["guest_baseline_pps"] (pages/s in that last second before it).
"""
import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VMSHIFT = os.environ.get("VMSHIFT_BIN") or os.path.join(ROOT, "build", "vmshift")


class VmshiftPeerError(RuntimeError):
    pass


_creds = None


def credentials():
    """The directory of the test credentials (made on first use, removed at exit)."""
    global _creds
    if _creds is None:
        d = tempfile.mkdtemp(prefix="vmshift-bench-creds-")
        subprocess.run([os.path.join(ROOT, "scripts", "make-test-certs.sh"), d], check=True,
                       stdout=subprocess.DEVNULL)
        atexit.register(shutil.rmtree, d, ignore_errors=True)
        _creds = d
    return _creds


def security_options(security):
    """(vmshift receive arguments, migrate request fields) for a security mode."""
    if security == "insecure":
        return ["--insecure"], {"insecure": True}
    c = credentials()
    if security == "psk":
        return ["--tls-psk", c + "/psk"], {"tls_psk": c + "/psk"}
    if security == "cert":
        return (["--tls-cert", c + "/dest.pem", "--tls-key", c + "/dest.key",
                 "--tls-ca", c + "/ca.pem"],
                {"tls_cert": c + "/source.pem", "tls_key": c + "/source.key",
                 "tls_ca": c + "/ca.pem"})
    raise ValueError("security must be insecure, psk or cert, not %r" % security)


class Qmp:
    """A QMP session on a vmshift control socket (docs/control-protocol.md)."""

    def __init__(self, sock, timeout):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(sock)
        self.f = self.s.makefile("rb")
        if "QMP" not in self._read():
            raise VmshiftPeerError("%s: no QMP greeting" % sock)
        self.execute("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise VmshiftPeerError("the control socket closed the connection")
        return json.loads(line)

    def execute(self, name, args=None):
        msg = {"execute": name, "id": name}
        if args:
            msg["arguments"] = args
        self.s.sendall((json.dumps(msg) + "\n").encode())
        while True:
            r = self._read()
            if "event" in r:
                continue
            if "error" in r:
                raise VmshiftPeerError("%s: %s" % (name, r["error"].get("desc")))
            return r["return"]

    def close(self):
        self.f.close()
        self.s.close()


# The old command names this module's callers use, and the old migrate fields.
OLD_COMMANDS = {"status": "vmshift-status", "migrate-status": "vmshift-status",
                "start-postcopy": "migrate-start-postcopy", "cancel": "migrate_cancel",
                "set-rate": "vmshift-set-rate", "digest": "vmshift-digest"}
MIGRATE_PARAMETERS = {"streams": "multifd-channels", "compress": "multifd-compression",
                      "max_bandwidth": "max-bandwidth", "converge": "x-converge",
                      "downtime_limit": "downtime-limit", "max_passes": "x-max-passes",
                      "timeout_ms": "x-peer-timeout", "downtime_schedule": "x-downtime-schedule",
                      "max_downtime": "x-max-downtime", "insecure": "x-insecure",
                      "tls_psk": "x-tls-psk", "tls_cert": "x-tls-cert", "tls_key": "x-tls-key",
                      "tls_ca": "x-tls-ca", "tls_name": "tls-hostname", "ktls": "x-ktls"}
MIGRATE_CAPABILITIES = {"zerocopy": "zero-copy-send"}


def _migrate(q, args):
    params, caps = {}, []
    for k, v in args.items():
        if k == "to":
            continue
        if k in MIGRATE_CAPABILITIES:
            caps.append({"capability": MIGRATE_CAPABILITIES[k], "state": bool(v)})
        else:
            params[MIGRATE_PARAMETERS.get(k, k)] = v
    q.execute("migrate-set-parameters", params)
    q.execute("migrate-set-capabilities", {"capabilities": caps})
    return q.execute("migrate", {"uri": "tcp:" + args["to"]})


def ctl(sock, cmd, timeout=10, **args):
    """One command on a vmshift control socket (QMP), by its QMP name or one of the old
    names above; returns the command's return value."""
    q = Qmp(sock, timeout)
    try:
        if cmd == "migrate" and "to" in args:
            return _migrate(q, args)
        return q.execute(OLD_COMMANDS.get(cmd, cmd), args)
    finally:
        q.close()


def guest_pages(sock):
    """Pages the guest workload has written so far, all vCPUs (its telemetry)."""
    return ctl(sock, "status").get("guest", {}).get("pages_written", 0)


def _wait_for(pred, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            tail = open(log).read()[-2000:] if log and os.path.exists(log) else ""
            raise VmshiftPeerError("%s: process exited with %s\n%s" % (what, proc.returncode, tail))
        time.sleep(0.05)
    raise VmshiftPeerError("timed out waiting for " + what)


def vmshift_migrate(mem="1G", vcpus=1, workload="once", fill="random", seed=1, rate=0,
                    streams=2, compress="none", zerocopy=False, downtime_limit_ms=300,
                    max_bandwidth=0, src_prefix=(), dst_prefix=(), dst_addr="127.0.0.1",
                    settle_s=1.0, timeout_s=300, start_barrier=None, keep_dir=False,
                    postcopy_after_s=None, after_s=0, security="insecure", ciphersuites=None,
                    run_args=(), migrate_args=None, guest_samples=False, recv_args=()):
    """postcopy_after_s: `start-postcopy` this long after `migrate`. guest_progress:
    [(t_s since `migrate`, pages written by the guest)] just before `migrate` and on the
    destination for after_s seconds after the end; guest_rate_pages_s: the guest's write
    rate during settle_s before `migrate` (as in qemu_peer). security: "insecure", "psk"
    or "cert" (see security_options); ciphersuites: TLS 1.3 suites to offer."""
    recv_sec, migrate_sec = security_options(security)
    env = dict(os.environ)
    if ciphersuites:
        env["VMSHIFT_TLS_CIPHERSUITES"] = ciphersuites
    d = tempfile.mkdtemp(prefix="vmshift-bench-")
    src_sock, dst_sock = os.path.join(d, "src.sock"), os.path.join(d, "dst.sock")
    port_file = os.path.join(d, "port")
    src_log, dst_log = os.path.join(d, "src.log"), os.path.join(d, "dst.log")
    dst_report = os.path.join(d, "dst.json")
    procs = []
    try:
        src_cmd = list(src_prefix) + [VMSHIFT, "run", "--mem", mem, "--vcpus", str(vcpus),
                                      "--workload", workload, "--fill", fill, "--seed", str(seed),
                                      "--ctl", src_sock, "--serial", "none"]
        if rate:
            src_cmd += ["--rate", str(rate)]
        src_cmd += list(run_args)
        dst_cmd = list(dst_prefix) + [VMSHIFT, "receive", "--listen", dst_addr + ":0",
                                      "--port-file", port_file, "--ctl", dst_sock,
                                      "--serial", "none", "--report", dst_report,
                                      "--timeout", str(int(timeout_s))] + recv_sec + \
            list(recv_args)
        src = subprocess.Popen(src_cmd, stdout=subprocess.DEVNULL, stderr=open(src_log, "w"),
                               env=env)
        procs.append(src)
        dst = subprocess.Popen(dst_cmd, stdout=subprocess.DEVNULL, stderr=open(dst_log, "w"),
                               env=env)
        procs.append(dst)
        _wait_for(lambda: os.path.exists(src_sock), 120, "the source VM", src, src_log)
        _wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 60,
                  "the receiver", dst, dst_log)
        port = int(open(port_file).read())
        # Let the workload run (and touch its memory) before migrating.
        _wait_for(lambda: ctl(src_sock, "status")["guest"].get("state") in ("running", "idle"), 120,
                  "the guest workload", src, src_log)
        written = lambda st: st.get("guest", {}).get("pages_written", 0)
        ta, wa = time.monotonic(), written(ctl(src_sock, "status"))
        time.sleep(settle_s)
        tb, wb = time.monotonic(), written(ctl(src_sock, "status"))
        args = {"to": "%s:%d" % (dst_addr, port), "streams": streams, "compress": compress,
                "zerocopy": bool(zerocopy), "downtime_limit": downtime_limit_ms,
                "timeout_ms": int(timeout_s * 1000)}
        args.update(migrate_sec)
        if max_bandwidth:
            args["max_bandwidth"] = int(max_bandwidth)
        args.update(migrate_args or {})
        if start_barrier is not None:
            start_barrier.wait()
        gsamples = []
        if guest_samples:
            b0 = (time.monotonic(), guest_pages(src_sock))
            time.sleep(1.0)
            b1 = (time.monotonic(), guest_pages(src_sock))
            baseline = (b1[1] - b0[1]) / (b1[0] - b0[0])
        t0 = time.monotonic()
        ctl(src_sock, "migrate", **args)
        report = None
        next_sample = t0
        while time.monotonic() - t0 < timeout_s:
            if guest_samples and time.monotonic() >= next_sample:
                gsamples.append((time.monotonic() - t0, guest_pages(src_sock)))
                next_sample += 0.1
            m = ctl(src_sock, "migrate-status").get("migration", {})
            if m.get("status") in ("completed", "failed", "cancelled", "unconfirmed",
                                   "postcopy-paused"):
                report = m
                break
            if postcopy_after_s is not None and time.monotonic() - t0 >= postcopy_after_s \
                    and m.get("status") == "active":
                ctl(src_sock, "start-postcopy")
                postcopy_after_s = None
            time.sleep(0.02 if guest_samples else 0.05)
        wall_s = time.monotonic() - t0
        if report is None:
            raise VmshiftPeerError("migration did not finish in %d s" % timeout_s)
        result = {"impl": "vmshift", "status": report.get("status"), "error": report.get("error"),
                  "wall_s": wall_s, "t0_mono": t0,
                  "guest_rate_pages_s": (wb - wa) / max(tb - ta, 1e-3),
                  "guest_progress": [(tb - t0, wb)]}
        if guest_samples:
            result["guest_samples"] = gsamples
            result["guest_baseline_pps"] = baseline
        if report.get("status") == "completed":
            _wait_for(lambda: os.path.exists(dst_sock), 30, "the destination VM", dst, dst_log)
            time.sleep(0.3)
            st = ctl(dst_sock, "status")
            result["dst_state"] = st.get("state")
            result["guest_errors"] = st.get("guest", {}).get("errors")
            inc = st.get("incoming", {})
            result["cpu_dst_s"] = inc.get("cpu", {}).get("seconds")
            result["digest_equal"] = inc.get("ram-digest") == report.get("ram-digest")
            t_end = time.monotonic() + after_s
            while time.monotonic() < t_end:
                st = ctl(dst_sock, "status")
                result["guest_progress"].append((time.monotonic() - t0, written(st)))
                result["guest_errors"] = st.get("guest", {}).get("errors")
                time.sleep(0.1)
        ram = report.get("ram", {})
        bw = report.get("bandwidth", {})
        interval = bw.get("interval-ms", 100) / 1000.0
        samples, total = [], 0.0
        for i, mbps in enumerate(bw.get("mbps", [])):
            total += mbps * 1e6 / 8 * interval
            samples.append(((i + 1) * interval, total))
        result.update({
            "total_time_ms": report.get("total-time"),
            "downtime_ms": report.get("downtime"),
            "setup_time_ms": report.get("setup-time"),
            "switchover_at_ms": report.get("switchover-at"),
            "transferred_bytes": ram.get("transferred"),
            "normal_pages": ram.get("normal"),
            "zero_pages": ram.get("duplicate"),
            "skipped_pages": ram.get("skipped"),
            "compressed_pages": ram.get("compressed"),
            "compression_ratio": ram.get("compression-ratio"),
            "mbps": ram.get("mbps"),
            "iterations": report.get("iterations"),
            "cpu_src_s": report.get("cpu", {}).get("seconds"),
            "streams": report.get("streams", {}).get("count"),
            "security": report.get("security", {}).get("mode"),
            "cipher": report.get("security", {}).get("cipher"),
            "samples": samples,
            "report": report,
        })
        return result
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if not keep_dir:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--workload", default="once")
    ap.add_argument("--fill", default="random")
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--compress", default="none")
    ap.add_argument("--security", default="insecure", choices=("insecure", "psk", "cert"))
    a = ap.parse_args()
    r = vmshift_migrate(mem=a.mem, workload=a.workload, fill=a.fill, streams=a.streams,
                        compress=a.compress, security=a.security)
    r.pop("report", None)
    print(json.dumps(r, indent=1))
