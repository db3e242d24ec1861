#!/usr/bin/env bash
# The main job: install, build, boot a VM running the self-checking verify workload,
# live-migrate it to a second vmshift process, and print the migration report and what
# the guest reports after the move.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build

dir=$(mktemp -d /tmp/vmshift-demo-XXXXXX)
src_pid=""; dst_pid=""
cleanup() {
  [ -n "$src_pid" ] && kill "$src_pid" 2>/dev/null || true
  [ -n "$dst_pid" ] && kill "$dst_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }

echo "== source: a 512 MiB, 2-vCPU VM with random memory, running the verify workload"
# --keep-after-migrate: the source stays after its VM left (by default it exits two seconds
# later), so that its state can be shown below.
build/vmshift run --mem 512M --vcpus 2 --workload verify --fill random --keep-after-migrate \
  --ctl "$dir/src.sock" --serial "$dir/src-serial.log" 2>"$dir/src.log" &
src_pid=$!
echo "== a pre-shared key for the migration's TLS 1.3 (both sides use the same file)"
scripts/make-test-certs.sh "$dir/creds" >/dev/null
echo "== destination: vmshift receive on 127.0.0.1, TLS with the key"
build/vmshift receive --listen 127.0.0.1:0 --port-file "$dir/port" --tls-psk "$dir/creds/psk" \
  --ctl "$dir/dst.sock" --serial "$dir/dst-serial.log" 2>"$dir/dst.log" &
dst_pid=$!
wait_for "$dir/src.sock"; wait_for "$dir/port"
sleep 3
echo "== guest before the move:"
build/vmshift ctl "$dir/src.sock" status --raw | grep -o '"passes":[0-9]*,"pages_written":[0-9]*,"pages_checked":[0-9]*,"errors":[0-9]*' | head -1

echo "== live migration over TLS 1.3 (pre-shared key)"
build/vmshift migrate "$dir/src.sock" --to "127.0.0.1:$(cat "$dir/port")" \
  --tls-psk "$dir/creds/psk" --report "$dir/report.json"

wait_for "$dir/dst.sock"
sleep 3
echo "== guest after the move (on the destination):"
build/vmshift ctl "$dir/dst.sock" status
echo "== source VM state:"
build/vmshift ctl "$dir/src.sock" status --raw | grep -o '"state":"[a-z]*"' | head -1
build/vmshift ctl "$dir/dst.sock" quit --raw >/dev/null
build/vmshift ctl "$dir/src.sock" quit --raw >/dev/null
wait "$dst_pid" "$src_pid" 2>/dev/null || true
src_pid=""; dst_pid=""
