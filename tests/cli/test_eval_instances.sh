#!/usr/bin/env bash
# segloss eval --instances: instance-id maps as input. Checked here:
#  - a hand case whose expected values are worked out below (two touching
#    ground-truth instances that connected components would merge);
#  - random 2-D and 3-D instance maps (touching instances included) against
#    a transcription of the panoptic quality of Kirillov et al. (CVPR 2019)
#    as panopticapi's pq_compute computes it (a pair matches when IoU > 0.5,
#    such pairs are unique; PQ = sum IoU / (TP + FP/2 + FN/2)), with MONAI's
#    1e-6 in the denominators (segloss's convention) to 1e-12, and without
#    it (panopticapi itself) to 1e-6; the inst_* columns against the same
#    matching; the foreground Dice against numpy;
#  - shard + merge byte-identical; bad combinations refused in one line.
set -u
. "$(dirname "$0")/lib.sh"

mkdir -p "$tmp/P" "$tmp/G"
$PY - "$tmp" <<'PYEOF'
import sys
import numpy as np
from scipy import ndimage
t = sys.argv[1]
# hand case (8 x 8): GT 1 (8 px), GT 2 and 3 side by side (4 px each, touching);
# P 5 covers 6 px of GT 1, P 7 = GT 2, P 8 = GT 3, P 9 a false positive
g = np.zeros((8, 8), np.int32); p = np.zeros((8, 8), np.int64)
g[0:2, 0:4] = 1; g[4:6, 0:2] = 2; g[4:6, 2:4] = 3
p[0:2, 0:3] = 5; p[4:6, 0:2] = 7; p[4:6, 2:4] = 8; p[7, 6:8] = 9
np.save(t + "/hand_g.npy", g); np.save(t + "/hand_p.npy", p)
rng = np.random.default_rng(7)
for k in range(5):
    shape = (12, 30, 28) if k % 2 else (56, 52)
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    lab, n = ndimage.label(f > 0.1)
    # split every other component by a plane: touching instances with their own ids
    cut = np.zeros(shape, bool); cut[..., shape[-1] // 2:] = True
    g = np.where((lab % 2 == 0) & cut & (lab > 0), lab + 1000, lab).astype(np.uint16)
    f2 = f + 0.2 * ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    lab2, n2 = ndimage.label(f2 > 0.1)
    perm = rng.permutation(n2 + 1) + 1; perm[0] = 0     # ids unrelated to the ground truth's
    pr = perm[lab2].astype(np.int32)
    pr = np.where((lab2 % 3 == 0) & cut & (lab2 > 0), pr + 5000, pr)
    np.save("%s/G/c%d.npy" % (t, k), g)
    np.save("%s/P/c%d.npy" % (t, k), pr)
PYEOF

M=dice,instance
run "hand case" $S eval --instances --pred "$tmp/hand_p.npy" --gt "$tmp/hand_g.npy" --metrics $M --csv "$tmp/hand.csv"
run "hand case, components (no --instances)" $S eval --pred "$tmp/hand_p.npy" --gt "$tmp/hand_g.npy" --regions "fg=1,2,3,5,7,8,9" \
  --metrics $M --connectivity 4 --csv "$tmp/handcc.csv"
run "random cases" $S eval --instances --pred "$tmp/P" --gt "$tmp/G" --metrics $M --json "$tmp/r.json" --csv "$tmp/r.csv" --threads 2

checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "--instances values differ from the hand case or the PQ transcription"
import csv, json, sys
import numpy as np
t = sys.argv[1]
bad = 0
worst = 0.0

def near(a, b, tol, what):
    global bad, worst
    d = abs(a - b) if not (np.isnan(a) and np.isnan(b)) else 0.0
    worst = max(worst, d) if tol < 1e-9 else worst
    if not d <= tol:
        print("FAILED", what, a, b); bad += 1

# hand case: TP 3 (IoU 0.75, 1, 1), FP 1 (id 9), FN 0
row = next(csv.DictReader(open(t + "/hand.csv")))
assert row["label"] == "instances", row["label"]
s, e = 2.75, 1e-6
want = {"pq": s / (3 + 0.5 + e), "sq": s / (3 + e), "rq": 3 / (3.5 + e), "inst_tp": 3, "inst_fp": 1, "inst_fn": 0,
        "inst_precision": 0.75, "inst_recall": 1.0, "inst_f1": 6 / 7, "dice": 2 * 14 / (16 + 16)}
for k, v in want.items():
    near(float(row[k]), v, 1e-12, "hand " + k)
# the same maps as a region scored by components: GT 2+3 and P 7+8 merge (TP 2, FP 1)
row = next(csv.DictReader(open(t + "/handcc.csv")))
near(float(row["pq"]), 1.75 / (2.5 + e), 1e-12, "hand components pq")
near(float(row["inst_tp"]), 2, 0, "hand components inst_tp")

def kirillov(pred, gt, smooth):
    """panopticapi pq_compute for one class without void or crowd regions:
    IoU of every overlapping (gt, pred) segment pair; IoU > 0.5 matches."""
    gids = [v for v in np.unique(gt) if v]
    pids = [v for v in np.unique(pred) if v]
    garea = {v: int((gt == v).sum()) for v in gids}
    parea = {v: int((pred == v).sum()) for v in pids}
    inter = {}
    for a, b in zip(gt.ravel(), pred.ravel()):
        if a and b:
            inter[(a, b)] = inter.get((a, b), 0) + 1
    tp, iou_sum, mg, mp = 0, 0.0, set(), set()
    for (a, b), i in inter.items():
        iou = i / (garea[a] + parea[b] - i)
        if iou > 0.5:
            tp += 1; iou_sum += iou; mg.add(a); mp.add(b)
    fn, fp = len(gids) - len(mg), len(pids) - len(mp)
    pq = iou_sum / (tp + 0.5 * fp + 0.5 * fn + smooth) if tp + fp + fn else 0.0
    sq = iou_sum / (tp + smooth) if tp else 0.0
    rq = tp / (tp + 0.5 * fp + 0.5 * fn + smooth) if tp + fp + fn else 0.0
    return pq, sq, rq, tp, fp, fn

rows = list(csv.DictReader(open(t + "/r.csv")))
for row in rows:
    k = row["case"]
    g = np.load("%s/G/%s.npy" % (t, k)); p = np.load("%s/P/%s.npy" % (t, k))
    pq, sq, rq, tp, fp, fn = kirillov(p, g, 1e-6)
    for c, v in (("pq", pq), ("sq", sq), ("rq", rq)):
        near(float(row[c]), v, 1e-12, "%s %s" % (k, c))
    pq0, sq0, rq0, *_ = kirillov(p, g, 0.0)   # panopticapi exactly: no smoothing
    for c, v in (("pq", pq0), ("sq", sq0), ("rq", rq0)):
        near(float(row[c]), v, 1e-6, "%s %s (panopticapi)" % (k, c))
    for c, v in (("inst_tp", tp), ("inst_fp", fp), ("inst_fn", fn)):
        near(float(row[c]), v, 0, "%s %s" % (k, c))
    near(float(row["inst_precision"]), tp / (tp + fp), 1e-15, k + " inst_precision")
    near(float(row["inst_recall"]), tp / (tp + fn), 1e-15, k + " inst_recall")
    near(float(row["inst_f1"]), 2 * tp / (2 * tp + fp + fn), 1e-15, k + " inst_f1")
    pm, gm = p != 0, g != 0
    near(float(row["dice"]), 2 * (pm & gm).sum() / (pm.sum() + gm.sum()), 1e-15, k + " dice")
    if tp < 2 or fp + fn < 1:
        print("FAILED case %s is too easy (tp %d, fp %d, fn %d)" % (k, tp, fp, fn)); bad += 1
j = json.load(open(t + "/r.json"))
if "inputs=instance_ids" not in json.dumps(j):
    print("FAILED the conventions do not say the inputs are instance ids"); bad += 1
print("max |diff| eval --instances vs the Kirillov/panopticapi transcription (+MONAI smoothing) %.3g over %d cases"
      % (worst, len(rows)))
sys.exit(1 if bad else 0)
PYEOF

# shards of an --instances run (no --labels needed: one target) merge byte for byte
run "shard 1/2" $S eval --instances --pred "$tmp/P" --gt "$tmp/G" --metrics $M --shard 1/2 --json "$tmp/s1.json"
run "shard 2/2" $S eval --instances --pred "$tmp/P" --gt "$tmp/G" --metrics $M --shard 2/2 --json "$tmp/s2.json"
run "merge" $S eval --merge "$tmp/s1.json" "$tmp/s2.json" --json "$tmp/m.json" --csv "$tmp/m.csv"
checks=$((checks + 1))
cmp -s "$tmp/m.json" "$tmp/r.json" && cmp -s "$tmp/m.csv" "$tmp/r.csv" || fail "--instances shards + merge differ from one run"

# bad input: one line, usage errors exit 2, a bad map exit 1, nothing written
expect 2 "takes no --labels or --regions" -- $S eval --instances --pred "$tmp/P" --gt "$tmp/G" --labels 1
expect 2 "takes no --labels or --regions" -- $S eval --instances --pred "$tmp/P" --gt "$tmp/G" --regions "a=1"
expect 2 "--instances and --ignore-label exclude each other" -- $S eval --instances --pred "$tmp/P" --gt "$tmp/G" --ignore-label 9
expect 2 "--instances takes one ground truth" -- $S eval --instances --pred "$tmp/hand_p.npy" --gt "$tmp/hand_g.npy,$tmp/hand_g.npy"
$PY -c "import numpy as np; np.save('$tmp/frac.npy', np.full((8, 8), 0.5))"
expect 1 "" -- $S eval --instances --pred "$tmp/frac.npy" --gt "$tmp/hand_g.npy" --metrics pq --csv "$tmp/no.csv"
check '[ ! -e "$tmp/no.csv" ]' "a failed --instances run left a CSV"
echo "test_eval_instances: $checks checks, $fails failed"
[ $fails -eq 0 ]
