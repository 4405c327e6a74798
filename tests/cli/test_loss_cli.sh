#!/usr/bin/env bash
# segloss loss / --list / demo from the outside: every bad input gives one
# line on stderr naming the problem and exit 2 (usage) or 1 (work failed);
# good input gives JSON and a gradient file.
set -u
. "$(dirname "$0")/lib.sh"

# expect CODE NEEDLE -- command...: exit code CODE, exactly one stderr line containing NEEDLE

$PY - "$tmp" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.normal(size=(2, 3, 6, 7)).astype(np.float32)
np.save(d + "/x.npy", x)
np.save(d + "/x64.npy", x.astype(np.float64))
np.save(d + "/y.npy", rng.integers(0, 3, (2, 6, 7)).astype(np.uint8))
np.save(d + "/y16.npy", rng.integers(0, 3, (2, 6, 7)).astype(np.int16))
np.save(d + "/ybad.npy", np.full((2, 6, 7), 7, np.int64))
np.save(d + "/yfloatlab.npy", rng.integers(0, 3, (2, 6, 7)).astype(np.float32))
np.save(d + "/yshape.npy", rng.integers(0, 3, (2, 6, 8)).astype(np.int64))
np.save(d + "/ysoft.npy", np.full((2, 3, 6, 7), 1 / 3, np.float32))
np.save(d + "/xint.npy", rng.integers(0, 3, (2, 3, 6, 7)).astype(np.int32))
np.save(d + "/x2d.npy", rng.normal(size=(6, 7)).astype(np.float32))
xn = x.copy(); xn[0, 1, 2, 3] = np.nan
np.save(d + "/xnan.npy", xn)
np.save(d + "/xfortran.npy", np.asfortranarray(x))
raw = open(d + "/x.npy", "rb").read()
open(d + "/xtrunc.npy", "wb").write(raw[:-10])
open(d + "/xjunk.npy", "wb").write(b"this is not numpy at all")
open(d + "/xhdr.npy", "wb").write(raw[:8] + b"\xff\xff" + raw[10:60])
PYEOF

ok="$S loss dice+ce --input $tmp/x.npy --target $tmp/y.npy"
# good runs
checks=$((checks + 1))
if ! out=$($S loss "dice+ce" --input "$tmp/x.npy" --target "$tmp/y.npy" --grad "$tmp/g.npy" 2>"$tmp/err") ||
   ! echo "$out" | grep -q '^{"loss": [0-9.e+-]*, "terms": \[{"name": "dice"' || [ ! -s "$tmp/g.npy" ]; then
  fails=$((fails + 1)); echo "FAILED: good run: $out $(cat "$tmp/err")"
fi
for y in y16.npy ysoft.npy; do
  checks=$((checks + 1))
  $S loss dice --input "$tmp/x64.npy" --target "$tmp/$y" >/dev/null 2>&1 || { fails=$((fails + 1)); echo "FAILED: good run with $y"; }
done
checks=$((checks + 1))
$S loss --list | grep -q "^  dice " || { fails=$((fails + 1)); echo "FAILED: --list"; }
checks=$((checks + 1))
$S loss --help | grep -q "usage: segloss loss" || { fails=$((fails + 1)); echo "FAILED: --help"; }
checks=$((checks + 1))
$S demo >"$tmp/demo" 2>&1 && grep -q "missed/correct" "$tmp/demo" || { fails=$((fails + 1)); echo "FAILED: demo"; cat "$tmp/demo"; }

# usage errors: exit 2
expect 2 "unknown loss 'nosuch'" -- $S loss nosuch --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 2 "unknown key 'gamma'" -- $S loss "dice(gamma=2)" --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 2 "out of range" -- $S loss "dice(smooth_nr=-1)" --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 2 "true or false" -- $S loss "dice(batch=2)" --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 2 "loss spec" -- $S loss "dice+" --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 2 "missing --input" -- $S loss dice --target "$tmp/y.npy"
expect 2 "missing --target" -- $S loss dice --input "$tmp/x.npy"
expect 2 "missing the loss SPEC" -- $S loss --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 2 "unknown option '--bogus'" -- $ok --bogus
expect 2 "needs a value" -- $ok --grad
expect 2 "--threads" -- $ok --threads abc
expect 2 "--spacing" -- $ok --spacing 1,x
expect 2 "spatial axes" -- $ok --spacing 1,1,1
expect 2 "unknown command" -- $S nosuchcommand

# work errors: exit 1
expect 1 "cannot open" -- $S loss dice --input "$tmp/missing.npy" --target "$tmp/y.npy"
expect 1 "truncated" -- $S loss dice --input "$tmp/xtrunc.npy" --target "$tmp/y.npy"
expect 1 "bad magic" -- $S loss dice --input "$tmp/xjunk.npy" --target "$tmp/y.npy"
expect 1 "xhdr.npy" -- $S loss dice --input "$tmp/xhdr.npy" --target "$tmp/y.npy"
expect 1 "Fortran-order" -- $S loss dice --input "$tmp/xfortran.npy" --target "$tmp/y.npy"
expect 1 "must be float32" -- $S loss dice --input "$tmp/xint.npy" --target "$tmp/y.npy"
expect 1 "(N, C, H, W)" -- $S loss dice --input "$tmp/x2d.npy" --target "$tmp/y.npy"
expect 1 "NaN or Inf" -- $S loss dice --input "$tmp/xnan.npy" --target "$tmp/y.npy"
expect 1 "label 7" -- $S loss dice --input "$tmp/x.npy" --target "$tmp/ybad.npy"
expect 1 "does not match" -- $S loss dice --input "$tmp/x.npy" --target "$tmp/yshape.npy"
expect 1 "integer dtype" -- $S loss dice --input "$tmp/x.npy" --target "$tmp/yfloatlab.npy"
expect 1 "weight has 2 values" -- $S loss "ce(weight=[1,2])" --input "$tmp/x.npy" --target "$tmp/y.npy"
expect 1 "cannot write" -- $S loss dice --input "$tmp/x.npy" --target "$tmp/y.npy" --grad "$tmp/no/such/dir/g.npy"

echo "cli loss: $checks checks, $fails failed"
[ $fails -eq 0 ]
