#!/usr/bin/env bash
# segloss eval --froc: lesion-wise FROC from probability maps and lesion
# ground truth. Checked against
#  - a hand case worked out below (2 cases, 3 lesions, one missed, 3 false
#    positives; a (C, spatial) softmax and a (spatial) map);
#  - a transcription of LUNA16's computeFROC (noduleCADEvaluationLUNA16.py:
#    roc_curve over the candidates, missed lesions excluded from the curve
#    but counted in the lesions, fps = fpr * negatives / cases, sens = tpr *
#    detected / lesions, numpy.interp at the rates) on random 2-D and 3-D
#    cases, with scikit-learn's roc_curve when python3-sklearn is installed
#    and a transcription of it either way; candidates and lesions taken as
#    scipy's connected components;
#  - CSV/JSON written atomically; bad input refused in one line, nothing written.
set -u
. "$(dirname "$0")/lib.sh"

mkdir -p "$tmp/H" "$tmp/HG" "$tmp/P" "$tmp/G"
$PY - "$tmp" <<'PYEOF'
import sys
import numpy as np
from scipy import ndimage
t = sys.argv[1]
# hand case a: lesion A (max 0.9) found, lesion B missed (0.2 < 0.5), one false positive (0.7)
g = np.zeros((12, 12), np.uint8); p = np.full((12, 12), 0.1, np.float32)
g[1:3, 1:3] = 1; p[1:3, 1:3] = 0.8; p[1, 1] = 0.9
g[8:10, 8:10] = 1; p[8:10, 8:10] = 0.2
p[1:3, 8:10] = 0.7
np.save(t + "/HG/a.npy", g); np.save(t + "/H/a.npy", np.stack([1 - p, p]).astype(np.float32))
# hand case b: lesion C (0.6) found, false positives 0.95 and 0.55; a (spatial) float64 map
g = np.zeros((12, 12), np.int16); p = np.full((12, 12), 0.05, np.float64)
g[5:7, 5:7] = 2; p[5:7, 5:7] = 0.6
p[0:2, 0:2] = 0.95; p[10:12, 0:2] = 0.55
np.save(t + "/HG/b.npy", (g > 0).astype(np.int16)); np.save(t + "/H/b.npy", p)
# hand case c: no lesion missed, the lowest candidate a lesion (0.6), one false positive (0.95):
# LUNA16 keeps the point of the lowest score (CAMELYON16's script would drop it)
g = np.zeros((12, 12), np.uint8); p = np.full((12, 12), 0.05, np.float32)
g[5:7, 5:7] = 1; p[5:7, 5:7] = 0.6; p[0:2, 0:2] = 0.95
np.save(t + "/c_g.npy", g); np.save(t + "/c_p.npy", p)
rng = np.random.default_rng(11)
for k in range(6):
    shape = (10, 26, 24) if k % 2 else (64, 60)
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.4)
    gt = (f > 0.18).astype(np.uint8)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.2)
    q = 1 / (1 + np.exp(-(14 * f + 9 * noise)))          # lesion probability
    q = np.round(q, 2)                                    # ties between candidates
    np.save("%s/G/c%d.npy" % (t, k), gt)
    np.save("%s/P/c%d.npy" % (t, k), np.stack([1 - q, q]).astype(np.float32))
PYEOF

run "hand case" $S eval --froc --prob "$tmp/H" --gt "$tmp/HG" --csv "$tmp/h.csv" --json "$tmp/h.json"
run "hand case, other rates" $S eval --froc --prob "$tmp/H" --gt "$tmp/HG" --rates 0.75,1.25,0 --csv "$tmp/h2.csv"
run "hand case c" $S eval --froc --prob "$tmp/c_p.npy" --gt "$tmp/c_g.npy" --json "$tmp/c.json"
run "random cases" $S eval --froc --prob "$tmp/P" --gt "$tmp/G" --csv "$tmp/r.csv" --json "$tmp/r.json"
run "random cases, T 0.3, 4-connected" $S eval --froc --prob "$tmp/P/c0.npy" --gt "$tmp/G/c0.npy" --cand-threshold 0.3 \
  --connectivity 4 --rates 0.5,1,3,100 --json "$tmp/r2.json"

checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "--froc differs from the hand case or the LUNA16 transcription"
import csv, json, os, sys
import numpy as np
from scipy import ndimage
t = sys.argv[1]
bad = 0
worst = 0.0

def near(a, b, what, tol=1e-12):
    global bad, worst
    worst = max(worst, abs(a - b))
    if not abs(a - b) <= tol:
        print("FAILED", what, a, b); bad += 1

# hand case: lesions 0.9, missed, 0.6; false positives 0.7, 0.95, 0.55 over 2 cases.
# Curve (FP/case, sens): (0,0) (0.5,0) (0.5,1/3) (1,1/3) (1,2/3) (1.5,2/3); numpy.interp
# takes the last of equal abscissae: 0.5 -> 1/3, 1 -> 2/3.
want = [0, 0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3]
rows = list(csv.DictReader(open(t + "/h.csv")))
for r, w, x in zip(rows, want, [0.125, 0.25, 0.5, 1, 2, 4, 8]):
    near(float(r["fp_per_case"]), x, "hand rate")
    near(float(r["sensitivity"]), w, "hand sensitivity at %g" % x)
j = json.load(open(t + "/h.json"))
near(j["score"], 3 / 7, "hand score (CPM)")
for k, v in (("cases", 2), ("lesions", 3), ("detected", 2), ("false_positives", 3)):
    near(j[k], v, "hand " + k, 0)
near(j["per_case"][0]["false_positives"], 1, "case a false positives", 0)
near(j["per_case"][1]["lesions"], 1, "case b lesions", 0)
j = json.load(open(t + "/c.json"))
for r, w in zip(j["froc"], [0, 0, 0, 1, 1, 1, 1]):
    near(r["sensitivity"], w, "hand case c at %g" % r["fp_per_case"])
near(j["score"], 4 / 7, "hand case c score")
rows = list(csv.DictReader(open(t + "/h2.csv")))
for r, w in zip(rows, [1 / 3, 2 / 3, 0]):
    near(float(r["sensitivity"]), w, "hand sensitivity at %s" % r["fp_per_case"])

try:
    from sklearn.metrics import roc_curve as sk_roc_curve
except ImportError:
    sk_roc_curve = None
    print("scikit-learn not installed (python3-sklearn): roc_curve checked through its transcription only")

def roc_curve(y, s):
    """scikit-learn's roc_curve (drop_intermediate=False): one point per
    distinct score, descending, after (0, 0)."""
    y, s = np.asarray(y, float), np.asarray(s, float)
    o = np.argsort(-s, kind="mergesort"); y, s = y[o], s[o]
    last = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]
    tps, fps = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    return fpr, tps / tps[-1], np.r_[np.inf, s[last]]

def luna16(cases, T, conn, rates, roc):
    """LUNA16 computeFROC on lesions = components of gt, candidates =
    components of p >= T scored by their maximum, hit = a shared voxel."""
    gt_list, prob_list, excl = [], [], []
    for g, p in cases:
        st = ndimage.generate_binary_structure(g.ndim, conn if conn else g.ndim)
        cl, nc = ndimage.label(p >= T, st)
        gl, ng = ndimage.label(g, st)
        score = ndimage.maximum(p, cl, np.arange(1, nc + 1)) if nc else []
        used = set()
        for les in range(1, ng + 1):
            hits = set(np.unique(cl[gl == les])) - {0}
            if hits:
                gt_list.append(1.0); prob_list.append(max(score[h - 1] for h in hits)); excl.append(False)
                used |= hits
            else:
                gt_list.append(1.0); prob_list.append(-1e9); excl.append(True)
        for c in range(1, nc + 1):
            if c not in used:
                gt_list.append(0.0); prob_list.append(score[c - 1]); excl.append(False)
    y = [a for a, e in zip(gt_list, excl) if not e]
    s = [a for a, e in zip(prob_list, excl) if not e]
    detected, total, ncand = sum(y), sum(gt_list), len(s)
    fpr, tpr, thr = roc(y, s)
    fps = fpr * (ncand - detected) / len(cases)
    sens = tpr * detected / total
    return np.interp(rates, fps, sens), fps, sens

