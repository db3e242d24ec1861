#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan + UBSan) and run each for a while.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 600 s, every target)
# Each target starts from the checked-in seeds (tests/fuzz/corpus/TARGET) plus what earlier
# runs found (build-fuzz/corpus/TARGET). A crash is written to build-fuzz/artifacts/TARGET/:
# fix it, then copy the input to tests/fuzz/regressions/TARGET/ so the replay test in
# CTest keeps it fixed. The last line per target gives executions and seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(records handshake vstate virtqueue virtio_mmio ctl virtio_blk virtio_net)

scripts/setup.sh build-fuzz -DVMSHIFT_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null

status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  log="build-fuzz/fuzz-$t.log"
  # -rss_limit_mb: a record may make the receiver hold 8 MiB of pages at most.
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "build-fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
       -max_len=300000 -print_final_stats=1 \
       -artifact_prefix="build-fuzz/artifacts/$t/" \
       "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    echo "fuzz_$t: FAILED, see $log and build-fuzz/artifacts/$t/"
    grep -E "ERROR|SUMMARY|runtime error" "$log" | head -5
    status=1
  fi
  runs=$(grep -aoE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1 || echo 0)
  echo "fuzz_$t: $runs executions in $secs s (corpus: $(ls "build-fuzz/corpus/$t" | wc -l) files)"
done
exit $status
