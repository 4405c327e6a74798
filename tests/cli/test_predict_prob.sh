#!/usr/bin/env bash
# segloss predict --probabilities from the outside, on a tiny trained model:
# the .npy holds float32 (C, image shape...) probabilities that sum to 1 per
# voxel, whose argmax is the written label map (2-D, 3-D, with TTA), and a
# bad --probabilities path is one line, exit 2/1, nothing written.
set -u
. "$(dirname "$0")/lib.sh"

TINY="--size 32,32 --depth 2 --base-channels 4 --epochs 2 --steps-per-epoch 4 --batch 4 --n-train 8 --n-val 4 --n-test 4 --threads 1 --lr 0.01"
checks=$((checks + 1))
$S train --out "$tmp/ph" $TINY --loss dice+ce --quiet >/dev/null 2>"$tmp/err" || fail "training: $(cat "$tmp/err")"
M=$tmp/ph/model.bin
$PY - "$tmp" <<'PYEOF'
import numpy as np, sys
r = np.random.default_rng(0)
np.save(sys.argv[1] + "/i2.npy", r.normal(size=(30, 37)).astype(np.float32))
np.save(sys.argv[1] + "/i3.npy", r.normal(size=(3, 32, 32)).astype(np.float64))
PYEOF
run "2-D" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2.npy" --probabilities "$tmp/p2.npy" --threads 1
run "3-D tta" $S predict --model "$M" --input "$tmp/i3.npy" --out "$tmp/o3.nii.gz" --probabilities "$tmp/p3.npy" --tta flip
run "3-D labels only" $S predict --model "$M" --input "$tmp/i3.npy" --out "$tmp/o3b.npy" --tta flip
checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "probabilities"
import sys
import numpy as np
t = sys.argv[1]
bad = 0
for lab, prob, shape in ((t + "/o2.npy", t + "/p2.npy", (30, 37)), (t + "/o3b.npy", t + "/p3.npy", (3, 32, 32))):
    p = np.load(prob)
    l = np.load(lab)
    s = np.abs(p.sum(axis=0) - 1).max()
    print("max |sum_c p - 1| %s %.3g" % (prob.split("/")[-1], s))
    if p.dtype != np.float32 or p.shape[1:] != shape or p.shape[0] < 2:
        print("FAILED shape/dtype", p.shape, p.dtype); bad += 1
    if s > 1e-5 or p.min() < 0 or p.max() > 1:
        print("FAILED not probabilities"); bad += 1
    if not np.array_equal(np.argmax(p, axis=0), l):
        print("FAILED argmax != labels in", prob); bad += 1
sys.exit(1 if bad else 0)
PYEOF
expect 2 "--probabilities writes a .npy file" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/x.npy" \
  --probabilities "$tmp/x.nii.gz"
expect 1 "cannot write" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/x.npy" \
  --probabilities "$tmp/no/dir/p.npy"
checks=$((checks + 1))
[ ! -e "$tmp/x.npy" ] || fail "a failed run left the label map"
echo "test_predict_prob: $checks checks, $fails failed"
[ $fails -eq 0 ]
