"""The vmshift workload guest as seen from outside a VMM: where its telemetry page is (ELF
symbol), how to read that page and the serial log, and the raw memory images of its --fill
(for QEMU's loader device). Shared by the QEMU peer (qemu_peer.py) and the benchmarks.

stdlib only (make_fill_image compiles a small C helper with cc).
"""
import os
import re
import shutil
import struct
import subprocess
import tempfile

IMAGE_ADDR = 0x400000
TELEMETRY_MAGIC = 0x59524D454C455456
VS_MAX_VCPUS = 32
GUEST_STATES = {0: "booting", 1: "running", 2: "idle", 3: "failed"}
WORKLOADS = {0: "idle", 1: "once", 2: "continuous", 3: "verify", 4: "timer", 5: "disk",
             6: "net", 7: "net-stream"}


class GuestImageError(RuntimeError):
    pass


def parse_size(s):
    """'4G' -> 4 << 30 (binary K/M/G/T, optional trailing B/iB); ints pass through."""
    if isinstance(s, int):
        return s
    m = re.match(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", str(s), re.I)
    if not m:
        raise ValueError("bad size %r" % (s,))
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]


# -- ELF: where the guest's telemetry page is -----------------------------------------------
def elf_symbol(path, name):
    """Value of symbol `name` in an ELF64 little-endian file, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    secs = []
    for i in range(shnum):
        off = shoff + i * shentsize
        (sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info,
         sh_align, sh_entsize) = struct.unpack_from("<IIQQQQIIQQ", data, off)
        secs.append((sh_type, sh_offset, sh_size, sh_link, sh_entsize))
    want = name.encode()
    for sh_type, off, size, link, entsize in secs:
        if sh_type != 2 or not entsize:         # SHT_SYMTAB
            continue
        stroff = secs[link][1]
        for k in range(size // entsize):
            st_name, st_info, st_other, st_shndx, st_value, st_size = struct.unpack_from(
                "<IBBHQQ", data, off + k * entsize)
            end = data.index(b"\0", stroff + st_name)
            if data[stroff + st_name:end] == want:
                return st_value
    return None


# -- guest telemetry -------------------------------------------------------------------
def read_telemetry(qmp, addr, path):
    """Parse the guest's telemetry page via pmemsave. None when not (yet) valid."""
    qmp.execute("pmemsave", {"val": addr, "size": 4096, "filename": path})
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 4096:
        return None
    magic, version, workload, nr_cpus, fill, rstart, rpages, rate, seed, _ = struct.unpack_from(
        "<QIIIIQQQQQ", b, 0)
    if magic != TELEMETRY_MAGIC:
        return None
    cpus = []
    for i in range(min(max(nr_cpus, 1), VS_MAX_VCPUS)):
        passes, written, checked, errors, gen, first_bad, state, _, _ = struct.unpack_from(
            "<QQQQQQIIQ", b, 64 + 64 * i)
        cpus.append({"passes": passes, "pages_written": written, "pages_checked": checked,
                     "errors": errors, "generation": gen, "first_bad_addr": first_bad,
                     "state": GUEST_STATES.get(state, str(state))})
    return {"workload": WORKLOADS.get(workload, str(workload)), "nr_cpus": nr_cpus,
            "fill": fill, "range_start": rstart, "range_pages": rpages, "rate": rate,
            "seed": seed, "cpus": cpus, "errors": sum(c["errors"] for c in cpus)}


def guest_pages(tel):
    """Pages written by all vCPUs, from a read_telemetry() result (0 if none)."""
    return sum(c["pages_written"] for c in tel["cpus"]) if tel else 0


SERIAL_BAD = re.compile(r"^(bad page .*|verify error .*|vmshift-guest: error: .*)$", re.M)


def read_serial(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1").replace("\x1b", "")
    except OSError:
        return ""


# -- fill images (smoke tests; the benchmark gets its image from the lead) --------------
_FILL_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
static inline uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
int main(int argc, char **argv) {
    /* out base size seed kind(1 pattern, 2 random) */
    FILE *f = fopen(argv[1], "wb");
    uint64_t base = strtoull(argv[2], 0, 0), size = strtoull(argv[3], 0, 0);
    uint64_t seed = strtoull(argv[4], 0, 0), kind = strtoull(argv[5], 0, 0);
    static uint64_t buf[1 << 17];
    if (!f) return 1;
    for (uint64_t off = 0; off < size; ) {
        uint64_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
        for (uint64_t i = 0; i < n / 8; i++) {
            uint64_t pa = base + off + 8 * i;
            buf[i] = kind == 1 ? (pa | 0xa500000000000000ULL)
                               : mix(seed ^ (pa * 0x2545f4914f6cdd1dULL));
        }
        if (fwrite(buf, 1, n, f) != n) return 1;
        off += n;
    }
    return fclose(f) ? 1 : 0;
}
"""


def make_fill_image(path, size, base=IMAGE_ADDR, seed=1, fill="random"):
    """Write the bytes vs_fill_word() gives for guest-physical [base, base+size) to path
    (compiles a 30-line C helper with cc; pure Python would take minutes per GiB)."""
    kind = {"pattern": 1, "random": 2}[fill]
    d = tempfile.mkdtemp(prefix="vsb-fill-")
    try:
        src, exe = os.path.join(d, "fill.c"), os.path.join(d, "fill")
        with open(src, "w") as f:
            f.write(_FILL_C)
        subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
        subprocess.run([exe, path, str(base), str(parse_size(size)), str(seed), str(kind)],
                       check=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return path


# QEMU 7.2's loader reads a whole image with one read(), and Linux returns at most
# 0x7ffff000 bytes per read: images over 2 GiB - 4 KiB fail with "rom: file ...: read
# error: rc=2147479552". Bigger images are split into pieces of this size.
LOADER_MAX = 1 << 30


def split_image(path, addr, outdir, chunk=LOADER_MAX, low_end=None, high_size=0):
    """Loader pieces [(path, guest_addr)] for one raw image meant for guest-physical
    [addr, addr + size): at most chunk bytes each (files written to outdir with
    copy_file_range; the image itself when it needs no cutting). With low_end, bytes that
    would land at or above low_end (QEMU's PCI hole) go to RAM above 4 GiB instead,
    0x100000000 + (paddr - low_end), as far as high_size reaches; the rest is dropped.
    Returns (pieces, relocated_bytes, dropped_bytes)."""
    size = os.path.getsize(path)
    spans = []                                    # (file offset, length, guest address)
    if low_end is None or addr + size <= low_end:
        spans.append((0, size, addr))
        relocated = dropped = 0
    else:
        keep = max(0, low_end - addr)
        if keep:
            spans.append((0, keep, addr))
        rest = size - keep
        hstart = max(addr, low_end) - low_end     # offset into high RAM
        relocated = max(0, min(rest, high_size - hstart))
        dropped = rest - relocated
        if relocated:
            spans.append((keep, relocated, (1 << 32) + hstart))
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == size and size <= chunk:
        return [(path, addr)], relocated, dropped
    out = []
    with open(path, "rb") as src:
        for foff, flen, gaddr in spans:
            for off in range(0, flen, chunk):
                n = min(chunk, flen - off)
                piece = os.path.join(outdir, "%s.%02d" % (os.path.basename(path), len(out)))
                with open(piece, "wb") as dst:
                    done = 0
                    while done < n:
                        k = os.copy_file_range(src.fileno(), dst.fileno(), n - done,
                                               foff + off + done)
                        if k <= 0:
                            raise GuestImageError("short copy splitting %s" % path)
                        done += k
                out.append((piece, gaddr + off))
    return out, relocated, dropped
