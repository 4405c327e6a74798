#!/usr/bin/env bash
# Runs every test against one build folder and prints "N passed, M failed".
#   tests/run.sh BUILD_DIR [FILTER]
# Kinds: unit executables (BUILD/tests/test_*), CLI scripts (tests/cli/*.sh),
# reference comparisons with PyTorch/scipy (tests/ref/test_*.py, Debian's
# /usr/bin/python3), and fuzz-corpus replays (tests/fuzz/corpus/<target>/).
# With SL_SANITIZED=1 (the ASan+UBSan build) the reference scripts run their
# quick subset (SL_QUICK=1), since the sanitized binary is several times slower.
set -u
build=${1:?usage: tests/run.sh BUILD_DIR [FILTER]}
filter=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
export SEGLOSS="$build/segloss" SEGLOSS_ROOT="$root" SEGLOSS_BUILD="$build"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
py=/usr/bin/python3
[ "${SL_SANITIZED:-0}" = 1 ] && export SL_QUICK=1
pass=0; fail=0; skip=0; failed=()
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

run_one() {  # name, command...
  local name=$1; shift
  case "$name" in *"$filter"*) ;; *) return ;; esac
  local t0=$(date +%s.%N)
  if "$@" >"$log/out" 2>&1; then
    pass=$((pass + 1)); printf 'PASS %-44s %6.1fs\n' "$name" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
    grep -E '^(max|  max)' "$log/out" | head -40 | sed 's/^/     /'
  else
    fail=$((fail + 1)); failed+=("$name"); printf 'FAIL %s\n' "$name"
    tail -40 "$log/out" | sed 's/^/     | /'
  fi
}

for t in "$build"/tests/test_*; do
  [ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
done
for t in "$root"/tests/cli/test_*.sh; do
  [ -f "$t" ] && run_one "cli/$(basename "$t")" bash "$t"
done
for d in "$root"/tests/fuzz/corpus/*/; do
  [ -d "$d" ] || continue
  name=$(basename "$d")
  [ -x "$build/fuzz/fuzz_${name}_replay" ] && run_one "fuzz-corpus/$name" "$build/fuzz/fuzz_${name}_replay" "$d"
done
for t in "$root"/tests/ref/test_*.py; do
  [ -f "$t" ] || continue
  # Scripts that load libsegloss.so through ctypes cannot run against the
  # sanitized build (the Python process would need the ASan runtime
  # preloaded); they say so with a "sanitized: skip" line and are skipped
  # there. Their C paths are covered by the unit and CLI tests under ASan.
  if [ "${SL_SANITIZED:-0}" = 1 ] && grep -q 'sanitized: skip' "$t"; then
    skip=$((skip + 1)); continue
  fi
  run_one "ref/$(basename "$t")" "$py" "$t"
done

echo
if [ $fail -gt 0 ]; then echo "failed: ${failed[*]}"; fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
