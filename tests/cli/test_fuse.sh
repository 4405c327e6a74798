#!/usr/bin/env bash
# segloss fuse from the outside: majority vote against numpy, STAPLE on
# raters of known quality (two perfect raters and one that says
# background everywhere give back the truth, with sensitivity 1, 1, 0 in
# the JSON), NIfTI geometry carried, binary mode, and bad input (raters on
# other grids, one rater, unknown method, unwritable output) with one
# stderr line, its exit code, and no output left behind.
set -u
. "$(dirname "$0")/lib.sh"

$PY - "$tmp" <<'PYEOF'
import sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(3)
truth = np.zeros((12, 16, 14), np.uint8)
truth[3:9, 4:12, 2:10] = 1
truth[5:7, 6:9, 4:7] = 2
np.save(t + "/truth.npy", truth)
np.save(t + "/bg.npy", np.zeros_like(truth))
for j in range(5):
    r = truth.copy()
    flip = rng.random(truth.shape) < 0.1 + 0.05 * j
    r[flip] = rng.integers(0, 3, int(flip.sum()))
    np.save("%s/r%d.npy" % (t, j), r.astype([np.uint8, np.int16, np.int32, np.int64, np.uint8][j]))
np.save(t + "/small.npy", truth[:-1])
PYEOF

run "majority" $S fuse "$tmp/r0.npy" "$tmp/r1.npy" "$tmp/r2.npy" "$tmp/r3.npy" "$tmp/r4.npy" --method majority \
  --out "$tmp/maj.npy"
run "staple perfect" $S fuse "$tmp/truth.npy" "$tmp/truth.npy" "$tmp/bg.npy" --out "$tmp/st.npy" --threads 2
run "staple binary" $S fuse "$tmp/r0.npy" "$tmp/r1.npy" "$tmp/r2.npy" --mode binary --out "$tmp/bin.npy" \
  --json "$tmp/bin_info.json"
run "staple 5 raters" $S fuse "$tmp/r0.npy" "$tmp/r1.npy" "$tmp/r2.npy" "$tmp/r3.npy" "$tmp/r4.npy" \
  --out "$tmp/st5.npy"

checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "fused maps or JSON wrong"
import json, sys
import numpy as np
t = sys.argv[1]
bad = 0
def ok(what, cond):
    global bad
    if not cond:
        print("FAILED", what); bad += 1
R = np.stack([np.load("%s/r%d.npy" % (t, j)).astype(np.int64) for j in range(5)])
counts = np.stack([(R == s).sum(axis=0) for s in range(3)])
ok("majority == argmax of the vote counts (smallest label on ties)",
   np.array_equal(np.load(t + "/maj.npy"), np.argmax(counts, axis=0)))
truth = np.load(t + "/truth.npy")
st = np.load(t + "/st.npy")
ok("STAPLE with two perfect raters gives the truth", np.array_equal(st, truth) and st.dtype == np.uint8)
info = json.load(open(t + "/st.json"))
se = [r["sensitivity"]["1"] for r in info["raters"]]
ok("JSON next to the map: sensitivities 1, 1, 0 for label 1 (%s)" % se,
   abs(se[0] - 1) < 1e-6 and abs(se[1] - 1) < 1e-6 and abs(se[2]) < 1e-6)
ok("JSON: labels, prior, convergence", info["labels"] == [0, 1, 2] and info["converged"] is True
   and abs(sum(info["prior"]) - 1) < 1e-12)
st5 = np.load(t + "/st5.npy")
agree = (st5 == truth).mean()
print("STAPLE of 5 noisy raters agrees with the truth on %.4f of voxels (majority %.4f)"
      % (agree, (np.load(t + "/maj.npy") == truth).mean()))
ok("STAPLE of 5 noisy raters recovers the truth (> 0.95)", agree > 0.95)
b = json.load(open(t + "/bin_info.json"))
ok("binary mode: label 0 has no estimate (null)", b["mode"] == "binary" and b["raters"][0]["sensitivity"]["0"] is None)
sys.exit(1 if bad else 0)
PYEOF

expect 1 "raters on different grids" -- $S fuse "$tmp/r0.npy" "$tmp/small.npy" --out "$tmp/x.npy"
checks=$((checks + 1))
[ ! -e "$tmp/x.npy" ] && [ ! -e "$tmp/x.json" ] || fail "a refused fusion left output"
expect 2 "at least two rater files" -- $S fuse "$tmp/r0.npy" --out "$tmp/x.npy"
expect 2 "--method expects staple or majority" -- $S fuse "$tmp/r0.npy" "$tmp/r1.npy" --method vote --out "$tmp/x.npy"
expect 2 "--out F is required" -- $S fuse "$tmp/r0.npy" "$tmp/r1.npy"
expect 1 "cannot write" -- $S fuse "$tmp/r0.npy" "$tmp/r1.npy" --out "$tmp/no/such/dir/f.npy"
expect 1 "no/such.npy" -- $S fuse "$tmp/r0.npy" "$tmp/no/such.npy" --out "$tmp/x.npy"
checks=$((checks + 1))
[ ! -e "$tmp/x.npy" ] && [ -z "$(ls "$tmp" | grep '\.tmp$')" ] || fail "a failed run left output or a temporary file"
checks=$((checks + 1))
$S fuse --help | grep -q -- '--method staple' || fail "--help"
checks=$((checks + 1))
$S --help | grep -q -- 'fuse' || fail "segloss --help lists fuse"

echo "test_fuse: $checks checks, $fails failed"
[ $fails -eq 0 ]
