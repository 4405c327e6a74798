#!/usr/bin/env bash
# Commands under a memory limit (`ulimit -v`): none may hang. Debian's
# OpenBLAS used to start a worker per core in its constructor, each
# retrying a 128 MB buffer forever under a ~150 MB limit, so even --help
# spun at 100 % CPU (cli/blas_env.c). Every command here runs under a
# timeout: it must end, and a run that cannot get its memory must end with
# one stderr line and a non-zero status.
# Skipped under AddressSanitizer, which reserves terabytes of address space
# and cannot run under `ulimit -v` at all.
set -u
if [ "${SL_SANITIZED:-0}" = 1 ]; then echo "skipped: ulimit -v cannot apply to an ASan build"; exit 0; fi
. "$(dirname "$0")/lib.sh"

limited() {  # limited KB SECONDS command...: the command under ulimit -v KB, killed after SECONDS
  local kb=$1 secs=$2; shift 2
  ( ulimit -v "$kb" && exec timeout -s KILL "$secs" "$@" )
}

ok() {  # ok KB LABEL command...: exits 0 within 20 s under the limit
  local kb=$1 what=$2; shift 2
  checks=$((checks + 1))
  limited "$kb" 20 "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ "$rc" = 0 ] || fail "$what under ulimit -v $kb: exit $rc (137: hung and killed) $(head -2 "$tmp/err")"
}

$PY -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('$tmp/x.npy', rng.normal(size=(2, 3, 6, 7)).astype(np.float32))
np.save('$tmp/y.npy', rng.integers(0, 3, (2, 6, 7)).astype(np.uint8))
" || { echo "FAILED: numpy fixtures"; exit 1; }

TINY="--size 32,32 --depth 2 --base-channels 4 --epochs 1 --steps-per-epoch 2 --batch 2 --n-train 4 --n-val 2 --n-test 2 --threads 1"
for kb in 100000 150000; do
  ok $kb "--help" "$S" --help
  ok $kb "train --help" "$S" train --help
  ok $kb "loss" "$S" loss dice+ce --input "$tmp/x.npy" --target "$tmp/y.npy"
  ok $kb "eval" "$S" eval --pred "$FX/eval/pred" --gt "$FX/eval/gt" --csv "$tmp/e$kb.csv"
  # OpenBLAS cannot have its 128 MiB buffer here: one line, exit 1, no hang
  checks=$((checks + 1))
  limited $kb 20 "$S" train --out "$tmp/run$kb" $TINY --loss dice+ce >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" != 1 ] || [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q "OpenBLAS needs a 128 MiB work buffer" "$tmp/err"; then
    fail "train under ulimit -v $kb: exit $rc (want 1; 137: hung), stderr: $(head -3 "$tmp/err")"
  fi
done
# with room for the buffer the same smoke run (3 steps: no OneCycle warm-up) works
ok 400000 "train smoke run" "$S" train --out "$tmp/run" $TINY --loss dice+ce

# bench with two workers: room for one OpenBLAS buffer, not for two -> one line, exit 1
cat >"$tmp/p.json" <<'JSON'
{"name": "limits", "seeds": [1],
 "train": {"data_opts": {"height": 32, "width": 32, "n_train": 4, "n_val": 2, "n_test": 2},
           "network": {"depth": 2, "base_width": 4},
           "training": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2}},
 "datasets": [{"name": "ph", "data": "phantom"}],
 "losses": ["dice+ce", "ce"], "evaluation": {"bootstrap": 50, "overlay_cases": 0}}
JSON
checks=$((checks + 1))
limited 300000 30 "$S" bench --preset "$tmp/p.json" --out "$tmp/bench" --threads 2 --quiet >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" != 1 ] || [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q "only 1 of 2 fit" "$tmp/err"; then
  fail "bench --threads 2 under ulimit -v 300000: exit $rc (want 1; 137: hung), stderr: $(head -3 "$tmp/err")"
fi

# Every limit, not only the two above: OpenBLAS maps a 128 MiB buffer per
# concurrent sgemm the first time that many calls overlap, which used to be
# mid-run, after the data and network had taken the room a start-up check
# had seen (bench --threads 2 spun forever between about 400 and 500 MB).
# Now the buffers are mapped before the run (src/nn/nn_util.c): each limit
# ends in a finished run or one line and exit 1, well before the timeout.
ends() {  # ends KB LABEL command...: exit 0, or exit 1 with one stderr line, within 30 s
  local kb=$1 what=$2; shift 2
  checks=$((checks + 1))
  limited "$kb" 30 "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" = 0 ]; then sweep_ok=$((sweep_ok + 1)); return; fi
  if [ "$rc" != 1 ] || [ "$(wc -l <"$tmp/err")" != 1 ]; then
    fail "$what under ulimit -v $kb: exit $rc (want 0, or 1 with one line; 137: hung and killed), stderr: $(head -3 "$tmp/err")"
  fi
}
sweep_ok=0
for kb in $(seq 250000 50000 700000); do
  rm -rf "$tmp/sweep"
  ends $kb "bench --threads 2" "$S" bench --preset "$tmp/p.json" --out "$tmp/sweep" --threads 2 --quiet
done
for kb in 300000 450000 600000; do
  rm -rf "$tmp/sweep"
  ends $kb "train --threads 2" "$S" train --out "$tmp/sweep" ${TINY/--threads 1/--threads 2} --loss dice+ce
done
# the sweep reaches limits where the runs finish, not only refusals
check '[ "$sweep_ok" -ge 4 ]' "only $sweep_ok runs of the ulimit sweep finished (want at least 4)"
echo "ulimit sweep: $sweep_ok runs finished, the rest refused with one line"

# A run that cannot have its memory: one line, non-zero, no hang (it
# generates data until an allocation fails: 10-14 s at a load of 20, hence
# the longer timer).
checks=$((checks + 1))
limited 100000 60 "$S" train --out "$tmp/big" --size 1024,1024 --depth 2 --base-channels 16 --epochs 1 \
  --steps-per-epoch 1 --batch 8 --n-train 8 --n-val 2 --n-test 2 --threads 1 --loss dice >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 0 ] || [ "$rc" = 137 ] || [ "$(wc -l <"$tmp/err")" != 1 ]; then
  fail "train beyond the memory limit: exit $rc (want non-zero, not 137), stderr: $(head -3 "$tmp/err")"
else
  echo "beyond the limit: $(cat "$tmp/err")"
fi

echo "limits: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
