#!/usr/bin/python3
"""Shared-nothing migration benchmark: a VM and its local disk move together, vmshift
(`migrate --with-disks` into `receive --disk DEST_FILE`) vs QEMU's storage migration as
libvirt drives it, same guest, same data, same run.

The VM: --mem of RAM (4 GiB), one --disk-size raw disk (8 GiB) holding --data bytes (half
the disk) of random data, written from the host at offset 64 MiB
(the same pseudo-random bytes for both VMMs, made once per run of this script), holes
elsewhere. The guest runs the `disk` workload (guest/disk.c) on the disk's first --blocks
4 KiB blocks, as fast as the instruction emulator lets it (the guest has no rate knob: its
write rate, measured before each move, is in the table). The two hosts are namespaces
joined by a veth shaped to --rate (tbf, default 10gbit), as in disk_bench.py.

  vmshift: `vmshift run --disk SRC` in host a, `vmshift receive --disk DST` in host b (DST
    pre-created empty, same size), `migrate ... with_disks`.
  QEMU:    source `-drive file=SRC` in host a; destination in host b started with -S and
    `-incoming defer` on an empty DST, `nbd-server-start` + `nbd-server-add` (writable) of
    its disk, `migrate-incoming`; the source `blockdev-add`s the NBD export and runs
    `blockdev-mirror` sync=full to it, waits for the job to be ready, `migrate`s, and when
    the migration has completed `block-job-cancel`s the ready mirror (which completes the
    copy: the target is consistent), then the destination `nbd-server-stop`s and `cont`s.

Per VMM and run: total time (host clock, from the first command to the destination
running), each VMM's own figures (vmshift's total-time/downtime; QEMU's mirror + migrate
times and the guest's blackout: the destination's RESUME minus the source's STOP event),
bytes on the wire (tx + rx of host a's veth, /sys/class/net counters, the same for both),
the guest's longest I/O stall (host-sampled as in disk_bench.py), and the disks compared:
once the destination has run --after seconds it is stopped, and the source's file and the
destination's must be equal everywhere but the workload's blocks (which the destination
kept writing; the guest checks those on every read: errors must stay 0).

    sudo python3 bench/disk_migrate_bench.py [--runs 3] [--rate 10gbit]
    sudo python3 bench/disk_migrate_bench.py --quick   # CI: 256 MiB + 256 MiB, 1 run

Writes results.json, tables.txt, disk_migrate.csv and disk_migrate.png into --out.
"""
import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))

import disk_bench as db  # noqa: E402
from netlab import Hosts, install_sigterm_handler  # noqa: E402
from plots import gnuplot  # noqa: E402
from vmshift_peer import ctl, security_options  # noqa: E402

DATA_OFFSET = 64 << 20
CHUNK = 1 << 20
MIG_PORT, NBD_PORT = 47100, 10809


def parse_size(s):
    units = {"K": 10, "M": 20, "G": 30}
    s = str(s).upper().rstrip("B").rstrip("I")
    return int(s[:-1]) << units[s[-1]] if s[-1] in units else int(s)


# -- the disks ---------------------------------------------------------------------------
def make_random(path, size):
    """size pseudo-random bytes (AES-CTR of zeros under a fixed key: the same every time)."""
    with open(path, "wb") as out:
        p = subprocess.Popen("head -c %d /dev/zero | openssl enc -aes-128-ctr -nosalt -K %s "
                             "-iv %s" % (size, "11" * 16, "22" * 16), shell=True, stdout=out)
        if p.wait() != 0:
            raise db.BenchError("openssl could not make the random data")
    if os.path.getsize(path) != size:
        raise db.BenchError("random data: %d bytes, not %d" % (os.path.getsize(path), size))


def make_source_disk(path, size, data):
    """A sparse file of size with data's bytes at DATA_OFFSET (copied in the kernel)."""
    with open(path, "wb") as f:
        f.truncate(size)
    with open(data, "rb") as src, open(path, "r+b") as dst:
        n, off_in, off_out = os.path.getsize(data), 0, DATA_OFFSET
        while off_in < n:
            c = os.copy_file_range(src.fileno(), dst.fileno(), n - off_in, off_in, off_out)
            if c <= 0:
                raise db.BenchError("copying the random data into %s stopped" % path)
            off_in, off_out = off_in + c, off_out + c
        os.fsync(dst.fileno())


