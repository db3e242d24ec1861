#!/usr/bin/env bash
# Install dependencies, build, and run the whole test suite twice: a normal build, then
# a build with AddressSanitizer and UBSan. Integration tests need /dev/kvm and fail
# (never skip) without it. Then every fuzz target runs for 10 s (scripts/fuzz.sh runs
# them longer on demand).
#
# Every stage runs even when an earlier one failed (a failing normal pass must not hide
# what ASan or the fuzzers would say); the summary lists each stage's result and the
# script exits non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."

results=()
failed=0
stage() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "=== test.sh: $name"
    if "$@"; then
        results+=("PASS  $name ($((SECONDS - t0)) s)")
    else
        results+=("FAIL  $name ($((SECONDS - t0)) s, exit $?)")
        failed=$((failed + 1))
    fi
}

# Two tests at a time: every test must pass with both cores busy, and the suite fits CI's
# time. The benchmarks' quick runs stay alone (RUN_SERIAL in tests/CMakeLists.txt).
normal_tests() { (cd build && ctest -j2 --output-on-failure --timeout 600); }
# The benchmark runs once, above; of the fault suite every sixth trial (its code paths,
# not every point again).
asan_tests() {
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        VMSHIFT_FAULT_SAMPLE=6 ctest -j2 --output-on-failure --timeout 600 -LE bench)
}

stage "build" scripts/setup.sh build
if [ -x build/vmshift ]; then
    stage "tests (normal build)" normal_tests
fi
stage "build (ASan+UBSan)" scripts/setup.sh build-asan -DVMSHIFT_SANITIZE=ON
if [ -x build-asan/vmshift ]; then
    stage "tests (ASan+UBSan)" asan_tests
fi
stage "fuzz targets, 10 s each" scripts/fuzz.sh 10

echo
echo "=== test.sh summary"
printf '%s\n' "${results[@]}"
if [ "$failed" -gt 0 ]; then
    echo "test.sh: $failed stage(s) failed"
    exit 1
fi
echo "test.sh: every stage passed"
