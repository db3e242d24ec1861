#!/usr/bin/env bash
# The migration benchmark (issue 4): vmshift against QEMU between two network-namespace
# hosts, on unshaped, 40 Gbit/s and 10 Gbit/s links. Installs what it needs, builds, sets
# up the host's memory as below, and runs bench/migration_bench.py (see --help).
#   bench/run.sh            the full matrix (4 GiB VM, 16 GiB idle VM, 8 x 512 MiB)
#   bench/run.sh --quick    small VMs, two links (CI: checks tables and plots appear)
#   bench/run.sh --evacuate [ARGS]   the host evacuation benchmark instead
#                           (bench/evacuate_bench.py: 8 VMs by --parallel degree, 1 large VM)
#   bench/run.sh --streams-bench [ARGS]   per-stream efficiency instead (bench/stream_bench.py:
#                           streams 1, 2, 4, 8, 16 as the cores allow, half the cores per
#                           side, against QEMU plain and multifd and the N-sender iperf3
#                           ceiling, CPU s/GB per side, warm and cold memory, TLS/plain)
#
# Host memory. Moving a VM means first-touching as much fresh memory on the destination
# as the VM has; both VMMs pay it. Two host settings decide what that costs:
#  - Huge pages: both VMMs' guest RAM asks for them (MADV_HUGEPAGE); vmshift's default
#    backing (--ram-backing auto) is anonymous memory when shmem gets no huge pages, as
#    QEMU's is, so the host's settings are left as they are.
#  - On a machine that is itself a VM with free page reporting (virtio-balloon), memory
#    freed by one run is handed back to the hypervisor within seconds and the next first
#    touch costs 5-10x more (4 GiB: 1.4 s warm, 7-20 s cold, measured here). For the run
#    the reporting order is raised past the largest free block, so freed memory stays
#    with this machine as it would on bare metal; the old value is put back at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >/dev/null
order=/sys/module/page_reporting/parameters/page_reporting_order
if [ -w "$order" ]; then
  old=$(cat "$order")
  trap 'echo "$old" > "$order"' EXIT
  echo 11 > "$order"
fi
driver=bench/migration_bench.py
if [ "${1:-}" = "--evacuate" ]; then driver=bench/evacuate_bench.py; shift; fi
if [ "${1:-}" = "--streams-bench" ]; then driver=bench/stream_bench.py; shift; fi
/usr/bin/python3 "$driver" "$@"
