#!/usr/bin/env bash
# The main job: install, build, boot a VM running the verify workload, show what the
# guest reports over the control socket, and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build

dir=$(mktemp -d /tmp/vmshift-demo-XXXXXX)
trap 'rm -rf "$dir"' EXIT
sock=$dir/ctl.sock

echo "== booting a 256 MiB, 2-vCPU VM with the verify workload (serial: $dir/serial.log)"
build/vmshift run --mem 256M --vcpus 2 --workload verify --fill random \
  --ctl "$sock" --serial "$dir/serial.log" &
vm=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
sleep 3
echo "== status after 3 s"
build/vmshift ctl "$sock" status
echo "== pause, then resume"
build/vmshift ctl "$sock" pause --raw
sleep 1
build/vmshift ctl "$sock" resume --raw
sleep 2
echo "== guest serial output"
cat "$dir/serial.log"
build/vmshift ctl "$sock" quit --raw
wait "$vm"
