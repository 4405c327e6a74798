#!/usr/bin/env bash
# Runs every speed benchmark (segloss vs its peers, side by side, ratios printed).
#   perf/run.sh BUILD_DIR
set -u
build=$(cd "${1:-build}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
export SEGLOSS_BUILD="$build" SEGLOSS="$build/segloss" SEGLOSS_ROOT="$root"
status=0
for b in "$root"/perf/bench_*.py "$root"/perf/train_speed.py "$root"/perf/train_speed3d.py; do
  [ -f "$b" ] || continue
  echo "== $(basename "$b")"
  /usr/bin/python3 "$b" || status=1
  echo
done
exit $status
