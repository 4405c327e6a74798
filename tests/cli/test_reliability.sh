#!/usr/bin/env bash
# Runs that cannot be mixed and replacements that cannot lose a run
# (issue 12 items 4, 5, 6): the folder lock of train and bench (a second
# process gets one line naming the holder's pid, exit 1); --force checks
# everything before it removes anything; one-line messages with control
# characters escaped; a 3-step smoke run; spec numbers out of range and -0.
set -u
. "$(dirname "$0")/lib.sh"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT  # also the background runs of the lock tests

TINY="--size 32,32 --depth 2 --base-channels 4 --batch 2 --n-train 4 --n-val 2 --n-test 2 --threads 1"

# ---- a smoke run of 3 steps: OneCycle's warm-up would be empty; it trains
checks=$((checks + 1))
$S train --out "$tmp/smoke" $TINY --epochs 1 --steps-per-epoch 3 >/dev/null 2>"$tmp/err" ||
  fail "train --epochs 1 --steps-per-epoch 3: $(head -2 "$tmp/err")"

# ---- train --force with a bad data source keeps the finished run
run=$tmp/smoke
sum_before=$(cat "$run"/*.json "$run"/model.bin "$run"/log.csv | md5sum)
expect 1 "nifti" -- $S train --out "$run" $TINY --epochs 1 --steps-per-epoch 3 --force --data nifti:/nonexistent
expect 2 "unknown loss" -- $S train --out "$run" $TINY --epochs 1 --steps-per-epoch 3 --force --loss "no_such_loss"
checks=$((checks + 1))
[ "$(cat "$run"/*.json "$run"/model.bin "$run"/log.csv 2>/dev/null | md5sum)" = "$sum_before" ] ||
  fail "a failed train --force damaged the finished run: $(ls "$run")"
# a --force whose new run starts replaces the old one
checks=$((checks + 1))
if $S train --out "$run" $TINY --epochs 1 --steps-per-epoch 4 --force >/dev/null 2>"$tmp/err"; then
  grep -q '"steps_per_epoch":[[:space:]]*4' "$run/config.json" || fail "train --force did not replace config.json"
else
  fail "train --force: $(head -2 "$tmp/err")"
fi
# a --force that cannot remove an old file says why (here: a folder in its place)
mkdir -p "$tmp/stuck" && cp "$run"/config.json "$run"/log.csv "$tmp/stuck/" && mkdir -p "$tmp/stuck/metrics.json/x"
expect 1 "cannot remove $tmp/stuck/metrics.json to replace the run: Is a directory" -- \
  $S train --out "$tmp/stuck" $TINY --epochs 1 --steps-per-epoch 3 --force
# a train that fails before starting in a new folder leaves no folder
expect 1 "nifti" -- $S train --out "$tmp/never" $TINY --data nifti:/nonexistent
checks=$((checks + 1))
[ ! -e "$tmp/never" ] || fail "a failed train left its new folder: $(ls -a "$tmp/never")"

# ---- the train folder lock: a second train in the same folder is refused
$S train --out "$tmp/busy" $TINY --epochs 200 --steps-per-epoch 50 >/dev/null 2>&1 &
holder=$!
for _ in $(seq 50); do [ -s "$tmp/busy/.segloss.lock" ] && break; sleep 0.1; done
expect 1 "is in use by another segloss process (pid $holder)" -- $S train --out "$tmp/busy" $TINY --force
expect 1 "is in use by another segloss process (pid $holder)" -- $S train --out "$tmp/busy" $TINY --resume
kill $holder 2>/dev/null; wait $holder 2>/dev/null
# once the holder is gone (here: killed) the folder is free again
checks=$((checks + 1))
$S train --out "$tmp/busy" $TINY --epochs 1 --steps-per-epoch 3 --force >/dev/null 2>"$tmp/err" ||
  fail "train after the holder died: $(head -2 "$tmp/err")"

# ---- bench: the lock, and --force that keeps the old benchmark on a bad data set
cat >"$tmp/p.json" <<'JSON'
{"name": "lock", "seeds": [1],
 "train": {"data_opts": {"height": 32, "width": 32, "n_train": 4, "n_val": 2, "n_test": 2},
           "network": {"depth": 2, "base_width": 4},
           "training": {"epochs": 1, "steps_per_epoch": 4, "batch_size": 2}},
 "datasets": [{"name": "ph", "data": "phantom"}],
 "losses": ["dice+ce"], "evaluation": {"bootstrap": 50, "overlay_cases": 0}}
JSON
sed 's/"data": "phantom"/"data": "nifti:\/nonexistent"/' "$tmp/p.json" >"$tmp/bad.json"
checks=$((checks + 1))
if $S bench --preset "$tmp/p.json" --out "$tmp/b" --threads 1 --quiet >/dev/null 2>"$tmp/err"; then
  bsum=$(cat "$tmp/b/preset.json" "$tmp/b/results.csv" | md5sum)
  expect 1 "nifti" -- $S bench --preset "$tmp/bad.json" --out "$tmp/b" --threads 1 --quiet --force
  checks=$((checks + 1))
  [ -s "$tmp/b/results.csv" ] && [ "$(cat "$tmp/b/preset.json" "$tmp/b/results.csv" | md5sum)" = "$bsum" ] ||
    fail "a failed bench --force damaged the finished benchmark: $(ls "$tmp/b")"
else
  fail "bench: $(head -3 "$tmp/err")"
fi
sed 's/"epochs": 1, "steps_per_epoch": 4/"epochs": 100, "steps_per_epoch": 50/' "$tmp/p.json" >"$tmp/long.json"
$S bench --preset "$tmp/long.json" --out "$tmp/bl" --threads 1 --quiet >/dev/null 2>&1 &
holder=$!
for _ in $(seq 50); do [ -s "$tmp/bl/.segloss.lock" ] && break; sleep 0.1; done
expect 1 "is in use by another segloss process (pid $holder)" -- $S bench --preset "$tmp/long.json" --out "$tmp/bl" --resume
kill $holder 2>/dev/null; wait $holder 2>/dev/null

# ---- the preset reader: duplicate keys, text after the object, \u0000
bad_preset() {  # bad_preset NEEDLE JSON-TEXT
  printf '%s' "$2" >"$tmp/bp.json"
  expect 2 "$1" -- $S bench --preset "$tmp/bp.json" --out "$tmp/bp"
  checks=$((checks + 1))
  [ ! -e "$tmp/bp" ] || fail "a refused preset left $tmp/bp"
}
good=$(tr -d '\n' <"$tmp/p.json")
bad_preset 'key "name" appears twice in one object' "${good/\"name\": \"lock\",/\"name\": \"lock\", \"name\": \"other\",}"
bad_preset 'key "epochs" appears twice' "${good/\"epochs\": 1,/\"epochs\": 1, \"epochs\": 2,}"
bad_preset 'text after the end of the JSON object' "$good {}"
bad_preset 'holds \u0000 (NUL)' "${good/\"dice+ce\"/\"dice+ce\\u0000ignored\"}"
bad_preset 'not valid JSON at offset' '{"name": "x", "seeds": [1,'
# ... while an escaped backslash before u0000 is plain text (and this one is no loss name)
bad_preset "losses[0]" "${good/\"dice+ce\"/\"dice\\\\u0000\"}"
# a library message that names the command is not prefixed twice
expect 1 "segloss bench: $tmp/b holds a benchmark" -- $S bench --preset "$tmp/p.json" --out "$tmp/b"
checks=$((checks + 1))
grep -q "bench: bench:" "$tmp/err" && fail "doubled prefix: $(cat "$tmp/err")"

# ---- one-line messages: control characters from names are escaped
expect 1 'a\nb' -- $S loss dice --input "$(printf '%s/a\nb.npy' "$tmp")" --target x.npy
expect 1 'x\x01y' -- $S train --out "$tmp/cc" $TINY --data "$(printf 'nifti:/no/x\001y')"

# ---- spec numbers: out of range is said as such, -0 is 0
$PY -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('$tmp/x.npy', rng.normal(size=(1, 2, 4, 5)).astype(np.float32))
np.save('$tmp/y.npy', rng.integers(0, 2, (1, 4, 5)).astype(np.uint8))
"
expect 2 "number out of range at position 1" -- $S loss "1e309*dice" --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 2 "number out of range" -- $S loss "ce(weight=[1,1e-400])" --input "$tmp/x.npy" --target "$tmp/y.npy"
checks=$((checks + 1))
out=$($S loss "-0*dice+ce" --input "$tmp/x.npy" --target "$tmp/y.npy" 2>&1)
case "$out" in *'"weight": -0'*|*'"weight":-0'*) fail "-0*dice prints a weight of -0: $out" ;; esac
echo "$out" | grep -q '"weight": 0[,}]' || fail "-0*dice: no weight 0 in $out"

echo "reliability: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
