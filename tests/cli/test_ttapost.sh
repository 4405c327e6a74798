#!/usr/bin/env bash
# segloss predict --tta rot|aug:N and --postprocess, train --postprocess
# auto, from the outside on tiny models:
# - rot (2-D model, non-square 30x37 image; 3-D model with a 4x8x12 patch, 6x10x14 volume):
#   the probabilities equal the mean of the --tta none probabilities of the
#   8 (16) transformed inputs, each transformed back, computed here in numpy;
# - aug:N: the same seed gives the same bytes, another seed other ones, and
#   it differs from flip;
# - train --postprocess auto writes a valid postprocess.json, predict
#   --postprocess auto/FILE applies it (keep largest: the largest 8-connected
#   components of each class left, checked with scipy);
# - bench entries "tta": "rot"/"aug:N" and "postprocess": true: one shared
#   training, results.csv's tta column 0/1/rot/aug:N;
# - bad values: one line, exit 2 (usage) or 1 (a missing rule file), no output.
set -u
. "$(dirname "$0")/lib.sh"

TINY="--size 32,32 --depth 2 --base-channels 4 --epochs 2 --steps-per-epoch 4 --batch 4 --n-train 8 --n-val 4 --n-test 4 --threads 1 --lr 0.01"
checks=$((checks + 1))
$S train --out "$tmp/ph" $TINY --loss dice+ce --postprocess auto --quiet >"$tmp/tout" 2>"$tmp/err" || fail "training: $(cat "$tmp/err")"
check 'grep -q "post-processing" "$tmp/tout"' "train --postprocess auto prints the rule"
M=$tmp/ph/model.bin
T3="--data phantom3d --size 8,10,12 --n-train 2 --n-val 1 --n-test 1 --patch 4,8,12 --depth 2 --base-channels 2 --epochs 1 --steps-per-epoch 1 --batch 1 --threads 1 --augment none --quiet"
run "3-D run" $S train --out "$tmp/v3" $T3
$PY - "$tmp" <<'PYEOF'
import numpy as np, sys
r = np.random.default_rng(0)
np.save(sys.argv[1] + "/i2.npy", r.normal(size=(30, 37)).astype(np.float32))
np.save(sys.argv[1] + "/i3.npy", r.normal(size=(6, 10, 14)).astype(np.float32))
# the transformed inputs: mirror W (f), then k quarter turns in (H, W); 3-D: mirror D (d) too
x = np.load(sys.argv[1] + "/i2.npy")
for k in range(4):
    for f in range(2):
        np.save(sys.argv[1] + "/i2_%d%d.npy" % (k, f), np.ascontiguousarray(np.rot90(np.flip(x, 1) if f else x, k)))
v = np.load(sys.argv[1] + "/i3.npy")
for k in range(4):
    for f in range(2):
        for d in range(2):
            y = np.flip(v, 2) if f else v
            y = np.flip(y, 0) if d else y
            np.save(sys.argv[1] + "/i3_%d%d%d.npy" % (k, f, d), np.ascontiguousarray(np.rot90(y, k, axes=(1, 2))))
PYEOF
run "2-D rot" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2.npy" --probabilities "$tmp/p2.npy" --tta rot
run "3-D rot" $S predict --threads 1 --model "$tmp/v3/model.bin" --input "$tmp/i3.npy" --out "$tmp/o3.npy" --probabilities "$tmp/p3.npy" --tta rot
for k in 0 1 2 3; do
  for f in 0 1; do
    run "2-D $k$f" $S predict --threads 1 --model "$M" --input "$tmp/i2_$k$f.npy" --out "$tmp/x.npy" --probabilities "$tmp/p2_$k$f.npy"
    for d in 0 1; do
      run "3-D $k$f$d" $S predict --threads 1 --model "$tmp/v3/model.bin" --input "$tmp/i3_$k$f$d.npy" --out "$tmp/x.npy" \
        --probabilities "$tmp/p3_$k$f$d.npy"
    done
  done
