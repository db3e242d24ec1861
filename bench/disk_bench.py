#!/usr/bin/python3
"""Disk benchmark: the guest's disk workload (guest/disk.c: sequenced, checksummed 4 KiB
blocks, each written in requests of 8 and read back twice) on vmshift's virtio-blk and on
QEMU's (`-M microvm,acpi=off -device virtio-blk-device`, the same guest ELF), same run.

  (a) throughput: the guest's blocks read and written per second, over --seconds, on a raw
      file and on an NBD export (qemu-nbd on a Unix socket serving the same kind of file);
  (b) shared storage: the VM doing disk I/O migrates between two namespaces over a veth
      shaped to --rate (tbf, default 10gbit); the disk is one file both reach. Migration
      time and downtime (each VMM's own report) and the guest's longest I/O stall: the
      longest interval in which the guest's count of completed blocks did not move,
      sampled by the host every few ms on the source and then the destination (it
      includes the blackout; its floor is one request's round of blocks, given by the
      same figure over --before seconds before the move), and the guest's own longest
      request (max_gap_us) when it grew after the warm-up.

Each figure is the median of --runs runs (3 by default); the tables give the core count
and the load average. Writes results.json, tables.txt, disk_bench.csv and disk_bench.png
(gnuplot) into --out.

    sudo python3 bench/disk_bench.py [--runs 3] [--seconds 15] [--rate 10gbit]
    sudo python3 bench/disk_bench.py --quick     # CI: 1 run, short; outputs checked

Both VMMs run on /dev/kvm (QEMU with -accel kvm), the guest RAM warm (the workload's
buffers are touched before measuring). QEMU's disk: -drive format=raw,if=none (cache
writeback, its default; vmshift's backend also goes through the page cache).
"""
import argparse
import json
import struct
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))

from guest_image import TELEMETRY_MAGIC, elf_symbol  # noqa: E402
from netlab import Hosts, install_sigterm_handler  # noqa: E402
from plots import gnuplot  # noqa: E402
from qmp import Qmp  # noqa: E402
from vmshift_peer import ctl, security_options  # noqa: E402

VMSHIFT = os.environ.get("VMSHIFT_BIN") or os.path.join(ROOT, "build", "vmshift")
GUEST = os.environ.get("VMSHIFT_GUEST") or os.path.join(ROOT, "build", "guest",
                                                        "vmshift-guest.elf")
QEMU = "qemu-system-x86_64"
DISK_BYTES = 64 << 20


MIGRATION_CASES = (("vmshift", "file"), ("qemu", "file"), ("vmshift", "nbd"), ("qemu", "nbd"))


class BenchError(RuntimeError):
    pass


def wait_for(pred, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            tail = open(log).read()[-1500:] if log and os.path.exists(log) else ""
            raise BenchError("%s: the process exited (%s)\n%s" % (what, proc.returncode, tail))
        time.sleep(0.05)
    raise BenchError("timed out waiting for " + what)


# -- the guest's counters, through either VMM ------------------------------------------
class VmshiftVm:
    def __init__(self, sock):
        self.sock = sock

    def counters(self):
        """(blocks written + checked, errors, max_gap_us) of vCPU 0, or None."""
        try:
            g = ctl(self.sock, "status", timeout=5).get("guest", {})
        except (OSError, RuntimeError, ValueError):
            return None
        per = g.get("per_vcpu") or []
        if not per:
            return None
        c = per[0]
        return (c.get("pages_written", 0) + c.get("pages_checked", 0), g.get("errors", 0),
                c.get("max_gap_us", 0))


class QemuVm:
    def __init__(self, qmp_path, workdir, proc=None):
        self.q = Qmp(qmp_path, timeout=60, proc=proc)
        self.addr = elf_symbol(GUEST, "telemetry_page")
        if self.addr is None:
            raise BenchError("no telemetry_page symbol in " + GUEST)
        self.path = os.path.join(workdir, "tel-%d.bin" % id(self))

    def counters(self):

        try:
            self.q.execute("pmemsave", {"val": self.addr, "size": 4096, "filename": self.path})
            b = open(self.path, "rb").read()
        except (OSError, RuntimeError):
            return None
        if len(b) < 128 or struct.unpack_from("<Q", b, 0)[0] != TELEMETRY_MAGIC:
            return None
        (passes, written, checked, errors, gen, bad, state, kib, gap) = struct.unpack_from(
            "<QQQQQQIIQ", b, 64)
        return (written + checked, errors, gap)

    def close(self):
        self.q.close()


def warm(vm, proc, log, blocks):
    """Until the guest has done two passes (its buffers and the file's pages touched)."""
    wait_for(lambda: (vm.counters() or (0,))[0] >= 4 * blocks, 180, "two passes of the "
             "disk workload", proc, log)


def rate_kib_s(vm, seconds):
    a, ta = vm.counters(), time.monotonic()
    time.sleep(seconds)
    b, tb = vm.counters(), time.monotonic()
    if not a or not b:
        raise BenchError("the guest's counters could not be read")
    if b[1]:
        raise BenchError("the guest found %d disk errors" % b[1])
    return (b[0] - a[0]) * 4.0 / (tb - ta), b[2]


# -- processes ---------------------------------------------------------------------------
def spawn(argv, log, prefix=()):
    return subprocess.Popen(list(prefix) + argv, stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), stdin=subprocess.DEVNULL)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def make_disk(path):
    with open(path, "wb") as f:
        f.truncate(DISK_BYTES)


