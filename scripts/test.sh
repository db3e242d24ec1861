#!/usr/bin/env bash
# Install dependencies, build, and run the whole test suite twice: a normal build, then
# a build with AddressSanitizer and UBSan. Integration tests need /dev/kvm and fail
# (never skip) without it. Then every fuzz target runs for 10 s (scripts/fuzz.sh runs
# them longer on demand).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build
(cd build && ctest --output-on-failure --timeout 600)

scripts/setup.sh build-asan -DVMSHIFT_SANITIZE=ON
# The benchmark runs once, above; of the fault suite every sixth trial (its code paths, not every point again).
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   VMSHIFT_FAULT_SAMPLE=6 ctest --output-on-failure --timeout 600 -LE bench)

scripts/fuzz.sh 10
