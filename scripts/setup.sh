#!/usr/bin/env bash
# Install what vmshift needs on Debian 12 (if missing) and build it.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config libcmocka-dev libjson-c-dev libxxhash-dev liblz4-dev
          libzstd-dev libssl-dev openssl iproute2 libnbd-dev
          # the NBD backend's tests: an NBD server, the export's reader, the hand-over on the wire
          qemu-utils tcpdump
          # the fuzz harness (-DVMSHIFT_FUZZ=ON): clang and its libFuzzer/sanitizer runtimes
          clang libclang-rt-14-dev
          # the benchmark and its CI quick mode: the peer VMM, the link ceiling, the plots
          python3 qemu-system-x86 iperf3 gnuplot-nox)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build=${1:-build}
shift || true
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