def qemu_argv(drive, qmp, serial, blocks, incoming=None):
    argv = [QEMU, "-M", "microvm,acpi=off", "-accel", "kvm", "-nodefaults",
            "-display", "none", "-m", "64M", "-kernel", GUEST, "-no-reboot",
            "-global", "virtio-mmio.force-legacy=false",
            "-device", "virtio-blk-device,drive=d0",
            "-drive", "id=d0,file=%s,format=raw,if=none" % drive,
            "-qmp", "unix:%s,server=on,wait=off" % qmp, "-serial", "file:" + serial,
            "-append", "workload=disk disk_blocks=%d cpus=1" % blocks]
    if incoming:
        argv += ["-incoming", incoming]
    return argv


def vmshift_run_argv(disk, sock, blocks):
    return [VMSHIFT, "run", "--mem", "64M", "--vcpus", "1", "--workload", "disk", "--disk",
            disk, "--append", "disk_blocks=%d" % blocks, "--ctl", sock, "--serial", "none"]


def nbd_server(image, sock, log):
    p = spawn(["qemu-nbd", "-f", "raw", "-x", "vm", "-t", "-e", "4", "-k", sock,
               "--cache=writeback", image], log)
    wait_for(lambda: os.path.exists(sock), 30, "qemu-nbd", p, log)
    return p


# -- (a) throughput ----------------------------------------------------------------------
def throughput_run(impl, backend, args, d):
    image = os.path.join(d, "disk.img")
    make_disk(image)
    procs = []
    try:
        target = image
        if backend == "nbd":
            nsock = os.path.join(d, "nbd.sock")
            procs.append(nbd_server(image, nsock, os.path.join(d, "nbd.log")))
            target = ("nbd+unix:///vm?socket=" + nsock if impl == "vmshift"
                      else "nbd:unix:%s:exportname=vm" % nsock)
        log = os.path.join(d, impl + ".log")
        if impl == "vmshift":
            sock = os.path.join(d, "vm.sock")
            p = spawn(vmshift_run_argv(target, sock, args.blocks), log)
            procs.append(p)
            wait_for(lambda: os.path.exists(sock), 60, "vmshift", p, log)
            vm = VmshiftVm(sock)
        else:
            p = spawn(qemu_argv(target, os.path.join(d, "qmp.sock"), os.path.join(d, "serial"),
                                args.blocks), log)
            procs.append(p)
            vm = QemuVm(os.path.join(d, "qmp.sock"), d, p)
        warm(vm, p, log, args.blocks)
        kib, gap = rate_kib_s(vm, args.seconds)
        return {"impl": impl, "backend": backend, "kib_s": kib, "max_request_us": gap}
    finally:
        stop(procs)


# -- (b) migration on shared storage -----------------------------------------------------
def sample_until(vms, t_end, out, t0):
    """Append (t since t0, max blocks done over vms) until monotonic t_end."""
    while time.monotonic() < t_end:
        best = None
        for vm in vms:
            c = vm.counters() if vm else None
            if c and (best is None or c[0] > best[0]):
                best = c
        if best:
            out.append((time.monotonic() - t0, best[0], best[1], best[2]))
        time.sleep(0.005)


def longest_stall(samples):
    """The longest time between two samples at which the count of done blocks rose."""
    last_t, last_v, worst = None, None, 0.0
    for t, v, _, _ in samples:
        if last_v is None or v > last_v:
            if last_t is not None:
                worst = max(worst, t - last_t)
            last_t, last_v = t, v
    return worst * 1000.0