done
checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "rot = the explicit mean of the transformed predictions"
import sys
import numpy as np
t = sys.argv[1]
bad = 0
# probabilities (C, H, W) / (C, D, H, W): back through k turns the other way, then the mirrorings
acc2 = sum(np.flip(np.rot90(np.load(t + "/p2_%d%d.npy" % (k, f)).astype(np.float64), -k, axes=(1, 2)), 2) if f else
           np.rot90(np.load(t + "/p2_%d%d.npy" % (k, f)).astype(np.float64), -k, axes=(1, 2))
           for k in range(4) for f in range(2)) / 8
acc3 = 0
for k in range(4):
    for f in range(2):
        for d in range(2):
            p = np.rot90(np.load(t + "/p3_%d%d%d.npy" % (k, f, d)).astype(np.float64), -k, axes=(2, 3))
            p = np.flip(p, 3) if f else p
            acc3 = acc3 + (np.flip(p, 1) if d else p)
acc3 /= 16
for name, want in (("p2", acc2), ("p3", acc3)):
    got = np.load(t + "/" + name + ".npy")
    diff = np.abs(got - want).max()
    print("rot %s: max |tta - explicit mean| %.3g" % (name, diff))
    if got.shape != want.shape or diff > 2e-6:
        print("FAILED", name, got.shape, want.shape); bad += 1
# the rotations matter (the mean is not the identity's prediction)
d0 = np.abs(np.load(t + "/p2_00.npy") - acc2).max()
print("rot p2: max |tta - identity| %.3g" % d0)
if d0 < 1e-3:
    print("FAILED rot does not change the probabilities"); bad += 1
sys.exit(1 if bad else 0)
PYEOF

# aug:N: reproducible, seeded, not flip
run "aug" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/a1.npy" --probabilities "$tmp/pa1.npy" --tta aug:4
run "aug again" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/a2.npy" --probabilities "$tmp/pa2.npy" --tta aug:4 --tta-seed 0
run "aug seed 7" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/a3.npy" --probabilities "$tmp/pa3.npy" --tta aug:4 --tta-seed 7
run "flip" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/f.npy" --probabilities "$tmp/pf.npy" --tta flip
run "3-D aug" $S predict --threads 1 --model "$tmp/v3/model.bin" --input "$tmp/i3.npy" --out "$tmp/a3d.npy" --tta aug:2
check 'cmp -s "$tmp/pa1.npy" "$tmp/pa2.npy"' "aug:4 with the default seed twice: the same bytes"
check '! cmp -s "$tmp/pa1.npy" "$tmp/pa3.npy"' "aug:4 with seeds 0 and 7 differ"
check '! cmp -s "$tmp/pa1.npy" "$tmp/pf.npy"' "aug:4 differs from flip"

# post-processing
checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "postprocess.json"
import json, sys
j = json.load(open(sys.argv[1] + "/ph/postprocess.json"))
print("postprocess.json:", json.dumps(j["classes"]))
assert j["num_classes"] == 3 and j["connectivity"] == "full" and [c["class"] for c in j["classes"]] == [1, 2]
for c in j["classes"]:
    assert isinstance(c["keep_largest"], bool) and c["min_size"] >= 0
    assert not (c["keep_largest"] or c["min_size"]) or c["val_dice_after"] >= c["val_dice_before"]
rule = {"num_classes": 3, "classes": [{"class": 1, "keep_largest": True}, {"class": 2, "keep_largest": True}]}
json.dump(rule, open(sys.argv[1] + "/largest.json", "w"))
PYEOF
run "predict --postprocess auto" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/pp_auto.npy" --postprocess auto
run "predict --postprocess FILE" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/pp_l.npy" --postprocess "$tmp/largest.json"
run "predict --postprocess none" $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/pp_n.npy" --postprocess none
checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "keep largest applied"
import sys
import numpy as np
from scipy import ndimage
t = sys.argv[1]
raw, l = np.load(t + "/pp_n.npy"), np.load(t + "/pp_l.npy")
bad = 0
for c in (1, 2):
    full = np.ones((3, 3))
    lab, n = ndimage.label(raw == c, structure=full)
    want = raw == c
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        want = np.isin(lab, 1 + np.flatnonzero(sizes == sizes.max()))
    print("class %d: %d components before, %d after" % (c, n, ndimage.label(l == c, structure=full)[1]))
    if not np.array_equal(l == c, want):
        print("FAILED class", c); bad += 1
