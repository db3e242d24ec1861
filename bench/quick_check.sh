#!/usr/bin/env bash
# CI check of the benchmark: its quick mode (small VMs, two links, vmshift and QEMU) runs
# and produces its tables and plots, and every vmshift migration in it completed.
#   bench/quick_check.sh OUT_DIR
set -euo pipefail
out=${1:?give an output directory}
rm -rf "$out"
/usr/bin/python3 "$(dirname "$0")/migration_bench.py" --quick --out "$out"
for f in table.md results.csv results.json migration-time.png bandwidth-over-time.png; do
  [ -s "$out/$f" ] || { echo "quick_check: $out/$f is missing or empty" >&2; exit 1; }
done
for f in migration-time.png bandwidth-over-time.png; do
  head -c 8 "$out/$f" | od -An -tx1 | grep -q "89 50 4e 47" ||
    { echo "quick_check: $out/$f is not a PNG" >&2; exit 1; }
done
if grep "vmshift" "$out/results.csv" | grep -v ",completed," | grep -q .; then
  echo "quick_check: a vmshift migration did not complete:" >&2
  grep "vmshift" "$out/results.csv" | grep -v ",completed," >&2
  exit 1
fi
rows=$(grep -c '^| .*x' "$out/table.md" || true)
[ "$rows" -ge 14 ] || { echo "quick_check: table.md has $rows case rows, expected 14" >&2; exit 1; }
echo "quick_check: tables and plots in $out"
