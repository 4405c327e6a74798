#!/usr/bin/env bash
# segloss loss maps its .npy inputs (sl_npy_map) and uses float32 scores,
# soft targets, distance maps and masks and int32 labels in place, converting
# the other dtypes. Mixes of in-place and converted inputs covering every
# dtype of each (scores f32/f64; labels int32/int64/uint8, soft targets
# f32/f64; --dist f32/f64; --mask f32/uint8/f64) give the same JSON and a gradient file
# byte-identical to the all-float32/int32 run's (the values are the same
# after conversion); the input files are left as they were; an input that
# is a folder is refused with one line. Runs under the sanitizers too, where
# a double free or a leak of a view or a converted copy would show.
set -u
. "$(dirname "$0")/lib.sh"

$PY - "$tmp" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(5)
x = rng.normal(0, 2, (2, 3, 4, 5, 6)).astype(np.float32)
y = rng.integers(0, 3, (2, 4, 5, 6))
soft = np.eye(3, dtype=np.float32)[y].transpose(0, 4, 1, 2, 3).copy()
dist = rng.normal(0, 3, x.shape).astype(np.float32)
m = rng.integers(0, 3, (2, 1, 4, 5, 6))
np.save(d + "/x.npy", x); np.save(d + "/x64.npy", x.astype(np.float64))
np.save(d + "/y.npy", y.astype(np.int32)); np.save(d + "/y64.npy", y.astype(np.int64))
np.save(d + "/y8.npy", y.astype(np.uint8))
np.save(d + "/s.npy", soft); np.save(d + "/s64.npy", soft.astype(np.float64))
np.save(d + "/d.npy", dist); np.save(d + "/d64.npy", dist.astype(np.float64))
np.save(d + "/m.npy", m.astype(np.float32)); np.save(d + "/m8.npy", m.astype(np.uint8))
np.save(d + "/m64.npy", m.astype(np.float64))
PYEOF
( cd "$tmp" && md5sum ./*.npy >sums )

SPEC="dice+ce+0.5*boundary"
ref() {  # ref NAME TARGET: the run with every input float32/int32, used in place
  run "reference $1" $S loss "$SPEC" --input "$tmp/x.npy" --target "$tmp/$2.npy" --dist "$tmp/d.npy" \
    --mask "$tmp/m.npy" --grad "$tmp/g_$1.npy" --threads 1 && cp "$tmp/out" "$tmp/$1.json"
}
ref labels y
ref soft s
n=0 maxdiff=0
# each dtype of each input at least once, float64 scores with labels and with soft targets
for combo in "x64 y64 d64 m8" "x y8 d m64" "x64 y d m" "x64 y8 d64 m" "x s d64 m8" "x64 s64 d m64" "x64 s d m" \
             "x s64 d64 m"; do
  set -- $combo
  kind=labels; case $2 in s*) kind=soft ;; esac
  run "$combo" $S loss "$SPEC" --input "$tmp/$1.npy" --target "$tmp/$2.npy" --dist "$tmp/$3.npy" \
    --mask "$tmp/$4.npy" --grad "$tmp/g.npy" --threads 1 || continue
  check 'cmp -s "$tmp/out" "$tmp/$kind.json"' "$combo: JSON differs: $(cat "$tmp/out") vs $(cat "$tmp/$kind.json")"
  check 'cmp -s "$tmp/g.npy" "$tmp/g_$kind.npy"' "$combo: gradient file differs from the float32 run's"
  diff=$(cmp -l "$tmp/g.npy" "$tmp/g_$kind.npy" 2>&1 | wc -l)
  [ "$diff" -gt "$maxdiff" ] && maxdiff=$diff
  n=$((n + 1))
done
echo "max bytes differing from the float32/int32 run's gradient file: $maxdiff (over $n runs of 8)"
check '[ $n = 8 ]' "only $n of 8 runs compared"
check '( cd "$tmp" && md5sum --quiet -c sums )' "an input file changed"

# a folder, or a missing file, as an input: one line, exit 1
mkdir "$tmp/dir.npy"
expect 1 "not a regular file" -- $S loss dice --input "$tmp/dir.npy" --target "$tmp/y.npy"
expect 1 "not a regular file" -- $S loss dice --input "$tmp/x.npy" --target "$tmp/dir.npy"
expect 1 "not a regular file" -- $S loss dice --input "$tmp/x.npy" --target "$tmp/y.npy" --mask "$tmp/dir.npy"
expect 1 "No such file" -- $S loss dice --input "$tmp/x.npy" --target "$tmp/y.npy" --dist "$tmp/none.npy"

echo "test_loss_mapped_inputs: $checks checks, $fails failed"
[ $fails -eq 0 ]
