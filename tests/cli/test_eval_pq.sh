#!/usr/bin/env bash
# segloss eval --metrics pq,sq,rq from the outside: per case and label, the
# panoptic quality of the labels' connected components against a
# transcription of MONAI's compute_panoptic_quality written here (numpy +
# scipy: components, pairwise IoU, IoU > 0.5 unique or linear_sum_assignment
# below, smooth 1e-6), for the monai, greedy and hungarian rules and two
# thresholds; the conventions line names the rule; bad options refused.
set -u
. "$(dirname "$0")/lib.sh"

mkdir -p "$tmp/P" "$tmp/G"
$PY - "$tmp" <<'PYEOF'
import sys
import numpy as np
from scipy import ndimage
t = sys.argv[1]
rng = np.random.default_rng(42)
for k in range(4):
    shape = (14, 40, 36) if k % 2 else (48, 44)
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.6)
    g = np.where(f > 0.12, 2, np.where(f < -0.15, 1, 0)).astype(np.uint8)
    f2 = f + 0.25 * ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    p = np.where(f2 > 0.12, 2, np.where(f2 < -0.15, 1, 0)).astype(np.int16)
    if k == 3:
        p[p == 1] = 0   # label 1 missed entirely in this case
    np.save("%s/G/c%d.npy" % (t, k), g)
    np.save("%s/P/c%d.npy" % (t, k), p)
PYEOF

for rule in monai greedy hungarian; do
  for thr in 0.5 0.2; do
    run "pq $rule $thr" $S eval --pred "$tmp/P" --gt "$tmp/G" --labels 1,2 --metrics dice,pq,sq,rq --match $rule \
      --iou-threshold $thr --json "$tmp/$rule-$thr.json" --csv "$tmp/$rule-$thr.csv" --threads 2
  done
done
run "panoptic alias, 4-connectivity (2-D)" $S eval --pred "$tmp/P/c0.npy" --gt "$tmp/G/c0.npy" --labels 1,2 --metrics panoptic \
  --connectivity 4 --csv "$tmp/c4.csv"

checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "pq columns differ from the MONAI transcription"
import csv, json, sys
import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
t = sys.argv[1]

def monai_pq(pred, gt, thr, rule, smooth=1e-6):
    tids = [v for v in np.unique(gt) if v]
    pids = [v for v in np.unique(pred) if v]
    m = np.zeros((len(tids), len(pids)))
    for i, a in enumerate(tids):
        tm = gt == a
        for b in np.unique(pred[tm]):
            if b == 0:
                continue
            pm = pred == b
            inter = (tm & pm).sum()
            m[i, pids.index(b)] = inter / (tm.sum() + pm.sum() - inter)
    if rule == "monai" and thr >= 0.5:
        m2 = np.where(m <= thr, 0.0, m)
        ii, jj = np.nonzero(m2)
        iou = m2[ii, jj]
    elif rule in ("monai", "hungarian"):
        if m.size:
            ii, jj = linear_sum_assignment(-m)
            iou = m[ii, jj]
            iou = iou[iou > thr]
        else:
            iou = np.zeros(0)
    else:
        cand = sorted((-m[i, j], i, j) for i in range(m.shape[0]) for j in range(m.shape[1]) if m[i, j] > thr)
        ut, up, iou = set(), set(), []
        for neg, i, j in cand:
            if i not in ut and j not in up:
                ut.add(i); up.add(j); iou.append(-neg)
        iou = np.array(iou)
    tp = len(iou); fp = len(pids) - tp; fn = len(tids) - tp
    s = float(np.sum(iou))
    return s / (tp + 0.5 * fp + 0.5 * fn + smooth), s / (tp + smooth), tp / (tp + 0.5 * fp + 0.5 * fn + smooth)

bad = 0
worst = 0.0
nrows = 0
for name, thr, rule, rank in [("%s-%s" % (r, th), float(th), r, None) for r in ("monai", "greedy", "hungarian")
                              for th in ("0.5", "0.2")] + [("c4", 0.5, "monai", 1)]:
    rows = list(csv.DictReader(open("%s/%s.csv" % (t, name))))
    for row in rows:
        nrows += 1
        k = row["case"]
        g = np.load("%s/G/%s.npy" % (t, k))
        p = np.load("%s/P/%s.npy" % (t, k))
        lab = int(row["label"])
        st = ndimage.generate_binary_structure(g.ndim, rank if rank else g.ndim)
        want = monai_pq(ndimage.label(p == lab, st)[0], ndimage.label(g == lab, st)[0], thr, rule)
        got = [float(row[c]) for c in ("pq", "sq", "rq")]
        d = max(abs(a - b) for a, b in zip(got, want))
        worst = max(worst, d)
        if d > 1e-9:
            print("FAILED", name, k, lab, got, want); bad += 1
print("max |diff| eval pq/sq/rq vs MONAI transcription %.3g over %d rows" % (worst, nrows))
j = json.load(open(t + "/greedy-0.2.json"))
conv = json.dumps(j)
if "instance_match=greedy iou_threshold=0.2" not in conv:
    print("FAILED conventions do not name the matching"); bad += 1
sys.exit(1 if bad else 0)
PYEOF

# shards of a pq run merge into the unsharded outputs, byte for byte
run "pq shard 1/2" $S eval --pred "$tmp/P" --gt "$tmp/G" --labels 1,2 --metrics dice,pq,sq,rq --match greedy \
  --iou-threshold 0.2 --shard 1/2 --json "$tmp/s1.json"
run "pq shard 2/2" $S eval --pred "$tmp/P" --gt "$tmp/G" --labels 1,2 --metrics dice,pq,sq,rq --match greedy \
  --iou-threshold 0.2 --shard 2/2 --json "$tmp/s2.json"
run "pq merge" $S eval --merge "$tmp/s1.json" "$tmp/s2.json" --json "$tmp/m.json" --csv "$tmp/m.csv"
checks=$((checks + 1))
cmp -s "$tmp/m.json" "$tmp/greedy-0.2.json" && cmp -s "$tmp/m.csv" "$tmp/greedy-0.2.csv" || fail "pq shards + merge differ from the unsharded run"

expect 2 "--match expects monai, greedy or hungarian" -- $S eval --pred "$tmp/P" --gt "$tmp/G" --metrics pq --match best
expect 2 "--iou-threshold expects a number in (0, 1]" -- $S eval --pred "$tmp/P" --gt "$tmp/G" --metrics pq --iou-threshold 0
echo "test_eval_pq: $checks checks, $fails failed"
[ $fails -eq 0 ]
