#!/usr/bin/env bash
# segloss eval on real anatomy: the AAL atlas of mricron-data (181 x 217 x
# 181, 1 mm, 116 labels) against perturbed copies of itself. One case has
# the left hippocampus (37) dilated and shifted by 2 mm and the left
# amygdala (41) deleted; another is the atlas unchanged. Checked: the three
# labels against the numpy/scipy reference (cropped to the labels' bounding
# box, which leaves the distances unchanged), an unchanged label scoring
# perfectly, the deleted one counted as an empty prediction, and a run over
# every label. Skipped, saying so, when mricron-data is not installed.
set -u
. "$(dirname "$0")/lib.sh"
AAL=/usr/share/mricron/templates/aal.nii.gz
if [ ! -f "$AAL" ]; then
  echo "skip: $AAL not found (apt-get install mricron-data); no real-anatomy eval check"
  exit 0
fi
mkdir -p "$tmp/P" "$tmp/G"

$PY - "$tmp" "$FX" "$AAL" <<'PYEOF'
import os, sys
import numpy as np
from scipy import ndimage as ndi
sys.path.insert(0, sys.argv[2])
import evalref
t, aal = sys.argv[1], sys.argv[3]
vol, sp, _ = evalref.read_nifti(aal)
pred = vol.copy()
hip = vol == 37
grown = ndi.binary_dilation(hip, ndi.generate_binary_structure(3, 1))
pred[hip] = 0
pred[np.roll(grown, 2, axis=2) & (pred == 0)] = 37    # +2 voxels along x (array axis 2)
pred[pred == 41] = 0                                    # amygdala L missed
for case in ("shifted", "same"):
    os.symlink(aal, "%s/G/%s.nii.gz" % (t, case))
evalref.replace_data(aal, t + "/P/shifted.nii.gz", pred)
os.symlink(aal, t + "/P/same.nii.gz")
# The reference on the bounding box of the labels (+ 3 voxels).
rows = []
for lab in (37, 41, 42):
    m = (vol == lab) | (pred == lab)
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(0) - 3, 0); hi = np.minimum(idx.max(0) + 4, vol.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    r = evalref.case_metrics(pred[sl], vol[sl], lab, sp)
    # Specificity from the whole image (the box drops true negatives).
    p, g = pred == lab, vol == lab
    fp = np.sum(p & ~g); tn = np.sum(~p & ~g)
    r["specificity"] = tn / (tn + fp)
    rows.append(r)
diag = float(np.sqrt(sum((n * s) ** 2 for n, s in zip(vol.shape, sp))))
with open(t + "/want.csv", "w") as f:
    f.write("label," + ",".join(evalref.COLUMNS) + "\n")
    for lab, r in zip((37, 41, 42), rows):
        f.write("%d,%s\n" % (lab, ",".join(repr(float(diag if np.isinf(r[c]) else r[c])) for c in evalref.COLUMNS)))
PYEOF

checks=$((checks + 1))
if $S eval --pred "$tmp/P" --gt "$tmp/G" --labels 37,41,42 --csv "$tmp/got.csv" --json "$tmp/got.json" >"$tmp/table" 2>"$tmp/err"; then
  $PY - "$tmp" <<'PYEOF' || fail "AAL labels 37, 41, 42 differ from the reference"
import sys, json
t = sys.argv[1]
got = [l.strip().split(",") for l in open(t + "/got.csv")]
head, got = got[0], got[1:]
want = [l.strip().split(",") for l in open(t + "/want.csv")]
whead, want = want[0], want[1:]
rows = {(r[0], int(r[1])): dict(zip(head, r)) for r in got}
bad = 0
worst = 0.0
for w in want:
    lab = int(w[0])
    g = rows[("shifted", lab)]
    for k, v in zip(whead[1:], w[1:]):
        d = abs(float(g[k]) - float(v))
        worst = max(worst, d)
        if d > 1e-9 * max(1.0, abs(float(v))):
            print("label %d %s: got %s want %s" % (lab, k, g[k], v)); bad += 1
    s = rows[("same", lab)]
    if float(s["dice"]) != 1.0 or float(s["hd"]) != 0.0 or float(s["nsd"]) != 1.0:
        print("unchanged case, label %d: %s" % (lab, s)); bad += 1
h = rows[("shifted", 37)]
if not (0.3 < float(h["dice"]) < 0.9 and 1.0 <= float(h["hd95"]) <= 6.0):
    print("implausible hippocampus numbers:", h); bad += 1
a = rows[("shifted", 41)]
if not (a["empty_pred"] == "1" and a["distance_substituted"] == "1" and float(a["dice"]) == 0.0):
    print("deleted amygdala row:", a); bad += 1
j = json.load(open(t + "/got.json"))
if j["summary"]["41"]["empty_pred"] != 1 or j["summary"]["42"]["dice"]["mean"] != 1.0:
    print("summary:", j["summary"]["41"], j["summary"]["42"]["dice"]); bad += 1
print("max |diff| eval AAL vs reference           %.3g" % worst)
sys.exit(1 if bad else 0)
PYEOF
else
  fail "eval on AAL: $(cat "$tmp/err")"
fi

# Every label of the atlas (116), overlap and HD95 only: the perturbed
# labels are the only imperfect ones. (Not under the sanitizers: slow there,
# and the code paths are the ones above.)
checks=$((checks + 1))
if [ "${SL_QUICK:-0}" = 1 ]; then
  echo "quick: the all-label run is skipped"
elif $S eval --pred "$tmp/P" --gt "$tmp/G" --metrics dice,hd95 --csv "$tmp/all.csv" >/dev/null 2>"$tmp/err"; then
  $PY - "$tmp/all.csv" <<'PYEOF' || fail "all-label run"
import sys
rows = [l.strip().split(",") for l in open(sys.argv[1])][1:]
labels = sorted({int(r[1]) for r in rows})
assert len(labels) == 116 and len(rows) == 232, (len(labels), len(rows))
imperfect = sorted({int(r[1]) for r in rows if float(r[2]) != 1.0})
assert imperfect == [37, 41], imperfect
PYEOF
else
  fail "all-label eval on AAL: $(cat "$tmp/err")"
fi

echo "test_eval_anatomy: $checks checks, $fails failed"
[ $fails -eq 0 ]