def shared_disk(impl, backend, d, procs):
    """The disk both hosts reach, as this VMM names it: one file, or an NBD export of one
    (qemu-nbd on a Unix socket, which both namespaces reach: the storage host)."""
    image = os.path.join(d, "disk.img")
    make_disk(image)
    if backend == "file":
        return image
    sock = os.path.join(d, "nbd.sock")
    procs.append(nbd_server(image, sock, os.path.join(d, "nbd.log")))
    return ("nbd+unix:///vm?socket=" + sock if impl == "vmshift"
            else "nbd:unix:%s:exportname=vm" % sock)


def migrate_vmshift(hosts, args, d, backend):
    src_sock, dst_sock = os.path.join(d, "src.sock"), os.path.join(d, "dst.sock")
    port_file = os.path.join(d, "port")
    recv_sec, mig_sec = security_options("insecure")
    procs = []
    try:
        disk = shared_disk("vmshift", backend, d, procs)
        src = spawn(vmshift_run_argv(disk + ",shared", src_sock, args.blocks),
                    os.path.join(d, "src.log"), hosts.exec_args("a"))
        procs.append(src)
        dst = spawn([VMSHIFT, "receive", "--listen", hosts.addr("b") + ":0", "--port-file",
                     port_file, "--ctl", dst_sock, "--serial", "none"] + recv_sec,
                    os.path.join(d, "dst.log"), hosts.exec_args("b"))
        procs.append(dst)
        wait_for(lambda: os.path.exists(src_sock), 60, "vmshift run", src,
                 os.path.join(d, "src.log"))
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 60,
                 "vmshift receive", dst, os.path.join(d, "dst.log"))
        vs, vd = VmshiftVm(src_sock), VmshiftVm(dst_sock)
        warm(vs, src, os.path.join(d, "src.log"), args.blocks)
        gap0 = vs.counters()[2]
        samples, t0 = [], time.monotonic()
        sample_until([vs], t0 + args.before, samples, t0)
        req = {"to": "%s:%s" % (hosts.addr("b"), open(port_file).read().strip()),
               "streams": 1, "downtime_limit": 300, "timeout_ms": 120000}
        req.update(mig_sec)
        tm = time.monotonic()
        ctl(src_sock, "migrate", **req)
        report = None
        while time.monotonic() - tm < 180:
            sample_until([vs, vd if os.path.exists(dst_sock) else None],
                         time.monotonic() + 0.05, samples, t0)
            m = ctl(src_sock, "migrate-status").get("migration", {})
            if m.get("status") in ("completed", "failed", "cancelled"):
                report = m
                break
        if not report or report.get("status") != "completed":
            raise BenchError("vmshift migration: %s" % (report or "timed out"))
        wait_for(lambda: os.path.exists(dst_sock), 30, "the destination VM", dst)
        sample_until([vs, vd], time.monotonic() + args.after, samples, t0)
        return finish_migration("vmshift", backend, report.get("total-time"),
                                report.get("downtime"),
                                samples, gap0, tm - t0)
    finally:
        stop(procs)


def migrate_qemu(hosts, args, d, backend):
    port = 47100
    procs, vms = [], []
    try:
        image = shared_disk("qemu", backend, d, procs)
        sq, dq = os.path.join(d, "src.qmp"), os.path.join(d, "dst.qmp")
        src = spawn(qemu_argv(image, sq, os.path.join(d, "src.serial"), args.blocks),
                    os.path.join(d, "src.log"), hosts.exec_args("a"))
        procs.append(src)
        dst = spawn(qemu_argv(image, dq, os.path.join(d, "dst.serial"), args.blocks,
                              incoming="tcp:%s:%d" % (hosts.addr("b"), port)),
                    os.path.join(d, "dst.log"), hosts.exec_args("b"))
        procs.append(dst)
        vs = QemuVm(sq, d, src)
        vms.append(vs)
        vd = QemuVm(dq, d, dst)
        vms.append(vd)
        warm(vs, src, os.path.join(d, "src.log"), args.blocks)
        gap0 = vs.counters()[2]
        samples, t0 = [], time.monotonic()
        sample_until([vs], t0 + args.before, samples, t0)
        for q in (vs.q, vd.q):
            q.execute("migrate-set-capabilities", {"capabilities": [
                {"capability": "events", "state": True}]})
        vs.q.execute("migrate-set-parameters", {"downtime-limit": 300,
                                                "max-bandwidth": 1 << 40})
        tm = time.monotonic()
        vs.q.execute("migrate", {"uri": "tcp:%s:%d" % (hosts.addr("b"), port)})
        info = None
        while time.monotonic() - tm < 180:
            sample_until([vs, vd], time.monotonic() + 0.05, samples, t0)
            i = vs.q.execute("query-migrate")
            if i.get("status") in ("completed", "failed", "cancelled"):
                info = i
                break
        if not info or info.get("status") != "completed":
            raise BenchError("QEMU migration: %s" % (info or "timed out"))
        wait_for(lambda: vd.q.execute("query-status").get("status") == "running", 30,
                 "the QEMU destination running", dst)
        sample_until([vs, vd], time.monotonic() + args.after, samples, t0)
        return finish_migration("qemu", backend, info.get("total-time"), info.get("downtime"),
                                samples,
                                gap0, tm - t0)
    finally:
        for v in vms:
            v.close()
        stop(procs)


