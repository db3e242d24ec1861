#!/usr/bin/python3
"""One QEMU (TCG) live migration of the vmshift workload guest, measured.

    from qemu_peer import qemu_migrate, qemu_workload_range
    start, size = qemu_workload_range("1G")
    r = qemu_migrate(mem="1G", cmdline="workload=once fill=random seed=1 cpus=1 "
                     "start=%#x size=%#x" % (start, size), image="/tmp/fill.img",
                     streams=4, compress="zstd")
    print(r["status"], r["total_time_ms"], r["blackout_ms"], r["cpu_src_s"])

CLI (prints the result dict as JSON; exit 0 only for status "completed"):
    python3 bench/lib/qemu_peer.py --mem 1G --workload once --fill random --make-image \
        --streams 4 --compress zstd [--netns [--rate-limit 10gbit]] [--no-samples]

qemu_migrate() options (all keyword, all optional)
  mem "1G" | vcpus 1 | guest_elf DEFAULT_ELF | cmdline "workload=idle" | image None
  (raw file loaded at image_addr=0x400000 on the source) | images () more (path, addr) |
  streams 1 (1 = plain pre-copy, >= 2 = multifd with that many channels) | multifd None
  (True forces multifd, also with 1 channel) | compress "none"|"zlib"|"zstd" (multifd
  only) | downtime_limit_ms 300 | max_bandwidth 1 TiB/s | src_prefix/dst_prefix () (argv
  prefixes, netlab.Hosts.exec_args) | dst_addr "127.0.0.1" (listen address of the
  destination; use hosts.addr("b") with namespaces) | port None (free port on loopback,
  47000 in a namespace) | settle_s 2 | timeout_s 600 (migration; then migrate_cancel and
  status "timeout") | boot_timeout_s 120 | verify_timeout_s 120 | verify_passes 2 |
  machine "pc" | cpu "max" | qemu | capabilities {} / parameters {} (extra, set on both
  sides) | sample_interval_s 0.1 | wire_dev None (interface in the source namespace whose
  tx_bytes delta becomes wire_tx_bytes, e.g. hosts.dev["a"]) | workdir None |
  keep_workdir False | extra_args () | dst_prealloc False (-mem-prealloc on the
  destination, see "first touch" below) | compare_memory False (debug: destination starts
  with -S, all guest RAM of both sides is compared after the migration, then `cont`;
  blackout_ms is None then) | log None (callable for progress lines).

Result keys
  status: "completed" (migration completed AND destination running AND guest check ok),
  "failed" (migration failed, or completed but the destination/guest check failed),
  "timeout", "error" (exception; see error). migration_status: QEMU's own final status.
  error, total_time_ms, downtime_ms (QEMU's, source side), blackout_ms (guest-visible
  pause: destination RESUME event minus source STOP event, both QMP event timestamps on
  the same host clock), setup_time_ms, expected_downtime_ms, transferred_bytes
  (ram.transferred, includes multifd payload), ram_total_bytes, ram_normal_pages,
  ram_normal_bytes, ram_duplicate_pages (zero pages), multifd_bytes, precopy_bytes,
  downtime_bytes, mbps, iterations (dirty-sync-count), wire_tx_bytes (bytes on the veth,
  headers included; None without wire_dev), samples [{t_s, transferred, remaining,
  dirty_sync_count, status}] (t_s since `migrate`), query_migrate (raw final reply),
  cpu_src_s, cpu_src_vcpu_s, cpu_src_threads {name: s}, cpu_src_counted [names],
  cpu_src_excluded [vCPU thread names], the same for cpu_dst_*, guest_before /
  guest_after (telemetry: workload, cpus[{passes, errors, state, ...}], errors), guest_ok,
  guest_problem, guest_serial_errors, guest_check_s, boot_s, rss_src_max_mb,
  rss_dst_max_mb (VmHWM), dst_anon_huge_mb, loadavg_before/after, host_steal_s,
  memory_compare (with compare_memory), loader_pieces, image_relocated_bytes,
  image_dropped_bytes, switchover_at_ms (source STOP event after `migrate`),
  guest_errors (telemetry errors on the destination), capabilities, parameters,
  src_parameters, uri, src_argv, dst_argv, src_log, dst_log, dst_serial_tail, wall_s,
  plus the options echoed (mem, vcpus, cmdline, images, streams, multifd, compress, ...).

What it does
  * Two QEMUs, same argv apart from the destination's `-incoming defer` (and no loader
    device there: RAM comes over the wire): -accel tcg -nodefaults -display none
    -machine pc -m MEM -smp VCPUS -cpu max -kernel GUEST_ELF -append CMDLINE, serial to a
    file, QMP on a unix socket, -name ...,debug-threads=on (so threads have names),
    -no-reboot (a guest triple fault ends QEMU instead of rebooting silently).
    Machine: `pc` (i440fx). PVH boot (-kernel with the Xen note, via SeaBIOS and
    pvh.bin) works with pc and q35; pc keeps up to 3 GiB below 4 GiB (q35: 2 GiB), i.e. a
    longer contiguous workload range, and has fewer devices to migrate.
  * Each QEMU can run under an argv prefix (netlab.Hosts.exec_args) so that source and
    destination sit in different network namespaces.
  * Waits until the guest runs its workload (telemetry page, found through the ELF symbol
    telemetry_page, read with QMP pmemsave: every workload vCPU RUNNING with at least one
    pass, or IDLE), then settle_s more.
  * Same capabilities (events, multifd when asked, plus `capabilities`) and parameters
    (multifd-channels, multifd-compression, downtime-limit, `parameters`) on both sides;
    max-bandwidth only matters on the source: QEMU 7.2 defaults to 128 MiB/s (!), we set
    max_bandwidth (default 1 TiB/s, i.e. unlimited).
  * `migrate` on the source, `query-migrate` every sample_interval_s (0.1 s) -> samples.
  * Afterwards: destination must reach `running`; the guest's telemetry on the destination
    is read until every workload vCPU finished two more passes (so at least one whole pass
    ran entirely after the move); errors must be 0 and no "bad page"/"verify error"/"error:"
    line on the destination serial.
  * Both QEMUs are killed (SIGKILL, by PID) in every case; they also carry PDEATHSIG=KILL
    (via setpriv) so they die with the calling process even if it is SIGKILLed.
    cleanup_stale() removes work directories of dead processes.

Guest memory layout under QEMU (matters for workload ranges and images)
  RAM below 4 GiB ends at MEM (pc, MEM < 3.5 GiB) or at 3 GiB (MEM >= 3.5 GiB; the rest is
  at 4 GiB+). SeaBIOS keeps tables ~16 MiB below that end, inside what the e820 map calls
  RAM, so a workload range that runs to the end of RAM (the guest's default size) shows
  "bad page"s there. qemu_workload_range() returns a range from 0x400000 that stops 32 MiB
  short of the low-RAM end: pass it as start=/size=. An image is written at 0x400000 by
  QEMU's generic loader (`-device loader,file=IMG,addr=ADDR,force-raw=on`); QEMU keeps a
  heap copy of every loader image for resets, so the source process uses about RAM +
  image size (see rss_src_max_mb). `images` takes more (path, addr) pairs, e.g. one at
  0x100000000 for RAM above 4 GiB. An image that would run into the PCI hole (e.g.
  vmshift's 4 GiB - 4 MiB image of a 4 GiB VM: QEMU's pc puts RAM [3 GiB, 4 GiB) at
  [4 GiB, 5 GiB)) has that part loaded above 4 GiB instead, so the VM holds the same
  amount of random memory (image_relocated_bytes; what fits nowhere: image_dropped_bytes).
  The guest only checks its range below the hole. The loader reads an image with one
  read(), which Linux caps at 2 GiB - 4 KiB, so larger images are split into 1 GiB
  pieces in the work directory first (split_image; a few seconds per GiB, before boot).

QEMU 7.2 / environment quirks handled or reported here
  * query-migrate can say "completed" with total-time/downtime/mbps still 0 (they are
    computed a moment later): re-queried until total-time is set.
  * With multifd, QEMU's downtime only covers the source side (often 1-2 ms) while the
    destination still drains the channels: use blackout_ms.
  * Only the guest's boot vCPU runs under QEMU (the guest sends no INIT/SIPI; vmshift
    starts every vCPU itself): cmdline must say cpus=1; -smp N only adds idle vCPUs.
    A clear error is raised when the other vCPUs never start.
  * TCG dirty tracking misses writes to a hot page (the guest's stack page 0x14d000) whose
    softmmu TLB entry survives a dirty-bitmap sync: the destination gets a stale stack.
    The verify workload shows it every time (stale/wrong-addr errors, then the guest runs
    off its range and the destination QEMU exits); compare_memory shows exactly one
    differing page. once/continuous/idle runs checked so far had no differing page.
  * First touch of destination RAM is slow on this machine (the hypervisor backs guest
    memory lazily and the kernel reports freed pages back): clear_page dominates the
    destination's CPU, and the same 1 GiB migration takes 0.7 s or 5 s depending on
    whether the pages were recently used. dst_prealloc=True moves that cost out of the
    migration window (QEMU -mem-prealloc).

CPU accounting
  cpu_src_s / cpu_dst_s: CPU seconds (utime+stime) of each QEMU process between the
  `migrate` command and completion (source) / the destination reaching `running`,
  minus the vCPU threads' ("CPU n/TCG"). The process total comes from /proc/PID/stat,
  which includes threads that exited during the window (QEMU's migration and multifd
  threads end with the migration); the per-thread split (cpu_src_threads) comes from
  /proc/PID/task/*/stat read at every sample, so a thread's last <100 ms may be missing
  there, but not in the total. cpu_*_counted lists the thread names seen. On one host
  the kernel's TCP receive work for loopback/veth traffic partly runs in the sender's
  context, so the source/destination split is not what two machines would show.

stdlib only. Helpers it shares with the benchmarks: guest_image.py (the guest's telemetry,
serial log and fill images), qmp.py (the QMP client), proc_stats.py (CPU accounting).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from guest_image import (IMAGE_ADDR, SERIAL_BAD, elf_symbol, guest_pages, make_fill_image,
                         parse_size, read_serial, read_telemetry, split_image)
from proc_stats import CLK_TCK, CpuMeter, cpu_steal, rollup_kb, status_kb
from qmp import Qmp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ELF = (os.environ.get("VMSHIFT_GUEST") or
               os.path.join(ROOT, "build", "guest", "vmshift-guest.elf"))
QEMU = "qemu-system-x86_64"
WORK_START = 0x400000
TOP_RESERVE = 32 << 20          # kept out of the workload range below the low-RAM end


class QemuPeerError(RuntimeError):
    pass


def qemu_low_ram_end(mem, machine="pc"):
    """End of the RAM that starts at 0 (QEMU 7.2's split of RAM around the PCI hole)."""
    mem = parse_size(mem)
    if machine.startswith("q35"):
        return 0x80000000 if mem >= 0xB0000000 else mem
    return 0xC0000000 if mem >= 0xE0000000 else mem


def qemu_workload_range(mem, machine="pc", start=WORK_START, reserve=TOP_RESERVE):
    """(start, size) of a workload range that is plain RAM under QEMU+SeaBIOS."""
    end = qemu_low_ram_end(mem, machine) - reserve
    if end <= start:
        raise ValueError("no room for a workload range in %s" % (mem,))
    return start, end - start


# -- the migration ---------------------------------------------------------------------
_port_lock = threading.Lock()
_port_next = [47000]


def _next_port():
    """47000, 47001, ...: distinct ports for concurrent migrations into one namespace
    (a port cannot be probed there from here)."""
    with _port_lock:
        p = _port_next[0]
        _port_next[0] = 47000 + (p + 1 - 47000) % 2000
    return p


def _free_port(addr, fallback=47000):
    s = socket.socket()
    try:
        s.bind((addr, 0))
        return s.getsockname()[1]
    except OSError:          # address not in this namespace
        return fallback
    finally:
        s.close()


def cleanup_stale():
    """Remove /tmp/vsb-qemu-PID-* work directories whose PID is gone (left by SIGKILL;
    the QEMUs themselves die with their parent through PDEATHSIG)."""
    removed = []
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        m = re.match(r"^vsb-qemu-(\d+)-", name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
        removed.append(name)
    return removed


def _pdeathsig_prefix():
    return ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []


def _kill(proc):
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _info_ms(info, key):
    v = info.get(key)
    return None if v is None else float(v)


def qemu_migrate(mem="1G", vcpus=1, guest_elf=DEFAULT_ELF, cmdline="workload=idle",
                 image=None, image_addr=IMAGE_ADDR, images=(), streams=1, multifd=None,
                 compress="none", downtime_limit_ms=300, max_bandwidth=1 << 40,
                 src_prefix=(), dst_prefix=(), dst_addr="127.0.0.1", port=None,
                 settle_s=2.0, timeout_s=600, boot_timeout_s=120, verify_timeout_s=120,
                 verify_passes=2, machine="pc", cpu="max", qemu=QEMU, capabilities=None,
                 parameters=None, sample_interval_s=0.1, wire_dev=None, workdir=None,
                 keep_workdir=False, extra_args=(), dst_prealloc=False, compare_memory=False,
                 start_barrier=None, log=None, postcopy_after_s=None, tls_psk_dir=None,
                 guest_samples=False):
    """Run one migration; return a dict (see README of this module / the CLI).

    streams: 1 = plain pre-copy; >= 2 = multifd with that many channels; multifd=True
    forces multifd (also with 1 channel). compress: none|zlib|zstd (multifd only).
    image: raw file loaded at image_addr on the source; images: more (path, addr) pairs.
    src_prefix/dst_prefix: argv prefixes (netlab.Hosts.exec_args("a"/"b")).
    wire_dev: interface in the source's namespace whose tx_bytes delta is reported as
    wire_tx_bytes (e.g. Hosts.dev["a"]). log: callable(str) for progress lines.
    start_barrier: a threading.Barrier waited on right before `migrate` (after boot,
    settle and the destination listening), so that several migrations start together;
    aborted by this call when it fails before reaching it.
    postcopy_after_s: `migrate-start-postcopy` this long after `migrate` (pass
    capabilities={"postcopy-ram": True}). guest_progress: [(t_s since `migrate`, pages
    written by the guest)] just before `migrate` and at every destination check;
    guest_rate_pages_s: the guest's write rate during settle_s before it.
    tls_psk_dir: migrate over TLS with QEMU's tls-creds-psk (GnuTLS), the key in
    DIR/keys.psk as "qemu:HEXKEY" (the client's default username); None = plain TCP.
    guest_samples: also read the guest's telemetry at every sample (samples[i]
    ["guest_pages"]: pages written, all vCPUs) and, for 1 s before `migrate`, its rate
    (guest_baseline_pps); samples[i]["throttle"] is QEMU's cpu-throttle-percentage.
    """
    say = log or (lambda s: None)
    t_start = time.time()
    mem_b = parse_size(mem)
    streams = int(streams)
    use_multifd = bool(multifd) if multifd is not None else streams >= 2
    if compress not in ("none", "zlib", "zstd"):
        raise ValueError("compress must be none, zlib or zstd")
    if compress != "none" and not use_multifd:
        raise ValueError("compress needs multifd (streams >= 2 or multifd=True)")
    imgs = list(images)
    if image:
        imgs.insert(0, (image, image_addr))
    low_end = qemu_low_ram_end(mem_b, machine)
    for path, addr in imgs:
        if not os.path.isfile(path):
            raise ValueError("no image file %s" % path)
    tel_addr = elf_symbol(guest_elf, "telemetry_page")
    if tel_addr is None:
        raise QemuPeerError("no telemetry_page symbol in %s" % guest_elf)

    own_dir = workdir is None
    wd = tempfile.mkdtemp(prefix="vsb-qemu-%d-" % os.getpid()) if own_dir else workdir
    os.makedirs(wd, exist_ok=True)
    res = {"status": "error", "error": None, "qemu_version": None, "machine": machine,
           "accel": "tcg", "mem": mem_b, "vcpus": vcpus, "cmdline": cmdline,
           "images": [[p, a] for p, a in imgs], "streams": streams, "multifd": use_multifd,
           "compress": compress, "downtime_limit_ms": downtime_limit_ms,
           "max_bandwidth": max_bandwidth, "dst_addr": dst_addr, "dst_prealloc": dst_prealloc,
           "tls": bool(tls_psk_dir),
           "workdir": wd}
    src = dst = None
    qs = qd = None
    try:
        def argv(role):
            a = [qemu, "-accel", "tcg", "-nodefaults", "-display", "none",
                 "-machine", machine, "-m", str(mem_b // (1 << 20)) + "M",
                 "-smp", str(vcpus), "-cpu", cpu,
                 "-kernel", guest_elf, "-append", cmdline,
                 "-name", "vsb-%s,debug-threads=on" % role,
                 "-chardev", "file,id=ser0,path=%s/%s.serial" % (wd, role),
                 "-serial", "chardev:ser0",
                 "-qmp", "unix:%s/%s.qmp,server=on,wait=off" % (wd, role),
                 "-no-reboot"] + list(extra_args)
            if tls_psk_dir:
                a += ["-object", "tls-creds-psk,id=vstls0,endpoint=%s,dir=%s"
                      % ("client" if role == "src" else "server", tls_psk_dir)]
            if role == "src":
                for p, ad in loader_imgs:
                    a += ["-device", "loader,file=%s,addr=%#x,force-raw=on" % (p, ad)]
            else:
                a += ["-incoming", "defer"]
                if dst_prealloc:
                    a += ["-mem-prealloc"]
                if compare_memory:
                    a += ["-S"]       # stay paused after the incoming migration
            return a

        def spawn(role, prefix):
            out = open(os.path.join(wd, role + ".log"), "wb")
            cmd = list(prefix) + _pdeathsig_prefix() + argv(role)
            res[role + "_argv"] = cmd
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True)
            out.close()
            return p

        loader_imgs = []
        res["image_relocated_bytes"] = res["image_dropped_bytes"] = 0
        for p, ad in imgs:
            pieces, rel, drop = split_image(p, ad, wd, low_end=low_end,
                                            high_size=mem_b - low_end)
            loader_imgs += pieces
            res["image_relocated_bytes"] += rel
            res["image_dropped_bytes"] += drop
        res["loader_pieces"] = [[p, a] for p, a in loader_imgs]
        dst = spawn("dst", dst_prefix)
        src = spawn("src", src_prefix)
        # QMP comes up after machine init, which includes loading images (source) and
        # touching all RAM with -mem-prealloc (destination): allow for slow first touch.
        qmp_timeout = 60 + 10 * (mem_b >> 30)
        qd = Qmp(os.path.join(wd, "dst.qmp"), timeout=qmp_timeout, proc=dst)
        qs = Qmp(os.path.join(wd, "src.qmp"), timeout=qmp_timeout, proc=src)
        v = qs.version.get("qemu", {})
        res["qemu_version"] = "%s.%s.%s" % (v.get("major"), v.get("minor"), v.get("micro"))
        res["src_pid"], res["dst_pid"] = src.pid, dst.pid

        # 1. Guest running its workload on the source.
        tpath = os.path.join(wd, "telemetry.bin")
        deadline = time.time() + boot_timeout_s
        t_boot0 = time.time()
        tel = None
        while True:
            if src.poll() is not None:
                raise QemuPeerError("source QEMU exited: %s" % _tail(os.path.join(wd, "src.log")))
            tel = read_telemetry(qs, tel_addr, tpath)
            ser = read_serial(os.path.join(wd, "src.serial"))
            m = re.search(r"vmshift-guest: error: .*", ser)
            if m:
                raise QemuPeerError("guest failed on the source: " + m.group(0))
            if tel and tel["cpus"] and all(
                    c["state"] == "idle" or (c["state"] == "running" and c["passes"] >= 1)
                    for c in tel["cpus"]):
                break
            # The guest does not start application processors itself (vmshift starts
            # every vCPU at the entry point; under QEMU the APs wait for an INIT/SIPI
            # that never comes), so only the boot vCPU runs: cpus= must be 1.
            if (tel and len(tel["cpus"]) > 1 and tel["cpus"][0]["passes"] >= 3
                    and any(c["state"] == "booting" for c in tel["cpus"][1:])):
                raise QemuPeerError(
                    "guest vCPUs %s never started: under QEMU only the boot vCPU runs the "
                    "workload (the guest sends no INIT/SIPI); use cpus=1 in the cmdline"
                    % [i for i, c in enumerate(tel["cpus"]) if c["state"] == "booting"])
            if time.time() > deadline:
                raise QemuPeerError("guest not running its workload after %ss; serial: %s"
                                    % (boot_timeout_s, ser[-500:]))
            time.sleep(0.1)
        res["boot_s"] = time.time() - t_boot0
        say("guest running (%.1fs): %s" % (res["boot_s"], _brief(tel)))
        tel_a, ta = read_telemetry(qs, tel_addr, tpath), time.monotonic()
        time.sleep(settle_s)
        tel_before = read_telemetry(qs, tel_addr, tpath)
        tb = time.monotonic()
        res["guest_before"] = tel_before
        written = lambda tel: sum(c["pages_written"] for c in tel["cpus"]) if tel else 0
        res["guest_rate_pages_s"] = (written(tel_before) - written(tel_a)) / max(tb - ta, 1e-3)

        # 2. Same capabilities and parameters on both sides.
        caps = {"events": True}
        if use_multifd:
            caps["multifd"] = True
        caps.update(capabilities or {})
        params = {"downtime-limit": int(downtime_limit_ms)}
        if use_multifd:
            params["multifd-channels"] = streams
            params["multifd-compression"] = compress
        if tls_psk_dir:
            params["tls-creds"] = "vstls0"
        params.update(parameters or {})
        for q in (qd, qs):
            q.execute("migrate-set-capabilities", {"capabilities": [
                {"capability": k, "state": bool(v)} for k, v in caps.items()]})
            q.execute("migrate-set-parameters", params)
        qs.execute("migrate-set-parameters", {"max-bandwidth": int(max_bandwidth)})
        res["capabilities"] = caps
        res["parameters"] = dict(params, **{"max-bandwidth": int(max_bandwidth)})
        res["src_parameters"] = qs.execute("query-migrate-parameters")

        if port is None:
            port = _free_port(dst_addr, _next_port()) if not dst_prefix else _next_port()
        uri = "tcp:%s:%d" % (dst_addr, port)
        res["uri"] = uri
        qd.execute("migrate-incoming", {"uri": uri})

        # 3. Migrate.
        res["loadavg_before"] = list(os.getloadavg())
        steal0 = cpu_steal()
        wire0 = _wire_bytes(src_prefix, wire_dev)
        if start_barrier is not None:
            barrier, start_barrier = start_barrier, None   # reached: nothing to abort
            barrier.wait()
        if guest_samples:
            g0 = (time.monotonic(), guest_pages(read_telemetry(qs, tel_addr, tpath)))
            time.sleep(1.0)
            g1 = (time.monotonic(), guest_pages(read_telemetry(qs, tel_addr, tpath)))
            res["guest_baseline_pps"] = (g1[1] - g0[1]) / (g1[0] - g0[0])
        cs, cd = CpuMeter(src.pid), CpuMeter(dst.pid)
        samples = []
        t0 = time.monotonic()
        res["t0_mono"] = t0
        t0_wall = time.time()
        qs.execute("migrate", {"uri": uri})
        res["guest_progress"] = [(tb - t0, written(tel_before))]
        postcopy_started = postcopy_after_s is None
        info = {}
        status = "active"
        while True:
            info = qs.execute("query-migrate")
            t = time.monotonic() - t0
            cs.sample()
            cd.sample()
            status = info.get("status", "?")
            ram = info.get("ram", {})
            samples.append({"t_s": round(t, 4), "transferred": ram.get("transferred", 0),
                            "remaining": ram.get("remaining"),
                            "dirty_sync_count": ram.get("dirty-sync-count"),
                            "status": status})
            if guest_samples:
                samples[-1]["throttle"] = info.get("cpu-throttle-percentage", 0)
                if status in ("active", "setup"):
                    samples[-1]["guest_pages"] = guest_pages(
                        read_telemetry(qs, tel_addr, tpath))
            if status in ("completed", "failed", "cancelled"):
                break
            if not postcopy_started and t >= postcopy_after_s and status == "active":
                qs.execute("migrate-start-postcopy")
                postcopy_started = True
            if t > timeout_s:
                qs.execute("migrate_cancel")
                status = "timeout"
                break
            time.sleep(max(0.0, sample_interval_s - ((time.monotonic() - t0) - t)))
        if status == "completed":
            # QEMU 7.2 sets status=completed before it computes total-time/downtime/mbps
            # (migration_completion() vs migration_calculate_complete()): a query in
            # between reports 0 for them. Ask again until total-time is filled in.
            requery = 0
            while not info.get("total-time") and requery < 200:
                time.sleep(0.01)
                info = qs.execute("query-migrate")
                requery += 1
            res["completed_requeries"] = requery
        cs.stop()
        steal1 = cpu_steal()
        res["host_steal_s"] = (steal1 - steal0) / CLK_TCK if steal0 is not None else None
        res["loadavg_after"] = list(os.getloadavg())
        wire1 = _wire_bytes(src_prefix, wire_dev)
        say("migration %s after %.1fs" % (status, time.monotonic() - t0))

        # 4. Destination running?
        dst_running = False
        dst_state = None
        if status == "completed" and compare_memory:
            # Destination was started with -S: it pauses once the stream is loaded.
            deadline = time.time() + 60
            while time.time() < deadline:
                dst_state = qd.execute("query-status").get("status")
                cd.sample()
                if dst_state != "inmigrate" or dst.poll() is not None:
                    break
                time.sleep(0.01)
            cd.stop()
            if dst_state in ("paused", "prelaunch"):
                res["memory_compare"] = _compare_memory(qs, qd, mem_b, machine, wd)
                say("memory compare: %d differing pages" % res["memory_compare"]["pages_differing"])
                qd.execute("cont")
        if status == "completed":
            deadline = time.time() + 60
            while time.time() < deadline:
                dst_state = qd.execute("query-status").get("status")
                cd.sample()
                if dst_state == "running":
                    dst_running = True
                    break
                if dst.poll() is not None:
                    break
                time.sleep(0.01)
        cd.stop()
        if status == "timeout":
            # wait for the cancel to settle so the final info is consistent
            for _ in range(100):
                info = qs.execute("query-migrate")
                if info.get("status") in ("cancelled", "failed", "completed"):
                    break
                time.sleep(0.1)

        ram = info.get("ram", {})
        res.update({
            "status": "completed" if status == "completed" and dst_running else
                      ("failed" if status == "completed" else status),
            "migration_status": status,
            "error": ("no completion within timeout_s=%s" % timeout_s if status == "timeout"
                      else info.get("error-desc")) if status != "completed" else
                     (None if dst_running else "destination not running: %s" % dst_state),
            "total_time_ms": _info_ms(info, "total-time"),
            "downtime_ms": _info_ms(info, "downtime"),
            "setup_time_ms": _info_ms(info, "setup-time"),
            "expected_downtime_ms": _info_ms(info, "expected-downtime"),
            "transferred_bytes": ram.get("transferred"),
            "ram_total_bytes": ram.get("total"),
            "ram_normal_pages": ram.get("normal"),
            "ram_normal_bytes": ram.get("normal-bytes"),
            "ram_duplicate_pages": ram.get("duplicate"),
            "multifd_bytes": ram.get("multifd-bytes"),
            "precopy_bytes": ram.get("precopy-bytes"),
            "downtime_bytes": ram.get("downtime-bytes"),
            "mbps": ram.get("mbps"),
            "iterations": ram.get("dirty-sync-count"),
            "wire_tx_bytes": (wire1 - wire0) if wire0 is not None and wire1 is not None else None,
            "samples": samples,
            "query_migrate": info,
        })
        ev_stop, ev_resume = qs.event("STOP"), qd.event("RESUME")
        res["blackout_ms"] = ((ev_resume["ts"] - ev_stop["ts"]) * 1000.0
                              if ev_stop and ev_resume and not compare_memory else None)
        # When the source stopped the guest for the final pass, from `migrate`.
        res["switchover_at_ms"] = (ev_stop["ts"] - t0_wall) * 1000.0 if ev_stop else None
        c = cs.result()
        res.update({"cpu_src_s": c["cpu_s"], "cpu_src_vcpu_s": c["vcpu_s"],
                    "cpu_src_threads": c["threads"], "cpu_src_counted": c["counted"],
                    "cpu_src_excluded": c["excluded"]})
        c = cd.result()
        res.update({"cpu_dst_s": c["cpu_s"], "cpu_dst_vcpu_s": c["vcpu_s"],
                    "cpu_dst_threads": c["threads"], "cpu_dst_counted": c["counted"],
                    "cpu_dst_excluded": c["excluded"]})

        # 5. The guest after the move.
        if dst_running:
            res.update(_check_dest(qd, dst, tel_addr, tpath, tel_before, wd,
                                   verify_timeout_s, verify_passes))
            res["guest_progress"] += [(t - t0, w) for t, w in res.pop("progress", [])]
            if not res["guest_ok"] and res["status"] == "completed":
                res["status"] = "failed"
                res["error"] = "guest check failed on the destination: %s" % res["guest_problem"]
        res["rss_src_max_mb"] = (status_kb(src.pid, "VmHWM") or 0) / 1024.0
        res["rss_dst_max_mb"] = (status_kb(dst.pid, "VmHWM") or 0) / 1024.0
        res["dst_anon_huge_mb"] = (rollup_kb(dst.pid, "AnonHugePages") or 0) / 1024.0
    except Exception as e:
        res["status"] = "error"
        res["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if start_barrier is not None:       # failed (or interrupted) before the barrier
            start_barrier.abort()
        for q in (qs, qd):
            if q is not None:
                q.close()
        _kill(src)
        _kill(dst)
        res["src_log"] = _tail(os.path.join(wd, "src.log"))
        res["dst_log"] = _tail(os.path.join(wd, "dst.log"))
        res["dst_serial_tail"] = read_serial(os.path.join(wd, "dst.serial"))[-1000:]
        res["wall_s"] = time.time() - t_start
        if own_dir and not keep_workdir:
            shutil.rmtree(wd, ignore_errors=True)
            res["workdir"] = None
    return res


def _compare_memory(qs, qd, mem_b, machine, wd, chunk=256 << 20):
    """Compare all guest RAM of the stopped source with the paused destination, page
    by page (pmemsave in chunks). Returns counts and the first differing pages."""
    low = qemu_low_ram_end(mem_b, machine)
    ranges = [(0, low)] + ([(1 << 32, mem_b - low)] if mem_b > low else [])
    diff, first = 0, []
    t0 = time.time()
    for base, size in ranges:
        for off in range(0, size, chunk):
            n = min(chunk, size - off)
            files = []
            for role, q in (("src", qs), ("dst", qd)):
                f = os.path.join(wd, "cmp-%s.bin" % role)
                q.execute("pmemsave", {"val": base + off, "size": n, "filename": f}, timeout=300)
                files.append(f)
            with open(files[0], "rb") as fa, open(files[1], "rb") as fb:
                a, b = fa.read(), fb.read()
            if a != b:
                for i in range(0, n, 4096):
                    if a[i:i + 4096] != b[i:i + 4096]:
                        diff += 1
                        if len(first) < 16:
                            first.append(hex(base + off + i))
            for f in files:
                os.unlink(f)
    return {"pages_differing": diff, "first_differing": first, "compare_s": time.time() - t0}


def _check_dest(qd, dst, tel_addr, tpath, before, wd, timeout_s, passes_needed):
    """Destination guest: running, counters moving, no errors."""
    out = {"guest_ok": False, "guest_problem": None}
    t0 = time.time()
    first = None
    tel = None
    while time.time() - t0 < timeout_s:
        if dst.poll() is not None:
            out["guest_problem"] = "destination QEMU exited"
            return out
        tel = read_telemetry(qd, tel_addr, tpath)
        if tel is None:
            out["guest_problem"] = "no telemetry on the destination"
            time.sleep(0.1)
            continue
        out.setdefault("progress", []).append(
            (time.monotonic(), sum(c["pages_written"] for c in tel["cpus"])))
        if first is None:
            first = tel
        if all(c["state"] == "idle" for c in tel["cpus"]):
            break
        if all(c["state"] == "running" and c["passes"] >= f["passes"] + passes_needed
               for c, f in zip(tel["cpus"], first["cpus"])):
            break
        time.sleep(0.2)
    else:
        out["guest_after"] = tel
        out["guest_errors"] = tel["errors"] if tel else None
        out["guest_problem"] = "guest made no %d more passes in %ss" % (passes_needed, timeout_s)
        return out
    out["guest_after"] = tel
    out["guest_errors"] = tel["errors"]
    out["guest_check_s"] = time.time() - t0
    status = qd.execute("query-status").get("status")
    ser = read_serial(os.path.join(wd, "dst.serial"))
    bad = SERIAL_BAD.findall(ser)
    problems = []
    if status != "running":
        problems.append("destination status %s" % status)
    if tel["errors"]:
        new = tel["errors"] - (before["errors"] if before else 0)
        problems.append("guest errors=%d (%d since the migration started), first bad %#x"
                        % (tel["errors"], new, min(c["first_bad_addr"] for c in tel["cpus"]
                                                   if c["errors"])))
    if bad:
        problems.append("serial: " + " | ".join(bad[:4]))
    if before and any(c["state"] == "failed" for c in tel["cpus"]):
        problems.append("guest state failed")
    out["guest_serial_errors"] = bad
    out["guest_ok"] = not problems
    out["guest_problem"] = "; ".join(problems) or None
    return out


def _wire_bytes(prefix, dev):
    if not dev:
        return None
    p = subprocess.run(list(prefix) + ["cat", "/sys/class/net/%s/statistics/tx_bytes" % dev],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        return int(p.stdout.strip())
    except ValueError:
        return None


def _tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]
    except OSError:
        return ""


def _brief(tel):
    if not tel:
        return "no telemetry"
    return "%s cpus=%d passes=%s errors=%d" % (tel["workload"], tel["nr_cpus"],
                                               [c["passes"] for c in tel["cpus"]], tel["errors"])


def _main():
    import argparse
    ap = argparse.ArgumentParser(description="one measured QEMU (TCG) live migration")
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--guest-elf", default=DEFAULT_ELF)
    ap.add_argument("--cmdline", default=None,
                    help="guest command line; default: workload=idle with "
                         "start=/size= from qemu_workload_range")
    ap.add_argument("--workload", default=None,
                    help="shortcut: builds the cmdline with a QEMU-safe range")
    ap.add_argument("--fill", default="none")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=int, default=0)
    ap.add_argument("--image", default=None)
    ap.add_argument("--make-image", action="store_true",
                    help="create a --fill image for the range in a temp file (and use it)")
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--multifd", action="store_true")
    ap.add_argument("--compress", default="none")
    ap.add_argument("--downtime-limit-ms", type=int, default=300)
    ap.add_argument("--dst-addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--netns", action="store_true",
                    help="run source/destination in netlab namespaces (198.18.0.1 -> .2)")
    ap.add_argument("--rate-limit", default=None, help="netlab shaping, e.g. 10gbit")
    ap.add_argument("--settle-s", type=float, default=2.0)
    ap.add_argument("--timeout-s", type=float, default=600)
    ap.add_argument("--no-samples", action="store_true", help="omit samples from the output")
    ap.add_argument("--keep-workdir", action="store_true")
    ap.add_argument("--compare-memory", action="store_true",
                    help="destination starts paused (-S); after the migration compare all "
                         "guest RAM of both sides, then resume (blackout is not measured)")
    ap.add_argument("--dst-prealloc", action="store_true",
                    help="-mem-prealloc on the destination (RAM touched before migrating)")
    a = ap.parse_args()

    start, size = qemu_workload_range(a.mem)
    cmdline = a.cmdline
    if cmdline is None:
        # cpus=1: under QEMU only the boot vCPU runs the workload (see the docstring).
        cmdline = "workload=%s start=%#x size=%#x rate=%d fill=%s seed=%d cpus=1" % (
            a.workload or "idle", start, size, a.rate, a.fill, a.seed)
    image, tmpimg = a.image, None
    if a.make_image:
        fd, tmpimg = tempfile.mkstemp(prefix="vsb-img-", dir="/tmp")
        os.close(fd)
        make_fill_image(tmpimg, size, start, a.seed, a.fill)
        image = tmpimg
    hosts = None
    try:
        kw = {}
        if a.netns:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import netlab
            netlab.install_sigterm_handler()
            hosts = netlab.Hosts(rate=a.rate_limit)
            kw = {"src_prefix": hosts.exec_args("a"), "dst_prefix": hosts.exec_args("b"),
                  "dst_addr": hosts.addr("b"), "wire_dev": hosts.dev["a"]}
        else:
            kw = {"dst_addr": a.dst_addr}
        r = qemu_migrate(mem=a.mem, vcpus=a.vcpus, guest_elf=a.guest_elf, cmdline=cmdline,
                         image=image, streams=a.streams, multifd=a.multifd or None,
                         compress=a.compress, downtime_limit_ms=a.downtime_limit_ms,
                         port=a.port, settle_s=a.settle_s, timeout_s=a.timeout_s,
                         keep_workdir=a.keep_workdir, dst_prealloc=a.dst_prealloc,
                         compare_memory=a.compare_memory,
                         log=lambda s: print(s, file=sys.stderr, flush=True), **kw)
    finally:
        if hosts is not None:
            hosts.destroy()
        if tmpimg:
            os.unlink(tmpimg)
    if a.no_samples:
        r.pop("samples", None)
    print(json.dumps(r, indent=1, default=str))
    sys.exit(0 if r["status"] == "completed" else 1)


if __name__ == "__main__":
    _main()
