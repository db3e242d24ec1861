#!/usr/bin/env bash
# The migration benchmark (issue 4): vmshift against QEMU between two network-namespace
# hosts, on unshaped, 40 Gbit/s and 10 Gbit/s links. Installs what it needs, builds, warms
# the host's memory, and runs bench/migration_bench.py (see --help).
#   bench/run.sh            the full matrix (4 GiB VM, 8 x 512 MiB; about 20-30 minutes)
#   bench/run.sh --quick    small VMs, two links (CI: checks tables and plots appear)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >/dev/null
# Guest RAM is shmem: let it use transparent huge pages when asked (MADV_HUGEPAGE).
thp=/sys/kernel/mm/transparent_hugepage/shmem_enabled
if [ -w "$thp" ] && grep -q '\[never\]' "$thp"; then echo advise > "$thp"; fi
exec /usr/bin/python3 bench/migration_bench.py "$@"