if np.any((l != 0) & (l != raw)):
    print("FAILED removed voxels must become 0"); bad += 1
sys.exit(1 if bad else 0)
PYEOF

# bad input
for v in aug:0 aug:-1 aug: aug:x aug:257 rot9; do
  expect 2 "--tta" -- $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/bad.npy" --tta "$v"
done
expect 2 "--tta-seed" -- $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/bad.npy" --tta aug:2 --tta-seed -1
expect 1 "--postprocess" -- $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/bad.npy" --postprocess "$tmp/none.json"
echo '{"num_classes": 4, "classes": []}' >"$tmp/c4.json"
expect 1 "is for 4 classes" -- $S predict --threads 1 --model "$M" --input "$tmp/i2.npy" --out "$tmp/bad.npy" --postprocess "$tmp/c4.json"
expect 2 "--postprocess expects auto or none" -- $S train --out "$tmp/bad" $TINY --postprocess yes
check '[ ! -e "$tmp/bad.npy" ] && [ ! -e "$tmp/bad" ]' "failed runs left no output"
# bench entries: "tta": "rot" / "aug:N" and "postprocess": true share the plain entry's training;
# results.csv says which TTA (0/1 kept for false/true)
cat >"$tmp/b.json" <<EOF
{
  "name": "ttapost", "description": "tta and post-processing entries", "seeds": [1],
  "train": {"data_opts": {"height": 32, "width": 32, "n_train": 8, "n_val": 4, "n_test": 4},
            "network": {"depth": 2, "base_width": 4}, "optimizer": {"lr": 0.01},
            "training": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4}},
  "datasets": [{"name": "phantom", "data": "phantom"}],
  "losses": ["dice+ce", {"name": "flip", "loss": "dice+ce", "tta": true}, {"name": "rot", "loss": "dice+ce", "tta": "rot"},
             {"name": "aug", "loss": "dice+ce", "tta": "aug:2"}, {"name": "pp", "loss": "dice+ce", "postprocess": true}],
  "evaluation": {"bootstrap": 50, "overlay_cases": 0}
}
EOF
checks=$((checks + 1))
$S bench --preset "$tmp/b.json" --out "$tmp/b" --threads 1 >"$tmp/b.out" 2>"$tmp/b.err" || fail "bench: $(tail -3 "$tmp/b.err")"
check "[ \$(ls '$tmp/b'/runs/*/*/*/model.bin | wc -l) = 1 ]" "the 5 entries do not share one training"
checks=$((checks + 1))
$PY - "$tmp/b" <<'PYEOF' || fail "bench tta column"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/results.csv")))
tta = {r["loss"]: r["tta"] for r in rows}
print("results.csv tta:", tta)
assert tta == {"dice+ce": "0", "flip": "1", "rot": "rot", "aug": "aug:2", "pp": "0"}, tta
pre = json.load(open(sys.argv[1] + "/preset.json"))
assert [e["tta"] for e in pre["losses"]] == [False, True, "rot", "aug:2", False], pre["losses"]
assert [e.get("postprocess", False) for e in pre["losses"]] == [False, False, False, False, True]
PYEOF
sed 's/"tta": "rot"/"tta": "aug:0"/' "$tmp/b.json" >"$tmp/bad.json"
expect 2 'aug:N' -- $S bench --preset "$tmp/bad.json" --out "$tmp/bb"
sed 's/"postprocess": true/"postprocess": 1/' "$tmp/b.json" >"$tmp/bad.json"
expect 2 'postprocess' -- $S bench --preset "$tmp/bad.json" --out "$tmp/bb"
echo "test_ttapost: $checks checks, $fails failed"
[ $fails -eq 0 ]
