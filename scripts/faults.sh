#!/usr/bin/env bash
# The random fault campaign (docs/guide.md, "Random fault campaign"): N random trials, one
# after the other, each a VM migrated with random settings and struck by a random fault.
#
#   scripts/faults.sh N [--seed S] [--device disk|nic|none] [--build DIR] [--logs DIR] [--keep-logs] [--trial-timeout SECONDS] [--dry-run]
#
# Trial i uses seed S+i (S random unless given), printed first on its line:
# `scripts/faults.sh 1 --seed X` replays the trial of seed X. --build DIR runs another build
# of vmshift (e.g. build-asan, configured with -DVMSHIFT_SANITIZE=ON when it does not exist
# yet: then a sanitizer report in any process's stderr fails the trial). Exit status 1 if any trial lost or duplicated the
# VM, failed a check or could not run; its seeds are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${VMSHIFT_BUILD:-build}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ${#args[@]} -eq 0 ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  case "$build" in
    *asan*) scripts/setup.sh "$build" -DVMSHIFT_SANITIZE=ON ;;
    *) scripts/setup.sh "$build" ;;
  esac
fi
cmake --build "$build" -j2 --target faults_random vmshift vmshiftd vmshift-guest >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
exec "$build/tests/faults_random" "${args[@]}"
