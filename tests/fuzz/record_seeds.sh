#!/usr/bin/env bash
# Record real migrations of small VMs (8 MiB, verify workload) over loopback and turn them
# into the fuzz seed corpus: tests/fuzz/record_seeds.sh BUILD_DIR OUT_CORPUS_DIR
# Cases: raw pages, lz4 and zstd (two streams) over a compressible fill, zstd auto over a
# random fill, and a commit window lost after verification (settled over RESOLVE).
# Plain TCP (--insecure): what is recorded is the record stream itself, as the fuzz
# targets read it after TLS.
set -euo pipefail
build=$(realpath "$1")
out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

record() {   # NAME FILL DST_FAULT MIGRATE_ARGS...
  local name=$1 fill=$2 fault=$3
  shift 3
  mkdir -p "$tmp/$name"
  VMSHIFT_RECORD_DIR="$tmp/$name" "$build/vmshift" run --mem 8M --vcpus 2 --workload verify \
    --fill "$fill" --ctl "$tmp/src.sock" --serial none 2>"$tmp/$name.src.log" &
  local src=$!
  VMSHIFT_RECORD_DIR="$tmp/$name" VMSHIFT_FAULT="$fault" "$build/vmshift" receive \
    --listen 127.0.0.1:0 --port-file "$tmp/port" --ctl "$tmp/dst.sock" --serial none \
    --timeout 3 --run-for 2 --insecure 2>"$tmp/$name.dst.log" &
  local dst=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && [ -S "$tmp/src.sock" ] && break; sleep 0.1; done
  sleep 0.5
  "$build/vmshift" migrate "$tmp/src.sock" --to "127.0.0.1:$(cat "$tmp/port")" --quiet \
    --timeout-ms 3000 --insecure "$@" >/dev/null 2>&1 || true
  wait "$dst" || true
  "$build/vmshift" ctl "$tmp/src.sock" quit >/dev/null 2>&1 || true
  wait "$src" || true
  rm -f "$tmp/port" "$tmp/src.sock" "$tmp/dst.sock"
}

record plain random "" --streams 1
record lz4p pattern "" --streams 1 --compress lz4
record zstdp pattern "" --streams 2 --compress zstd
record auto random "" --streams 1 --compress auto
record resolve pattern "dst.verified:0:cut" --streams 1
rm -rf "$out"
python3 "$(dirname "$0")/make_seeds.py" "$out" "$tmp"/plain "$tmp"/lz4p "$tmp"/zstdp "$tmp"/auto "$tmp"/resolve
du -sh "$out"/*