def make_empty(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


def content_digest(path, skip_bytes):
    """sha256 over (offset, bytes) of the non-zero 1 MiB chunks from skip_bytes (rounded up
    to a chunk) on: equal for equal contents however the files are allocated (holes read
    as zeros and are skipped unread)."""
    h, zero = hashlib.sha256(), bytes(CHUNK)
    with open(path, "rb") as f:
        fd, size = f.fileno(), os.fstat(f.fileno()).st_size
        nxt = -(-skip_bytes // CHUNK) * CHUNK
        while nxt < size:
            try:
                data_at = os.lseek(fd, nxt, os.SEEK_DATA)
            except OSError:
                break
            hole_at = os.lseek(fd, data_at, os.SEEK_HOLE)
            c = max(nxt, data_at - data_at % CHUNK)
            while c < hole_at:
                b = os.pread(fd, min(CHUNK, size - c), c)
                if b != zero[:len(b)]:
                    h.update(b"%d:" % c)
                    h.update(b)
                c += CHUNK
            nxt = c
    return h.hexdigest()


# -- measuring ---------------------------------------------------------------------------
def wire_bytes(hosts):
    dev = hosts.dev["a"]
    total = 0
    for k in ("tx_bytes", "rx_bytes"):
        p = subprocess.run(hosts.exec_args("a") + ["cat", "/sys/class/net/%s/statistics/%s" %
                                                    (dev, k)], capture_output=True, text=True)
        total += int(p.stdout.strip())
    return total


def guest_rate(vm, seconds):
    a, ta = vm.counters(), time.monotonic()
    time.sleep(seconds)
    b, tb = vm.counters(), time.monotonic()
    return (b[0] - a[0]) * 4.0 / (tb - ta) if a and b else None


def sample_while(vms, samples, t0, pred, timeout, what):
    """Sample vms() (asked again every 50 ms: a VM may appear meanwhile) until pred()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.sample_until(vms(), time.monotonic() + 0.05, samples, t0)
        if pred():
            return
    raise db.BenchError("timed out waiting for " + what)


def result(impl, run, total_s, wire, samples, t_move, report):
    r = dict(report)
    last = samples[-1]
    if last[2]:
        raise db.BenchError("%s: the guest found %d disk errors" % (impl, last[2]))
    after = [s for s in samples if s[0] > t_move]
    if len(after) < 2 or after[-1][1] <= after[0][1]:
        raise db.BenchError("%s: the guest made no disk progress after the move" % impl)
    r.update({"impl": impl, "run": run, "total_s": total_s, "wire_bytes": wire,
              "stall_ms": db.longest_stall(samples),
              "stall_before_ms": db.longest_stall([s for s in samples if s[0] <= t_move]),
              "errors": last[2]})
    return r


def compare_disks(r, src, dst, args):
    t = time.monotonic()
    skip = args.blocks * 4096
    a, b = content_digest(src, skip), content_digest(dst, skip)
    r.update({"digest_src": a, "digest_dst": b, "digest_equal": a == b,
              "digest_check_s": time.monotonic() - t})


# -- vmshift -----------------------------------------------------------------------------
def run_vmshift(hosts, args, d, data, run):
    src_img, dst_img = os.path.join(d, "src.img"), os.path.join(d, "dst.img")
    make_source_disk(src_img, args.disk_bytes, data)
    make_empty(dst_img, args.disk_bytes)
    src_sock, dst_sock = os.path.join(d, "src.sock"), os.path.join(d, "dst.sock")
    port_file = os.path.join(d, "port")
    recv_sec, mig_sec = security_options("insecure")
    procs = []
    try:
        argv = db.vmshift_run_argv(src_img, src_sock, args.blocks)
        argv[argv.index("--mem") + 1] = args.mem
        src = db.spawn(argv, os.path.join(d, "src.log"), hosts.exec_args("a"))
        procs.append(src)
        dst = db.spawn([db.VMSHIFT, "receive", "--listen", hosts.addr("b") + ":0",
                        "--port-file", port_file, "--ctl", dst_sock, "--serial", "none",
                        "--disk", dst_img, "--keep-after-migrate"] + recv_sec,
                       os.path.join(d, "dst.log"), hosts.exec_args("b"))
        procs.append(dst)
        db.wait_for(lambda: os.path.exists(src_sock), 60, "vmshift run", src,
                    os.path.join(d, "src.log"))
        db.wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 60,
                    "vmshift receive", dst, os.path.join(d, "dst.log"))
        vs, vd = db.VmshiftVm(src_sock), db.VmshiftVm(dst_sock)
        db.warm(vs, src, os.path.join(d, "src.log"), args.blocks)
        rate = guest_rate(vs, 1.0)
        samples, t0 = [], time.monotonic()
        db.sample_until([vs], t0 + args.before, samples, t0)
        req = {"to": "%s:%s" % (hosts.addr("b"), open(port_file).read().strip()),
               "streams": 1, "downtime_limit": 300, "timeout_ms": 600000, "x-with-disks": True}
        req.update(mig_sec)
        w0, tm = wire_bytes(hosts), time.monotonic()
        ctl(src_sock, "migrate", **req)
        rep, t_run = {}, []

        def running_here():
            """The destination serves --ctl once its VM runs: from then on it is sampled,
            and the first time it is seen ends the total time (as QEMU's RESUME does)."""
            if not os.path.exists(dst_sock):
                return [vs]
            if not t_run:
                t_run.append(time.monotonic())
            return [vs, vd]

        def done():
            m = ctl(src_sock, "migrate-status").get("migration", {})
            rep.update(m)
            return m.get("status") in ("completed", "failed", "cancelled")
        sample_while(running_here, samples, t0, done, args.timeout, "the vmshift migration")
        if rep.get("status") != "completed":
            raise db.BenchError("vmshift migration: %s" % (rep.get("error") or rep))
        db.wait_for(lambda: running_here() and t_run, 30, "the destination VM", dst)
        total_s, wire = t_run[0] - tm, wire_bytes(hosts) - w0
        db.sample_until([vs, vd], time.monotonic() + args.after, samples, t0)
        ctl(dst_sock, "stop")
        disk = rep.get("disk") or {}
        r = result("vmshift", run, total_s, wire, samples, tm - t0, {
            "guest_kib_s": rate, "own_total_ms": rep.get("total-time"),
            "downtime_ms": rep.get("downtime"), "digest_time_ms": disk.get("digest-time"),
            "disk_bytes_sent": disk.get("bytes"), "audit_ms": disk.get("audit-time"),
            "transferred": (rep.get("ram") or {}).get("transferred")})
        compare_disks(r, src_img, dst_img, args)
        return r
    finally:
        db.stop(procs)


# -- QEMU, the way libvirt migrates non-shared storage ----------------------------------
def qemu_vm_argv(args, drive, qmp, serial, incoming):
    argv = db.qemu_argv(drive + ",node-name=n0", qmp, serial, args.blocks)
    argv[argv.index("-m") + 1] = args.mem
    if incoming:
        argv += ["-S", "-incoming", "defer"]
    return argv


def qemu_wait_job(q, pred, samples, vms, t0, timeout, what):
    sample_while(lambda: vms, samples, t0, lambda: pred(q.execute("query-block-jobs")), timeout,
                 what)


def run_qemu(hosts, args, d, data, run):
    src_img, dst_img = os.path.join(d, "src.img"), os.path.join(d, "dst.img")
    make_source_disk(src_img, args.disk_bytes, data)
    make_empty(dst_img, args.disk_bytes)
    sq, dq = os.path.join(d, "src.qmp"), os.path.join(d, "dst.qmp")
    procs, vms = [], []
    b_addr = hosts.addr("b")
    try:
        src = db.spawn(qemu_vm_argv(args, src_img, sq, os.path.join(d, "src.serial"), False),
                       os.path.join(d, "src.log"), hosts.exec_args("a"))
        procs.append(src)
        dst = db.spawn(qemu_vm_argv(args, dst_img, dq, os.path.join(d, "dst.serial"), True),
                       os.path.join(d, "dst.log"), hosts.exec_args("b"))
        procs.append(dst)
        vs = db.QemuVm(sq, d, src)
        vms.append(vs)
        vd = db.QemuVm(dq, d, dst)
        vms.append(vd)
        db.warm(vs, src, os.path.join(d, "src.log"), args.blocks)
        rate = guest_rate(vs, 1.0)
        samples, t0 = [], time.monotonic()
        db.sample_until([vs], t0 + args.before, samples, t0)
        for q in (vs.q, vd.q):
            q.execute("migrate-set-capabilities", {"capabilities": [
                {"capability": "events", "state": True}]})
        vs.q.execute("migrate-set-parameters", {"downtime-limit": 300,
                                                "max-bandwidth": 1 << 40})
        w0, tm = wire_bytes(hosts), time.monotonic()
        # destination: listen for the migration and export its empty disk
        vd.q.execute("migrate-incoming", {"uri": "tcp:%s:%d" % (b_addr, MIG_PORT)})
        vd.q.execute("nbd-server-start", {"addr": {"type": "inet", "data": {
            "host": b_addr, "port": str(NBD_PORT)}}})
        try:
            vd.q.execute("nbd-server-add", {"device": "d0", "writable": True})
        except RuntimeError:        # removed in later QEMUs: the same with block-export-add
            vd.q.execute("block-export-add", {"type": "nbd", "id": "exp-d0", "name": "d0",
                                              "node-name": "n0", "writable": True})
        # source: mirror the disk into the export, then migrate the RAM
        vs.q.execute("blockdev-add", {"driver": "nbd", "node-name": "mirror-target",
                                      "server": {"type": "inet", "host": b_addr,
                                                 "port": str(NBD_PORT)}, "export": "d0"})
        vs.q.execute("blockdev-mirror", {"job-id": "mirror-d0", "device": "n0",
                                         "target": "mirror-target", "sync": "full"})
        qemu_wait_job(vs.q, lambda jobs: any(j.get("ready") for j in jobs), samples,
                      [vs], t0, args.timeout, "the QEMU mirror to be ready")
        t_ready = time.monotonic()
        vs.q.execute("migrate", {"uri": "tcp:%s:%d" % (b_addr, MIG_PORT)})
        info = {}

        def done():
            info.update(vs.q.execute("query-migrate"))
            return info.get("status") in ("completed", "failed", "cancelled")
        sample_while(lambda: [vs, vd], samples, t0, done, args.timeout, "the QEMU migration")
        if info.get("status") != "completed":
            raise db.BenchError("QEMU migration: %s" % info)
        t_mig = time.monotonic()
        vs.q.execute("block-job-cancel", {"device": "mirror-d0"})
        qemu_wait_job(vs.q, lambda jobs: not jobs, samples, [vs, vd], t0, 120,
                      "the QEMU mirror to end")
        sample_while(lambda: [vs, vd], samples, t0, lambda: vd.q.execute("query-status").get(
            "status") != "inmigrate", 60, "the QEMU destination to load the state")
        vd.q.execute("nbd-server-stop")
        vd.q.execute("cont")
        db.wait_for(lambda: vd.q.execute("query-status").get("status") == "running", 30,
                    "the QEMU destination running", dst)
        total_s, wire = time.monotonic() - tm, wire_bytes(hosts) - w0
        db.sample_until([vs, vd], time.monotonic() + args.after, samples, t0)
        vd.q.execute("stop")
        stop_ev, resume_ev = vs.q.event("STOP"), vd.q.event("RESUME")
        blackout = ((resume_ev["ts"] - stop_ev["ts"]) * 1000.0
                    if stop_ev and resume_ev else None)
        r = result("qemu", run, total_s, wire, samples, tm - t0, {
            "guest_kib_s": rate, "own_total_ms": info.get("total-time"),
            "qemu_downtime_ms": info.get("downtime"), "downtime_ms": blackout,
            "mirror_s": t_ready - tm, "migrate_s": t_mig - t_ready,
            "transferred": (info.get("ram") or {}).get("transferred")})
        compare_disks(r, src_img, dst_img, args)
        return r
    finally:
        for v in vms:
            v.close()
        db.stop(procs)


# -- tables and plot ---------------------------------------------------------------------
def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def tables(res, args):
    la0, la1 = res["loadavg_start"], res["loadavg_end"]
    out = ["Shared-nothing migration (VM + local disk): %d core(s), load average %.2f at the "
           "start, %.2f %.2f %.2f at the end; %d run(s) each, medians" % (
               res["cores"], la0[0], la1[0], la1[1], la1[2], args.runs),
           "VM: %s RAM (never written by the guest), %s disk, %s of random data at 64 MiB, "
           "holes elsewhere; guest disk workload on %d blocks; link %s (veth, tbf); "
           "memory: %s" % (args.mem, fmt_size(args.disk_bytes), fmt_size(args.data_bytes),
                           args.blocks, args.rate, res["memory"]), "",
           "| figure | vmshift | QEMU | vmshift/QEMU | runs vmshift | runs QEMU |",
           "|---|---|---|---|---|---|"]
    v = [r for r in res["runs"] if r["impl"] == "vmshift"]
    q = [r for r in res["runs"] if r["impl"] == "qemu"]
    for key, name, scale, spec in (
            ("total_s", "total time s (first command to destination running)", 1, "%.1f"),
            ("wire_bytes", "bytes on the wire MiB (veth tx+rx)", 1 / 1048576.0, "%.0f"),
            ("downtime_ms", "downtime ms (vmshift: its own; QEMU: STOP to RESUME)", 1,
             "%.0f"),
            ("stall_ms", "longest guest I/O stall ms (host-sampled)", 1, "%.0f"),
            ("stall_before_ms", "same, before the move", 1, "%.0f"),
            ("guest_kib_s", "guest disk workload KiB/s before the move", 1, "%.0f")):
        mv, mq = med(v, key), med(q, key)
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            name, fmt(mv, scale, spec), fmt(mq, scale, spec),
            "%.2f" % (mv / mq) if mv is not None and mq else "-",
            " ".join(fmt(r.get(key), scale, spec) for r in v),
            " ".join(fmt(r.get(key), scale, spec) for r in q)))
    out.append("| disk digests equal (all but the workload's blocks) | %s | %s | | | |" % (
        "/".join("yes" if r["digest_equal"] else "NO" for r in v),
        "/".join("yes" if r["digest_equal"] else "NO" for r in q)))
    out += ["", "vmshift's own: total-time ms %s, digest-time ms %s, the source's audit of "
            "its disk after the grant (the VM already runs on the destination) ms %s; QEMU's: mirror to ready "
            "s %s, migrate s %s, its own downtime ms %s" % (
                " ".join(fmt(r.get("own_total_ms")) for r in v),
                " ".join(fmt(r.get("digest_time_ms")) for r in v),
                " ".join(fmt(r.get("audit_ms")) for r in v),
                " ".join(fmt(r.get("mirror_s"), 1, "%.1f") for r in q),
                " ".join(fmt(r.get("migrate_s"), 1, "%.1f") for r in q),
                " ".join(fmt(r.get("qemu_downtime_ms")) for r in q))]
    return "\n".join(out) + "\n"


def fmt(v, scale=1, spec="%.0f"):
    return "-" if v is None else spec % (v * scale)


def fmt_size(n):
    return "%d MiB" % (n >> 20) if n < (1 << 30) else "%g GiB" % (n / float(1 << 30))


def plot(res, out_dir):
    with open(os.path.join(out_dir, "disk_migrate.csv"), "w") as f:
        f.write("impl,total_s,wire_gib,downtime_s,stall_s\n")
        for impl in ("vmshift", "qemu"):
            rows = [r for r in res["runs"] if r["impl"] == impl]
            f.write("%s,%.3f,%.3f,%.3f,%.3f\n" % (
                impl, med(rows, "total_s") or 0, (med(rows, "wire_bytes") or 0) / 2.0 ** 30,
                (med(rows, "downtime_ms") or 0) / 1000.0, (med(rows, "stall_ms") or 0) / 1e3))
    gnuplot("""set terminal pngcairo size 900,450 noenhanced
set output 'disk_migrate.png'
set datafile separator ','
set title 'Shared-nothing migration, VM + local disk (medians)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'seconds / GiB'
set key top left
plot 'disk_migrate.csv' using 2:xtic(1) skip 1 title 'total time s', \\
     '' using 3 skip 1 title 'on the wire GiB', '' using 4 skip 1 title 'downtime s', \\
     '' using 5 skip 1 title 'longest I/O stall s'
""", out_dir)


def check_sane(res, args):
    problems = []
    for impl in ("vmshift", "qemu"):
        rows = [r for r in res["runs"] if r["impl"] == impl]
        if len(rows) != args.runs:
            problems.append("%s: %d runs, not %d" % (impl, len(rows), args.runs))
        for r in rows:
            if not r["digest_equal"]:
                problems.append("%s: the disks differ" % impl)
            if not r["wire_bytes"] or r["wire_bytes"] < args.data_bytes:
                problems.append("%s: %r bytes on the wire, less than the disk's data" % (
                    impl, r["wire_bytes"]))
            for k in ("total_s", "downtime_ms", "stall_ms"):
                if r.get(k) is None or r[k] < 0:
                    problems.append("%s: %s is %r" % (impl, k, r.get(k)))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small VM, 1 run; check outputs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mem", default="4G")
    ap.add_argument("--disk-size", default="8G")
    ap.add_argument("--data", default=None, help="random data on the disk (default: half)")
    ap.add_argument("--blocks", type=int, default=256, help="the workload's 4 KiB blocks")
    ap.add_argument("--rate", default="10gbit", help="the migration link (tc rate)")
    ap.add_argument("--before", type=float, default=3.0)
    ap.add_argument("--after", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=900.0, help="per migration, seconds")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "disk-migrate-" +
                                                  time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    if args.quick:
        args.runs, args.mem, args.disk_size, args.before, args.after = 1, "256M", "256M", 1, 1
        args.blocks = 64
    args.disk_bytes = parse_size(args.disk_size)
    args.data_bytes = parse_size(args.data) if args.data else args.disk_bytes // 2
    if DATA_OFFSET + args.data_bytes > args.disk_bytes:
        args.data_bytes = args.disk_bytes - DATA_OFFSET
    if os.geteuid() != 0:
        sys.exit("disk_migrate_bench: needs root (network namespaces, tc)")
    install_sigterm_handler()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vs-diskmig-", dir="/var/tmp")
    res = {"runs": [], "cores": os.cpu_count(), "loadavg_start": os.getloadavg(),
           "memory": "run 1: cold (host memory for the destination's file and RAM "
                     "first touched, unless earlier work on the host used it); runs 2+: "
                     "warm (memory freed by run 1 reused); the source's file is in the "
                     "page cache (written just before)",
           "args": {k: v for k, v in vars(args).items()}}
    try:
        data = os.path.join(work, "random.bin")
        make_random(data, args.data_bytes)
        with Hosts(rate=args.rate) as hosts:
            for run in range(args.runs):
                for impl, fn in (("vmshift", run_vmshift), ("qemu", run_qemu)):
                    d = tempfile.mkdtemp(prefix=impl + "-", dir=work)
                    try:
                        r = fn(hosts, args, d, data, run + 1)
                    finally:
                        shutil.rmtree(d, ignore_errors=True)
                    print("run %d %s: %.1f s, %.0f MiB on the wire, downtime %s ms, stall "
                          "%.0f ms, digests %s" % (run + 1, impl, r["total_s"],
                                                   r["wire_bytes"] / 1048576.0,
                                                   fmt(r["downtime_ms"]), r["stall_ms"],
                                                   "equal" if r["digest_equal"] else "DIFFER"),
                          flush=True)
                    res["runs"].append(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    text = tables(res, args)
    with open(os.path.join(args.out, "tables.txt"), "w") as f:
        f.write(text)
    print(text)
    plot(res, args.out)
    if not args.quick:
        return 0
    problems = check_sane(res, args)
    for name in ("results.json", "tables.txt", "disk_migrate.png", "disk_migrate.csv"):
        path = os.path.join(args.out, name)
        if not os.path.exists(path) or not os.path.getsize(path):
            problems.append(name + " is missing or empty")
    for p in problems:
        print("disk_migrate_bench --quick: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
