#!/usr/bin/env bash
# How many pages per second the continuous workload dirties on this machine.
#   bench/dirty_rate.sh [VCPUS] [MEM]      (default 1 vCPU, 1G)
# Waits until two passes are done (first touch of guest RAM is slower), then samples
# the guest's pages_written counter 5 s apart.
set -euo pipefail
cd "$(dirname "$0")/.."
vcpus=${1:-1}; mem=${2:-1G}
dir=$(mktemp -d /tmp/vmshift-bench-XXXXXX); sock=$dir/ctl.sock
build/vmshift run --mem "$mem" --vcpus "$vcpus" --workload continuous --ctl "$sock" \
  --serial none 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
field() { build/vmshift ctl "$sock" status --raw | grep -o "\"guest\".*" | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
while [ "$(field passes)" -lt 2 ]; do sleep 0.5; done
a=$(field pages_written); t0=$(date +%s.%N)
sleep 5
b=$(field pages_written); t1=$(date +%s.%N)
echo "continuous workload, $vcpus vCPU(s), $mem: $(echo "($b - $a) / ($t1 - $t0)" | bc) pages/s"