def finish_migration(impl, backend, total_ms, downtime_ms, samples, gap0, t_migrate):
    last = samples[-1]
    if last[2]:
        raise BenchError("%s: the guest found %d disk errors" % (impl, last[2]))
    progressed = [s for s in samples if s[0] > t_migrate]
    if len(progressed) < 2 or progressed[-1][1] <= progressed[0][1]:
        raise BenchError("%s: the guest made no disk progress after the move" % impl)
    return {"impl": impl, "backend": backend, "total_ms": total_ms, "downtime_ms": downtime_ms,
            "stall_ms": longest_stall(samples),
            "stall_before_ms": longest_stall([s for s in samples if s[0] <= t_migrate]),
            "guest_max_request_ms": last[3] / 1000.0 if last[3] > gap0 else None,
            "guest_max_request_before_ms": gap0 / 1000.0, "samples": len(samples),
            "errors": last[2]}


# -- tables and plot ---------------------------------------------------------------------
def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def tables(res, args):
    cores, load = os.cpu_count(), os.getloadavg()
    out = ["Disk benchmark: %d core(s), load average %.2f %.2f %.2f at the end; "
           "%d run(s) each, medians" % (cores, load[0], load[1], load[2], args.runs), "",
           "(a) guest disk throughput (4 KiB blocks, requests of 8, each block written "
           "once and read twice), %d blocks, %g s" % (args.blocks, args.seconds),
           "| backend | vmshift KiB/s | QEMU KiB/s | vmshift/QEMU | runs vmshift | runs QEMU |",
           "|---|---|---|---|---|---|"]
    for backend in ("file", "nbd"):
        v = [r for r in res["throughput"] if r["impl"] == "vmshift" and r["backend"] == backend]
        q = [r for r in res["throughput"] if r["impl"] == "qemu" and r["backend"] == backend]
        mv, mq = med(v, "kib_s"), med(q, "kib_s")
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            backend, fmt(mv), fmt(mq), fmt(mv / mq if mv and mq else None, "%.2f"),
            " ".join(fmt(r["kib_s"]) for r in v), " ".join(fmt(r["kib_s"]) for r in q)))
    out += ["", "(b) shared storage: migration over a veth shaped to %s, the guest doing "
            "disk I/O (one file both hosts reach, or an NBD export of it)" % args.rate,
            "| VMM, disk | migration ms | downtime ms | longest I/O stall ms (host-sampled) | "
            "same, %g s before the move | guest's longest request ms (if it grew) |"
            % args.before,
            "|---|---|---|---|---|---|"]
    for impl, backend in MIGRATION_CASES:
        rows = [r for r in res["migration"] if r["impl"] == impl and r["backend"] == backend]
        if not rows:
            continue
        out.append("| %s, %s | %s | %s | %s | %s | %s |" % (
            impl, backend, fmt(med(rows, "total_ms")), fmt(med(rows, "downtime_ms")),
            fmt(med(rows, "stall_ms")), fmt(med(rows, "stall_before_ms")),
            fmt(med(rows, "guest_max_request_ms"))))
        out.append("| (runs) | %s | %s | %s | %s | %s |" % (
            " ".join(fmt(r["total_ms"]) for r in rows),
            " ".join(fmt(r["downtime_ms"]) for r in rows),
            " ".join(fmt(r["stall_ms"]) for r in rows),
            " ".join(fmt(r["stall_before_ms"]) for r in rows),
            " ".join(fmt(r["guest_max_request_ms"]) for r in rows)))
    return "\n".join(out) + "\n"


