#!/usr/bin/env bash
# Runs every test against one build folder and prints "N passed, M failed".
#   tests/run.sh BUILD_DIR [FILTER]
# Kinds: unit executables (BUILD/tests/test_*), CLI scripts (tests/cli/*.sh),
# reference comparisons with PyTorch/scipy (tests/ref/test_*.py, Debian's
# /usr/bin/python3), fuzz-corpus replays (tests/fuzz/corpus/<target>/), and
# the Python package's tests (tests/python/test_*.py, PYTHONPATH=python).
# With SL_SANITIZED=1 (the ASan+UBSan build) the reference scripts run their
# quick subset (SL_QUICK=1), since the sanitized binary is several times slower.
# Tests run SL_TEST_JOBS at a time (default: the number of cores); each
# prints PASS/FAIL as it ends, and the details follow in a fixed order.
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
jobs_max=${SL_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# The test list: "name|kind|path".
tests=()
skip=0
add() { case "$1" in *"$filter"*) tests+=("$1|$2|$3") ;; esac; }
for t in "$build"/tests/test_*; do
  [ -x "$t" ] && add "unit/$(basename "$t")" unit "$t"
done
for t in "$root"/tests/cli/test_*.sh; do
  [ -f "$t" ] && add "cli/$(basename "$t")" cli "$t"
done
for d in "$root"/tests/fuzz/corpus/*/; do
  [ -d "$d" ] || continue
  name=$(basename "$d")
  [ -x "$build/fuzz/fuzz_${name}_replay" ] && add "fuzz-corpus/$name" fuzz "$name"
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
  add "ref/$(basename "$t")" ref "$t"
done
# The Python package's tests (python/segloss against this build's library).
for t in "$root"/tests/python/test_*.py; do
  [ -f "$t" ] || continue
  if [ "${SL_SANITIZED:-0}" = 1 ] && grep -q 'sanitized: skip' "$t"; then
    skip=$((skip + 1)); continue
  fi
  add "python/$(basename "$t")" py "$t"
done

run_test() {  # index
  local i=$1 name kind path rc t0
  IFS='|' read -r name kind path <<<"${tests[$i]}"
  t0=$(date +%s.%N)
  case "$kind" in
    unit) "$path" ;;
    cli) bash "$path" ;;
    fuzz) "$build/fuzz/fuzz_${path}_replay" "$root/tests/fuzz/corpus/$path/" ;;
    ref) "$py" "$path" ;;
    py) PYTHONPATH="$root/python" SEGLOSS_LIB="$build/libsegloss.so" "$py" "$path" ;;
  esac >"$log/$i.out" 2>&1
  rc=$?
  echo "$rc" >"$log/$i.rc"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f\n", b-a}' >"$log/$i.time"
  printf '%s %-44s %6.1fs\n' "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$name" "$(cat "$log/$i.time")"
}

suite_t0=$(date +%s)
running=0
for i in "${!tests[@]}"; do
  run_test "$i" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

pass=0; fail=0; failed=()
echo
for i in "${!tests[@]}"; do
  IFS='|' read -r name kind path <<<"${tests[$i]}"
  if [ "$(cat "$log/$i.rc" 2>/dev/null)" = 0 ]; then
    pass=$((pass + 1))
    if grep -qE '^(max|  max)' "$log/$i.out"; then
      echo "$name:"
      grep -E '^(max|  max)' "$log/$i.out" | head -40 | sed 's/^/     /'
    fi
  else
    fail=$((fail + 1)); failed+=("$name")
    echo "FAIL $name:"
    tail -40 "$log/$i.out" | sed 's/^/     | /'
  fi
done
echo
# The slowest tests, to keep an eye on the suite's length (issue 11: the
# whole make test, both passes, under 15 minutes on two cores).
echo "slowest:"
for i in "${!tests[@]}"; do
  IFS='|' read -r name kind path <<<"${tests[$i]}"
  printf '%8ss  %s\n' "$(cat "$log/$i.time" 2>/dev/null || echo '?')" "$name"
done | sort -rn | head -8
echo "wall time: $(( $(date +%s) - suite_t0 )) s"
if [ $fail -gt 0 ]; then echo "failed: ${failed[*]}"; fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
