#!/usr/bin/env bash
# One live migration on loopback with the numbers issue 3 asks for.
#   bench/loopback_migration.sh WORKLOAD [MEM] [FILL] [VCPUS]
# e.g. bench/loopback_migration.sh once 2G random     (2 GiB of random memory)
#      bench/loopback_migration.sh verify 2G random
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:-once}; mem=${2:-2G}; fill=${3:-random}; vcpus=${4:-1}
dir=$(mktemp -d /tmp/vmshift-bench-XXXXXX)
build/vmshift run --mem "$mem" --vcpus "$vcpus" --workload "$workload" --fill "$fill" \
  --ctl "$dir/src.sock" --serial none 2>"$dir/src.log" &
src=$!
build/vmshift receive --listen 127.0.0.1:0 --port-file "$dir/port" --ctl "$dir/dst.sock" \
  --serial none 2>"$dir/dst.log" &
dst=$!
trap 'kill $src $dst 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do [ -S "$dir/src.sock" ] && [ -s "$dir/port" ] && break; sleep 0.1; done
sleep 3
build/vmshift migrate "$dir/src.sock" --to "127.0.0.1:$(cat "$dir/port")" \
  --report "$dir/report.json" >/dev/null
grep -E '"(status|total-time|downtime|blackout-send-time|verify-time|transferred|iterations)"' \
  "$dir/report.json" | tr -d ' ,' | paste -sd' '
