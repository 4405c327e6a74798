#!/usr/bin/env bash
# Runs each libFuzzer target for a while and reports what it found.
#   tests/fuzz/run.sh BUILD_DIR SECONDS [NAME...]
# Each target stops after FUZZ_RUNS executions (default 1000000; 0 = no
# limit) or SECONDS, whichever comes first, so every target gets its million
# executions without the fast ones holding the cores for the slow one.
# BUILD_DIR is the clang build made by `make fuzz` (SL_FUZZ=ON), holding
# BUILD_DIR/fuzz/fuzz_<name>. Each target runs for SECONDS on a scratch
# copy of tests/fuzz/corpus/<name>/ (the committed corpus is not changed),
# with tests/fuzz/<name>.dict when present. A crash, leak, timeout or
# out-of-memory input is saved under BUILD_DIR/fuzz-crashes/<name>/; once
# fixed, copy it to tests/fuzz/corpus/<name>/crash_<what> so the replay in
# every test run keeps it fixed. Exit status 1 when any target found one.
set -u
build=${1:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS [NAME...]}
secs=${2:?usage: tests/fuzz/run.sh BUILD_DIR SECONDS [NAME...]}
shift 2
only=" $* "
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
# A 16 MB quarantine instead of ASan's 256 MB: freed memory is reused sooner,
# so a target that allocates tens of KB per input stops page-faulting fresh
# memory on every execution (the preset target ran about 3x faster per CPU
# second); a use after free within the last 16 MB of frees is still caught.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Targets run FUZZ_JOBS at a time (default: the number of cores), each on
# one core, so a `make fuzz` of N targets x SECONDS takes about
# N / FUZZ_JOBS x SECONDS; their reports follow in a fixed order.
jobs_max=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
runs=${FUZZ_RUNS:-1000000}
runs_arg=()
[ "$runs" -gt 0 ] && runs_arg=(-runs="$runs")
report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT

fuzz_one() {  # fuzz_one NAME BIN: runs one target, writes $report/NAME.{txt,rc}
  local name=$1 bin=$2 corpus work crashes before dict log start rc execs cov after
  corpus=$root/tests/fuzz/corpus/$name
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  crashes=$build/fuzz-crashes/$name
  mkdir -p "$crashes"
  before=$(ls "$crashes" | wc -l)
  dict=()
  [ -f "$root/tests/fuzz/$name.dict" ] && dict=(-dict="$root/tests/fuzz/$name.dict")
  log=$build/fuzz-crashes/$name.log
  start=$(ls "$work" | wc -l)
  echo "fuzz $name: up to ${secs}s${runs_arg:+ or $runs executions} on $start seed inputs ..."
  local t0 t1
  t0=$(date +%s)
  "$bin" -max_total_time="$secs" "${runs_arg[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "${dict[@]}" "$work" >"$log" 2>&1
  rc=$?
  t1=$(date +%s)
  [ "$t1" -gt "$t0" ] || t1=$((t0 + 1))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  after=$(ls "$crashes" | wc -l)
  {
    echo "fuzz $name: rc=$rc, ${execs:-?} executions in $((t1 - t0)) s ($(( ${execs:-0} / (t1 - t0) ))/s), ${cov:-cov ?}, corpus $start -> $(ls "$work" | wc -l) inputs"
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
      echo "fuzz $name: FOUND A PROBLEM (log: $log)"
      grep -E 'ERROR|SUMMARY|check failed|Test unit written' "$log" | head -10 | sed 's/^/    /'
      ls -t "$crashes" | head -5 | sed "s|^|    saved: $crashes/|"
      echo 1 >"$report/$name.found"
    fi
  } >"$report/$name.txt"
  rm -rf "$work"
}

names=()
running=0
for bin in "$build"/fuzz/fuzz_*; do
  name=${bin##*/fuzz_}
  case "$name" in *_replay) continue ;; esac
  [ -x "$bin" ] || continue
  [ "$only" = "  " ] || case "$only" in *" $name "*) ;; *) continue ;; esac
  names+=("$name")
  fuzz_one "$name" "$bin" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
found=0
for name in "${names[@]}"; do
  cat "$report/$name.txt"
  [ -e "$report/$name.found" ] && found=1
done
if [ ${#names[@]} -eq 0 ]; then
  echo "fuzz: no libFuzzer binaries in $build/fuzz (build with: make fuzz)" >&2
  exit 1
fi
exit $found