def plot(res, out_dir):
    rows = []
    for impl, backend in MIGRATION_CASES:
        m = [r for r in res["migration"] if r["impl"] == impl and r["backend"] == backend]
        if not m:
            continue
        rows.append((impl + "/" + backend, med(m, "total_ms") or 0, med(m, "downtime_ms") or 0,
                     med(m, "stall_ms") or 0, med(m, "stall_before_ms") or 0))
    with open(os.path.join(out_dir, "disk_bench.csv"), "w") as f:
        f.write("impl,migration_ms,downtime_ms,stall_ms,stall_before_ms\n")
        for r in rows:
            f.write("%s,%.1f,%.1f,%.1f,%.1f\n" % r)
    gnuplot("""set terminal pngcairo size 900,450 noenhanced
set output 'disk_bench.png'
set datafile separator ','
set title 'Shared-storage migration of a VM doing disk I/O (medians)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'milliseconds'
set key top left
plot 'disk_bench.csv' using 2:xtic(1) skip 1 title 'migration', \\
     '' using 3 skip 1 title 'downtime', '' using 4 skip 1 title 'longest I/O stall', \\
     '' using 5 skip 1 title 'longest I/O stall before the move'
""", out_dir)


def check_sane(res):
    """The quick mode's check: every figure there and plausible (not timings)."""
    problems = []
    for r in res["throughput"]:
        if not r["kib_s"] or r["kib_s"] <= 0:
            problems.append("%s/%s: no throughput" % (r["impl"], r["backend"]))
    for r in res["migration"]:
        for k in ("total_ms", "downtime_ms", "stall_ms"):
            if r.get(k) is None or r[k] < 0:
                problems.append("%s: %s is %r" % (r["impl"], k, r.get(k)))
        if r.get("total_ms") is not None and r.get("downtime_ms") is not None \
                and r["downtime_ms"] > r["total_ms"]:
            problems.append("%s: downtime above the migration time" % r["impl"])
    if len({(r["impl"], r["backend"]) for r in res["migration"]}) != len(MIGRATION_CASES):
        problems.append("a VMM's migrations are missing")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run, short; check the outputs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0, help="throughput window")
    ap.add_argument("--blocks", type=int, default=64, help="the workload's 4 KiB blocks")
    ap.add_argument("--rate", default="10gbit", help="the migration link (tc rate)")
    ap.add_argument("--before", type=float, default=3.0,
                    help="seconds of sampling on the source before the move (the baseline)")
    ap.add_argument("--after", type=float, default=2.0,
                    help="seconds of sampling on the destination after the move")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "disk-" +
                                                  time.strftime("%Y%m%d-%H%M%S")))
    ap.add_argument("--only", choices=("throughput", "migration"), default=None)
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds, args.blocks, args.before, args.after = 1, 3.0, 32, 1.0, 1.0
    if os.geteuid() != 0:
        sys.exit("disk_bench: needs root (network namespaces, tc)")
    install_sigterm_handler()
    os.makedirs(args.out, exist_ok=True)
    res = {"throughput": [], "migration": [], "cores": os.cpu_count(),
           "loadavg_start": os.getloadavg(), "args": vars(args)}
    for run in range(args.runs):
        if args.only in (None, "throughput"):
            for backend in ("file", "nbd"):
                for impl in ("vmshift", "qemu"):
                    d = tempfile.mkdtemp(prefix="vs-diskbench-")
                    try:
                        r = throughput_run(impl, backend, args, d)
                    finally:
                        shutil.rmtree(d, ignore_errors=True)
                    print("run %d throughput %s %s: %.0f KiB/s" % (run + 1, impl, backend,
                                                                   r["kib_s"]), flush=True)
                    res["throughput"].append(r)
        if args.only in (None, "migration"):
            with Hosts(rate=args.rate) as hosts:
                for impl, backend in MIGRATION_CASES:
                    fn = migrate_vmshift if impl == "vmshift" else migrate_qemu
                    d = tempfile.mkdtemp(prefix="vs-diskbench-")
                    try:
                        r = fn(hosts, args, d, backend)
                    finally:
                        shutil.rmtree(d, ignore_errors=True)
                    print("run %d migration %s %s: %s ms, downtime %s ms, stall %.0f ms" % (
                        run + 1, impl, backend, r["total_ms"], r["downtime_ms"],
                        r["stall_ms"]), flush=True)
                    res["migration"].append(r)
    res["loadavg_end"] = os.getloadavg()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    text = tables(res, args)
    with open(os.path.join(args.out, "tables.txt"), "w") as f:
        f.write(text)
    print(text)
    if res["migration"]:
        plot(res, args.out)
    if args.quick:
        problems = check_sane(res) if args.only is None else []
        for p in problems:
            print("disk_bench --quick: " + p, file=sys.stderr)
        names = ["results.json", "tables.txt"] + (["disk_bench.png"] if res["migration"] else [])
        for name in names:
            path = os.path.join(args.out, name)
            if not os.path.exists(path) or not os.path.getsize(path):
                problems.append(name + " is empty")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
