#!/usr/bin/env bash
# segloss predict with several --model options (an ensemble), on tiny
# trained models: a model ensembled with itself gives exactly the model's
# labels and probabilities (2-D, 2-D with flip TTA, a 3-D model on a
# volume); the ensemble of two models writes the mean of their
# --probabilities outputs (computed here in numpy, max difference printed,
# tolerance 1e-6: one float32 rounding of a mean) and labels that are its
# argmax; models that cannot be averaged (other classes, 2-D with 3-D,
# another intensity normalisation) and bad option combinations give one
# stderr line, exit 2, and no output.
set -u
. "$(dirname "$0")/lib.sh"

TINY="--size 32,32 --depth 2 --base-channels 4 --epochs 1 --steps-per-epoch 2 --batch 2 --n-train 4 --n-val 1 --n-test 1 --threads 1 --lr 0.01 --quiet"
T3="--data phantom3d --size 16,16,16 --patch 16,16,16 --depth 2 --base-channels 4 --epochs 1 --steps-per-epoch 2 --batch 1 --n-train 2 --n-val 1 --n-test 1 --threads 1 --augment none --quiet"
run "train a" $S train --out "$tmp/a" $TINY --loss dice+ce --seed 1
run "train b" $S train --out "$tmp/b" $TINY --loss dice+ce --seed 2
run "train 2 classes" $S train --out "$tmp/k3" $TINY --loss ce --ratio 100:10
run "train 3-D" $S train --out "$tmp/v" $T3 --loss ce
A=$tmp/a/model.bin B=$tmp/b/model.bin
$PY - "$tmp" <<'PYEOF'
import json, shutil, sys
import numpy as np
t = sys.argv[1]
r = np.random.default_rng(0)
np.save(t + "/i2.npy", r.normal(size=(30, 37)).astype(np.float32))
np.save(t + "/i3.npy", r.normal(size=(2, 32, 32)).astype(np.float32))
np.save(t + "/v.npy", r.normal(size=(18, 16, 20)).astype(np.float32))
# run a with another normalisation in its config.json
shutil.copytree(t + "/a", t + "/n")
c = json.load(open(t + "/n/config.json"))
c["predict"]["preprocessing"]["norm"] = "none"
json.dump(c, open(t + "/n/config.json", "w"))
PYEOF
P="$S predict --threads 1"
# a model alone and ensembled with itself
run "a 2-D" $P --model "$A" --input "$tmp/i2.npy" --out "$tmp/a2.npy" --probabilities "$tmp/pa2.npy"
run "aa 2-D" $P --model "$A" --model "$A" --input "$tmp/i2.npy" --out "$tmp/aa2.npy" --probabilities "$tmp/paa2.npy"
run "a 3-D tta" $P --model "$A" --input "$tmp/i3.npy" --out "$tmp/a3.npy" --probabilities "$tmp/pa3.npy" --tta flip
run "aaa 3-D tta" $P --model "$A" --model "$A" --model "$A" --input "$tmp/i3.npy" --out "$tmp/aa3.npy" \
  --probabilities "$tmp/paa3.npy" --tta flip
run "v" $P --model "$tmp/v/model.bin" --input "$tmp/v.npy" --out "$tmp/v1.npy" --probabilities "$tmp/pv1.npy"
run "vv" $P --model "$tmp/v/model.bin" --model "$tmp/v/model.bin" --input "$tmp/v.npy" --out "$tmp/vv.npy" \
  --probabilities "$tmp/pvv.npy" --config "$tmp/v/config.json" --config "$tmp/v/config.json"
# two models
run "b 3-D tta" $P --model "$B" --input "$tmp/i3.npy" --out "$tmp/b3.npy" --probabilities "$tmp/pb3.npy" --tta flip
run "ab 3-D tta" $P --model "$A" --model "$B" --input "$tmp/i3.npy" --out "$tmp/ab3.npy" --probabilities "$tmp/pab3.npy" --tta flip
run "ab labels only" $P --model "$A" --model "$B" --input "$tmp/i3.npy" --out "$tmp/ab3b.npy" --tta flip
checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "ensemble outputs"
import sys
import numpy as np
t = sys.argv[1]
L = lambda n: np.load(t + "/" + n)
bad = 0
for one, ens in (("a2", "aa2"), ("a3", "aa3"), ("v1", "vv")):
    po, pe = L("p" + one + ".npy") if one != "v1" else L("pv1.npy"), L("p" + ens + ".npy")
    same = np.array_equal(L(one + ".npy"), L(ens + ".npy")) and pe.dtype == po.dtype and np.array_equal(pe, po)
    print("model vs itself x%d (%s): max |p diff| %.3g, labels %s" % (3 if ens == "aa3" else 2, ens,
          np.abs(pe.astype(np.float64) - po).max(), "equal" if same else "DIFFER"))
    if not same:
        bad += 1
pa, pb, pab = L("pa3.npy"), L("pb3.npy"), L("pab3.npy")
ref = (pa.astype(np.float64) + pb.astype(np.float64)) / 2
d = np.abs(pab - ref).max()
print("ensemble of a, b vs numpy mean of their probabilities: max |diff| %.3g (tolerance 1e-6); a vs b differ by %.3g"
      % (d, np.abs(pa - pb).max()))
if not d <= 1e-6 or pab.dtype != np.float32 or pab.shape != pa.shape:
    bad += 1
if not np.abs(pa - pb).max() > 1e-3:
    print("FAILED: the two models agree; the test cannot tell the mean from either")
    bad += 1
lab = L("ab3.npy")
if not (np.array_equal(np.argmax(pab, axis=0), lab) and np.array_equal(lab, L("ab3b.npy"))):
    print("FAILED: labels are not the argmax of the mean")
    bad += 1
sys.exit(1 if bad else 0)
PYEOF
# models that cannot be averaged, bad combinations: one line, exit 2, no output
expect 2 "model 2 has 2 classes, model 1 has 3" -- $P --model "$A" --model "$tmp/k3/model.bin" --input "$tmp/i2.npy" --out "$tmp/x.npy"
expect 2 "model 2 is 3-D, model 1 is 2-D" -- $P --model "$A" --model "$tmp/v/model.bin" --input "$tmp/v.npy" --out "$tmp/x.npy"
expect 2 "model 3 normalises its input otherwise" -- $P --model "$A" --model "$B" --model "$tmp/n/model.bin" \
  --input "$tmp/i2.npy" --out "$tmp/x.npy" --probabilities "$tmp/xp.npy"
expect 2 "--config is given once per --model" -- $P --model "$A" --model "$B" --config "$tmp/a/config.json" \
  --input "$tmp/i2.npy" --out "$tmp/x.npy"
expect 2 "--int8 takes one --model" -- $P --model "$A" --model "$B" --int8 --input "$tmp/i2.npy" --out "$tmp/x.npy"
expect 1 "$tmp/no.bin" -- $P --model "$A" --model "$tmp/no.bin" --input "$tmp/i2.npy" --out "$tmp/x.npy"
check '[ ! -e "$tmp/x.npy" ] && [ ! -e "$tmp/xp.npy" ]' "a refused ensemble left an output"
echo "test_predict_ensemble: $checks checks, $fails failed"
[ $fails -eq 0 ]
