#!/usr/bin/env bash
# Integration test: `cmake --install` gives a vmshift that runs without the build tree.
#   test_install.sh BUILD_DIR
# Installs into a temporary prefix, moves the install to another directory (so no path
# of the install time can be used) and hides the build tree behind an empty tmpfs in a
# private mount namespace; then vmshift must boot the installed workload guest, from
# another working directory, and say so, and so must a VM that the installed vmshiftd
# starts. Needs root (mount namespace) and /dev/kvm.
set -euo pipefail
build=$(cd "${1:?usage: test_install.sh BUILD_DIR}" && pwd)

tmp=$(mktemp -d /tmp/vs_install_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_install: FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install $build --prefix $tmp/prefix failed"; }
for f in bin/vmshift bin/vmshiftd lib/vmshift/vmshift-guest.elf \
         lib/systemd/system/vmshiftd.service share/doc/vmshift/README.md \
         share/doc/vmshift/guide.md; do
  [ -f "$tmp/prefix/$f" ] || fail "cmake --install did not install $f"
done
grep -qx "ExecStart=$tmp/prefix/bin/vmshiftd --ctl .*--state-dir /var/lib/vmshift.*" \
  "$tmp/prefix/lib/systemd/system/vmshiftd.service" ||
  fail "the unit does not start the installed vmshiftd: $(grep ExecStart "$tmp/prefix/lib/systemd/system/vmshiftd.service")"

# The install, moved: nothing may point at $tmp/prefix or at the build tree any more.
mkdir "$tmp/moved" "$tmp/cwd"
mv "$tmp/prefix" "$tmp/moved/usr"
root="$tmp/moved/usr"

# Run CMD with the build tree hidden (an empty tmpfs over it), from $tmp/cwd, without
# VMSHIFT_GUEST.
without_build_tree() {
  (cd "$tmp/cwd" && env -u VMSHIFT_GUEST unshare --mount --propagation private \
     sh -c 'mount -t tmpfs vs-hidden "$0" && exec "$@"' "$build" "$@")
}
without_build_tree test ! -e "$build/CMakeCache.txt" ||
  fail "could not hide the build tree $build (unshare/mount need root)"

rc=0
without_build_tree "$root/bin/vmshift" run --mem 32M --workload once --run-for 3 \
  --serial "$tmp/serial.txt" >"$tmp/run.out" 2>"$tmp/run.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$tmp/run.err"; fail "the installed vmshift run exited $rc"; }
grep -q "boot of $root/lib/vmshift/vmshift-guest.elf," "$tmp/run.err" ||
  { cat "$tmp/run.err"; fail "vmshift did not boot the installed guest $root/lib/vmshift/vmshift-guest.elf"; }
grep -q "^vmshift-guest: workload=once" "$tmp/serial.txt" ||
  { cat "$tmp/serial.txt"; fail "the guest's start line is not on its serial port"; }
grep -q "errors=0" "$tmp/serial.txt" && ! grep -q "errors=[1-9]" "$tmp/serial.txt" ||
  { cat "$tmp/serial.txt"; fail "the guest's workload did not run clean"; }

"$root/bin/vmshiftd" --help >"$tmp/help.out" || fail "vmshiftd --help exited $?"
grep -q "^usage: vmshiftd" "$tmp/help.out" || fail "vmshiftd --help printed no usage"

# The installed vmshiftd starts a VM with the vmshift next to it, which finds the guest.
cat >"$tmp/daemon.sh" <<'SCRIPT'
set -u
root=$1 tmp=$2
"$root/bin/vmshiftd" --ctl "$tmp/host.sock" --state-dir "$tmp/state" --vms-die-with-daemon \
  2>"$tmp/vmshiftd.err" &
daemon=$!
for _ in $(seq 100); do [ -S "$tmp/host.sock" ] && break; sleep 0.1; done
"$root/bin/vmshift" ctl "$tmp/host.sock" vm-start name=t1 mem=32M workload=once >"$tmp/start.out"
started=$?
running=1
for _ in $(seq 100); do
  "$root/bin/vmshift" ctl "$tmp/host.sock" vm-list >"$tmp/list.out" 2>&1
  grep -q '"state": "running"' "$tmp/list.out" && { running=0; break; }
  sleep 0.1
done
"$root/bin/vmshift" ctl "$tmp/host.sock" host-shutdown >/dev/null 2>&1 || kill "$daemon"
wait "$daemon"
[ "$started" -eq 0 ] && [ "$running" -eq 0 ]
SCRIPT
without_build_tree bash "$tmp/daemon.sh" "$root" "$tmp" ||
  { cat "$tmp/start.out" "$tmp/list.out" "$tmp/vmshiftd.err" "$tmp"/state/t1/*.log 2>/dev/null
    fail "the installed vmshiftd did not run a VM"; }
grep -q "boot of $root/lib/vmshift/vmshift-guest.elf," "$tmp/state/t1/stderr.log" ||
  { cat "$tmp/state/t1/stderr.log"; fail "vmshiftd's VM did not boot the installed guest"; }

# No guest anywhere: the error names every place looked at and what to do.
rm "$root/lib/vmshift/vmshift-guest.elf"
rc=0
without_build_tree "$root/bin/vmshift" run --mem 32M --run-for 1 --serial none \
  >/dev/null 2>"$tmp/missing.err" || rc=$?
[ "$rc" -eq 2 ] || { cat "$tmp/missing.err"; fail "vmshift run without a guest exited $rc, not 2"; }
for needle in "VMSHIFT_GUEST (not set)" "$root/bin/../lib/vmshift/vmshift-guest.elf (No such file" \
              "$build/guest/vmshift-guest.elf (No such file" "--kernel" "cmake --install"; do
  grep -qF -- "$needle" "$tmp/missing.err" ||
    { cat "$tmp/missing.err"; fail "the missing-guest error does not mention '$needle'"; }
done
echo "test_install: ok (installed, moved, booted $root/lib/vmshift/vmshift-guest.elf without the build tree)"
