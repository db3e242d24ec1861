#!/usr/bin/env bash
# Integration test: `cpack -G DEB` builds a Debian package with vmshift, vmshiftd, the
# workload guest, vmshiftd's systemd unit and the docs, installing into /usr, with the
# runtime libraries as dependencies.
#   test_package_deb.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: test_package_deb.sh BUILD_DIR}" && pwd)

tmp=$(mktemp -d /tmp/vs_deb_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_package_deb: FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp") >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack -G DEB failed"; }
debs=("$tmp"/vmshift_*.deb)
[ -f "${debs[0]}" ] || { cat "$tmp/cpack.log"; fail "cpack made no vmshift_*.deb in $tmp"; }
deb=${debs[0]}

dpkg-deb -c "$deb" | awk '{print $NF}' >"$tmp/contents"
for f in ./usr/bin/vmshift ./usr/bin/vmshiftd ./usr/lib/vmshift/vmshift-guest.elf \
         ./usr/lib/systemd/system/vmshiftd.service ./usr/share/doc/vmshift/README.md; do
  grep -qx -- "$f" "$tmp/contents" || { cat "$tmp/contents"; fail "$deb lacks $f"; }
done

[ "$(dpkg-deb -f "$deb" Package)" = vmshift ] || fail "package name is not vmshift"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libjson-c5 libxxhash0 liblz4-1 libzstd1 libssl3 libnbd0; do
  grep -qw -- "$lib" <<<"$depends" || fail "Depends ($depends) lacks $lib"
done
[ -n "$(dpkg-deb -f "$deb" Maintainer)" ] || fail "no Maintainer"

unit=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/vmshiftd.service)
grep -q "^ExecStart=/usr/bin/vmshiftd " <<<"$unit" ||
  fail "the packaged unit does not start /usr/bin/vmshiftd: $(grep ExecStart <<<"$unit")"
grep -q "^StateDirectory=vmshift" <<<"$unit" || fail "the packaged unit has no state directory"
dpkg-deb -e "$deb" "$tmp/control"
for script in postinst prerm postrm; do
  [ -x "$tmp/control/$script" ] || fail "$deb has no executable $script"
done
grep -q "daemon-reload" "$tmp/control/postinst" || fail "postinst does not reload systemd"
echo "test_package_deb: ok ($(basename "$deb"))"