def load(d, names):
    out = []
    for n in names:
        g = np.load("%s/G/%s.npy" % (t, n)); p = np.load("%s/P/%s.npy" % (t, n))[1].astype(np.float64)
        out.append((g, np.float32(p).astype(np.float64)))
    return out

names = sorted(f[:-4] for f in os.listdir(t + "/G"))
rates = [0.125, 0.25, 0.5, 1, 2, 4, 8]
rocs = [("transcription", roc_curve)] + ([("scikit-learn", lambda y, s: sk_roc_curve(y, s))] if sk_roc_curve else [])
got = [float(r["sensitivity"]) for r in csv.DictReader(open(t + "/r.csv"))]
j = json.load(open(t + "/r.json"))
for name, roc in rocs:
    want, fps, sens = luna16(load(t, names), 0.5, 0, rates, roc)
    for x, a, b in zip(rates, got, want):
        near(a, b, "random, %s roc_curve, rate %g" % (name, x))
    near(j["score"], float(np.mean(want)), "random CPM (%s)" % name)
# the JSON curve is LUNA16's (every distinct candidate score a point)
fps, sens = luna16(load(t, names), 0.5, 0, rates, roc_curve)[1:]
cv = j["curve"]
if len(cv) != len(fps):
    print("FAILED curve has %d points, LUNA16 %d" % (len(cv), len(fps))); bad += 1
else:
    for c, a, b in zip(cv, fps, sens):
        near(c["fp_per_case"], a, "curve fp"); near(c["sensitivity"], b, "curve sens")
if not (0 < np.mean(got) < 1 and len(set(got)) > 3 and j["detected"] < j["lesions"]):
    print("FAILED the random cases are too easy", got, j["detected"], j["lesions"]); bad += 1
j2 = json.load(open(t + "/r2.json"))
want = luna16(load(t, ["c0"]), 0.3, 1, [0.5, 1, 3, 100], roc_curve)[0]
for a, b in zip([r["sensitivity"] for r in j2["froc"]], want):
    near(a, b, "T 0.3 4-connected")
print("max |diff| eval --froc vs the hand case and LUNA16's computeFROC transcription: %.3g" % worst)
sys.exit(1 if bad else 0)
PYEOF

# bad input: one line, nothing written, existing outputs untouched
echo keep > "$tmp/keep.csv"
$PY -c "
import numpy as np
p = np.load('$tmp/P/c0.npy'); p[1, 3, 4] = 1.5; np.save('$tmp/over.npy', p)
p = np.load('$tmp/P/c0.npy'); p[0, 2, 2] += 0.01; np.save('$tmp/sum.npy', p)
np.save('$tmp/empty.npy', np.zeros((64, 60), np.uint8))"
expect 1 "not a probability in [0, 1]" -- $S eval --froc --prob "$tmp/over.npy" --gt "$tmp/G/c0.npy" --csv "$tmp/keep.csv"
expect 1 "sum to" -- $S eval --froc --prob "$tmp/sum.npy" --gt "$tmp/G/c0.npy" --csv "$tmp/keep.csv"
expect 1 "no lesion" -- $S eval --froc --prob "$tmp/P/c0.npy" --gt "$tmp/empty.npy" --csv "$tmp/keep.csv"
expect 1 "no channel for --froc-label 2" -- $S eval --froc --prob "$tmp/P/c0.npy" --gt "$tmp/G/c0.npy" --froc-label 2
expect 2 "--cand-threshold expects a number in (0, 1]" -- $S eval --froc --prob "$tmp/P" --gt "$tmp/G" --cand-threshold 0
expect 2 "--rates expects" -- $S eval --froc --prob "$tmp/P" --gt "$tmp/G" --rates 1,-2
expect 2 "does not apply to --froc" -- $S eval --froc --prob "$tmp/P" --gt "$tmp/G" --metrics dice
expect 2 "--froc needs --prob P and --gt G" -- $S eval --froc --gt "$tmp/G"
check '[ "$(cat "$tmp/keep.csv")" = keep ]' "a failed --froc run damaged an existing CSV"
check '[ -z "$(ls "$tmp" | grep -E "\.tmp|^\.")" ]' "a failed --froc run left a temporary file"
echo "test_eval_froc: $checks checks, $fails failed"
[ $fails -eq 0 ]
