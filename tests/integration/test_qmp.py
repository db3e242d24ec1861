#!/usr/bin/env python3
"""Integration: drive vmshift as a QEMU management client drives QEMU, over QMP.

The client below is written from the QMP specification (QEMU's docs/interop/qmp-spec),
not from vmshift's C client: read the greeting, negotiate with qmp_capabilities, execute
commands with ids, keep the asynchronous events that arrive between replies, and check
the error classes. It migrates a running VM to a listening `vmshift receive` with
migrate-set-parameters + migrate {"uri": "tcp:127.0.0.1:PORT"}, polls query-migrate until
"completed", and checks the MIGRATION, MIGRATION_PASS, STOP and SHUTDOWN events: the
source ends by itself once its VM left (SHUTDOWN reason "migrated", exit 0), while the
receiver, started with --keep-after-migrate, stays in postmigrate until quit, as QEMU does.

Debian 12 packages no independent QMP client library (no python3-qemu.qmp), so this
test carries its own. Needs /dev/kvm (fails without it) and VMSHIFT_BIN (else build/vmshift).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VMSHIFT = os.environ.get("VMSHIFT_BIN") or os.path.join(ROOT, "build", "vmshift")
FINAL = ("completed", "failed", "cancelled", "unconfirmed")


class QMPError(Exception):
    def __init__(self, cls, desc):
        super().__init__("%s: %s" % (cls, desc))
        self.cls, self.desc = cls, desc


class QMPClient:
    """A minimal QMP client: one command in flight, events queued."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.next_id = 0
        self.greeting = self._recv()

    def _recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, name, arguments=None):
        """The command's return value; raises QMPError with the error's class."""
        self.next_id += 1
        msg = {"execute": name, "id": "c%d" % self.next_id}
        if arguments is not None:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode())  # no newline: QMP does not need one
        while True:
            r = self._recv()
            if "event" in r:
                self.events.append(r)
                continue
            assert r.get("id") == msg["id"], "reply with id %r to %r" % (r.get("id"), msg["id"])
            if "error" in r:
                raise QMPError(r["error"]["class"], r["error"]["desc"])
            return r["return"]

    def wait_event(self, name, timeout, data=None):
        """The first event called name (whose data has data's items), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e["event"] == name and all(e.get("data", {}).get(k) == v
                                              for k, v in (data or {}).items()):
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s event within %s s; got %s" % (
                    name, timeout, [e["event"] for e in self.events]))
            self.sock.settimeout(left)
            try:
                r = self._recv()
            except (socket.timeout, EOFError):
                continue
            if "event" in r:
                self.events.append(r)

    def close(self):
        self.sock.close()


def expect_error(q, cls, needle, name, arguments=None):
    try:
        q.execute(name, arguments)
    except QMPError as e:
        assert e.cls == cls, "%s: class %s, expected %s (%s)" % (name, e.cls, cls, e.desc)
        assert needle in e.desc, "%s: %r does not mention %r" % (name, e.desc, needle)
        return
    raise AssertionError("%s %s succeeded; expected %s" % (name, arguments, cls))


def wait_path(path, proc, log, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("%s did not appear; log:\n%s" % (path, open(log).read()))
        time.sleep(0.05)


def check_greeting_and_negotiation(q):
    g = q.greeting["QMP"]
    for k in ("major", "minor", "micro"):
        assert isinstance(g["version"]["qemu"][k], int), g
    assert isinstance(g["capabilities"], list), g
    expect_error(q, "CommandNotFound", "qmp_capabilities", "query-status")
    assert q.execute("qmp_capabilities") == {}
    expect_error(q, "CommandNotFound", "already complete", "qmp_capabilities")


def check_errors(q):
    expect_error(q, "CommandNotFound", "has not been found", "frobnicate")
    expect_error(q, "GenericError", "Parameter 'uri' is missing", "migrate", {})
    expect_error(q, "GenericError", "Invalid parameter type", "migrate", {"uri": 5})
    expect_error(q, "GenericError", "tcp:HOST:PORT", "migrate", {"uri": "exec:cat"})
    expect_error(q, "GenericError", "use blk=true", "migrate",
                 {"uri": "tcp:127.0.0.1:9", "inc": True})
    expect_error(q, "GenericError", "0 to 1000", "migrate-set-parameters",
                 {"x-max-passes": 5000})
    expect_error(q, "GenericError", "'bogus' is unexpected", "migrate-set-parameters",
                 {"bogus": 1})
    expect_error(q, "GenericError", "not supported", "migrate-set-capabilities",
                 {"capabilities": [{"capability": "x-colo", "state": True}]})
    # Nothing changed by the failed calls.
    assert q.execute("query-migrate-parameters")["x-max-passes"] == 30


def check_parameters_and_capabilities(q):
    q.execute("migrate-set-parameters", {"downtime-limit": 250, "x-insecure": True,
                                         "multifd-channels": 2})
    p = q.execute("query-migrate-parameters")
    assert p["downtime-limit"] == 250 and p["x-insecure"] is True, p
    assert p["multifd-channels"] == 2 and p["max-bandwidth"] == 0, p
    q.execute("migrate-set-capabilities",
              {"capabilities": [{"capability": "auto-converge", "state": True}]})
    caps = {c["capability"]: c["state"] for c in q.execute("query-migrate-capabilities")}
    assert caps == {"auto-converge": True, "postcopy-ram": False, "zero-copy-send": False}, caps
    assert q.execute("query-migrate-parameters")["x-converge"] == "throttle"
    q.execute("migrate-set-capabilities",
              {"capabilities": [{"capability": "auto-converge", "state": False}]})
    assert q.execute("query-migrate-parameters")["x-converge"] == "none"


def check_dirty_rate(q):
    assert q.execute("query-dirty-rate")["status"] == "unstarted"
    q.execute("calc-dirty-rate", {"calc-time": 300, "calc-time-unit": "millisecond"})
    # As in QEMU the measurement runs in the background: "measuring" until calc-time is over.
    assert q.execute("query-dirty-rate")["status"] == "measuring"
    expect_error(q, "GenericError", "running", "calc-dirty-rate", {"calc-time": 1})
    expect_error(q, "GenericError", "calc-dirty-rate", "migrate", {"uri": "tcp:127.0.0.1:9"})
    deadline = time.monotonic() + 30
    while q.execute("query-dirty-rate")["status"] == "measuring":
        assert time.monotonic() < deadline, "the measurement did not end"
        time.sleep(0.05)
    r = q.execute("query-dirty-rate")
    assert r["status"] == "measured" and r["calc-time"] == 0 and r["dirty-rate"] >= 0, r
    assert r["dirty-pages-rate"] > 0, r  # the continuous workload dirties memory


def event_time(e):
    return e["timestamp"]["seconds"] + e["timestamp"]["microseconds"] / 1e6


def migrate(q, port):
    assert q.execute("query-migrate") == {}
    q.migrate_sent = time.time()
    assert q.execute("migrate", {"uri": "tcp:127.0.0.1:%d" % port}) == {}
    q.migrate_answered = time.time()
    expect_error(q, "GenericError", "in progress", "migrate-set-parameters",
                 {"downtime-limit": 100})
    deadline = time.monotonic() + 120
    while True:
        m = q.execute("query-migrate")
        if m.get("status") in FINAL:
            break
        assert time.monotonic() < deadline, "migration did not end: %s" % m
        time.sleep(0.1)
    assert m["status"] == "completed", m
    for k in ("total-time", "downtime", "expected-downtime", "setup-time"):
        assert isinstance(m[k], (int, float)), (k, m)
    ram = m["ram"]
    for k in ("transferred", "remaining", "total", "duplicate", "normal", "normal-bytes",
              "dirty-pages-rate", "mbps", "dirty-sync-count"):
        assert k in ram, (k, ram)
    assert ram["total"] == 64 << 20 and ram["transferred"] > 0 and ram["remaining"] == 0, ram
    assert ram["dirty-sync-count"] >= 1, ram
    return m


def check_events(q, report):
    # The monitor reports what it sees every 50 ms: a short status may be skipped, but
    # the sequence ends with the final one.
    q.wait_event("MIGRATION", 5, {"status": "completed"})
    statuses = [e["data"]["status"] for e in q.events if e["event"] == "MIGRATION"]
    assert statuses[-1] == "completed", statuses
    passes = [e["data"]["pass"] for e in q.events if e["event"] == "MIGRATION_PASS"]
    assert passes and passes == sorted(passes), passes
    assert passes[-1] == report["ram"]["dirty-sync-count"], (passes, report["ram"])
    stop = q.wait_event("STOP", 5)
    ts = stop["timestamp"]
    assert ts["seconds"] > 1600000000 and 0 <= ts["microseconds"] < 1000000, ts
    # STOP is stamped when the vCPUs stopped (the migration's pause, which began at
    # switchover-at and took part of the downtime), not when the monitor's 50 ms watch
    # noticed it.
    at = report["switchover-at"] / 1e3
    earliest = q.migrate_sent + at - 0.002
    latest = q.migrate_answered + at + report["downtime"] / 1e3 + 0.002
    print("STOP after the pause began: %.1f ms (window %.1f ms)" % ((event_time(stop) - earliest) * 1e3, (latest - earliest) * 1e3))
    assert earliest <= event_time(stop) <= latest, (earliest, event_time(stop), latest)


def migrate_back_with_cli(d, sock, procs):
    """`vmshift migrate` (a QMP client too: parameters, capabilities, migrate, events) moves
    the VM on to a third receiver. Returns that receiver's control socket."""
    port_file, back_sock, log = d + "/port2", d + "/back.sock", d + "/back.log"
    recv = subprocess.Popen([VMSHIFT, "receive", "--listen", "127.0.0.1:0", "--port-file",
                             port_file, "--ctl", back_sock, "--serial", "none", "--insecure"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    procs.append(recv)
    wait_path(port_file, recv, log)
    time.sleep(0.2)
    to = "127.0.0.1:%d" % int(open(port_file).read())
    r = subprocess.run([VMSHIFT, "migrate", sock, "--to", to, "--insecure", "--streams", "2",
                        "--downtime-limit", "400", "--report", d + "/report.json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "vmshift migrate: %d\n%s" % (r.returncode, r.stderr)
    assert "migration completed" in r.stdout, r.stdout
    report = json.load(open(d + "/report.json"))
    assert report["status"] == "completed" and report["streams"]["count"] == 2, report
    assert report["downtime-limit"] == 400, report["downtime-limit"]
    # Parameters it did not give are at their defaults, whatever was set before.
    q = QMPClient(sock)
    q.execute("qmp_capabilities")
    p = q.execute("query-migrate-parameters")
    assert p["multifd-channels"] == 2 and p["x-max-passes"] == 30, p
    q.execute("quit")
    q.close()
    wait_path(back_sock, recv, log)
    return back_sock


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("FAIL: /dev/kvm is missing or not accessible; this test needs KVM")
        return 1
    d = tempfile.mkdtemp(prefix="vmshift-qmp-")
    procs = []
    try:
        src_sock, dst_sock, port_file = d + "/src.sock", d + "/dst.sock", d + "/port"
        src_log, dst_log = d + "/src.log", d + "/dst.log"
        src = subprocess.Popen([VMSHIFT, "run", "--mem", "64M", "--vcpus", "1", "--workload",
                                "continuous", "--rate", "2000", "--ctl", src_sock,
                                "--serial", "none"], stdout=subprocess.DEVNULL,
                               stderr=open(src_log, "w"))
        procs.append(src)
        dst = subprocess.Popen([VMSHIFT, "receive", "--listen", "127.0.0.1:0", "--port-file",
                                port_file, "--ctl", dst_sock, "--serial", "none",
                                "--insecure", "--keep-after-migrate"], stdout=subprocess.DEVNULL,
                               stderr=open(dst_log, "w"))
        procs.append(dst)
        wait_path(src_sock, src, src_log)
        wait_path(port_file, dst, dst_log)
        time.sleep(0.2)
        port = int(open(port_file).read())

        q = QMPClient(src_sock)
        check_greeting_and_negotiation(q)
        deadline = time.monotonic() + 60
        while q.execute("vmshift-status")["guest"].get("pages_written", 0) < 2000:
            assert time.monotonic() < deadline, "the guest workload did not start"
            time.sleep(0.1)
        st = q.execute("query-status")
        assert st["running"] is True and st["status"] == "running", st
        check_errors(q)
        check_parameters_and_capabilities(q)
        check_dirty_rate(q)
        report = migrate(q, port)
        check_events(q, report)
        st = q.execute("query-status")
        assert st == {"running": False, "singlestep": False, "status": "postmigrate"}, st
        # Its VM left: the source ends by itself a moment later.
        shutdown = q.wait_event("SHUTDOWN", 10)
        assert shutdown["data"] == {"guest": False, "reason": "migrated"}, shutdown
        q.close()
        assert src.wait(timeout=30) == 0, "exit status %s" % src.returncode
        assert not os.path.exists(src_sock), "the source left its control socket"

        wait_path(dst_sock, dst, dst_log)
        qd = QMPClient(dst_sock)
        qd.execute("qmp_capabilities")
        st = qd.execute("query-status")
        assert st["running"] is True and st["status"] == "running", st
        assert qd.execute("query-migrate")["status"] == "completed"
        qd.close()
        back = migrate_back_with_cli(d, dst_sock, procs)

        qb = QMPClient(back)
        qb.execute("qmp_capabilities")
        assert qb.execute("query-status")["status"] == "running"
        assert qb.execute("quit") == {}
        shutdown = qb.wait_event("SHUTDOWN", 10)
        assert shutdown["data"] == {"guest": False, "reason": "host-qmp-quit"}, shutdown
        qb.close()
        for p in procs:
            assert p.wait(timeout=30) == 0, "exit status %s" % p.returncode
        print("PASS: QMP session, errors, parameters, migration, events")
        return 0
    except Exception:
        for log in ("src.log", "dst.log", "back.log"):
            path = os.path.join(d, log)
            if os.path.exists(path):
                sys.stderr.write("---- %s\n%s\n" % (log, open(path).read()[-4000:]))
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
