#!/usr/bin/env bash
# segloss eval from the outside: golden outputs on the fixture volumes
# (tests/cli/fixtures, expected values from the numpy/scipy reference in
# fixtures/evalref.py), the JSON layout, thread-count independence, and
# every bad input: one line on stderr naming the problem, exit 2 (usage)
# or 1 (work failed), never a crash.
set -u
. "$(dirname "$0")/lib.sh"

# expect CODE NEEDLE -- command...: exit CODE, exactly one stderr line containing NEEDLE

# compare GOT.csv WANT.csv: same rows and columns, numbers to 1e-9 relative
compare() {
  checks=$((checks + 1))
  $PY - "$1" "$2" <<'PYEOF' || fail "csv $1 differs from $2"
import sys, math
sys.path.insert(0, sys.argv[2].rsplit("/expected/", 1)[0])
import evalref
got, want = evalref.read_csv(sys.argv[1]), evalref.read_csv(sys.argv[2])
bad = 0
if len(got) != len(want):
    print("rows: got %d, want %d" % (len(got), len(want))); sys.exit(1)
worst = 0.0
for g, w in zip(got, want):
    for k, wv in w.items():
        gv = g.get(k)
        if gv is None:
            print("missing column", k); sys.exit(1)
        try:
            a, b = float(gv), float(wv)
            d = abs(a - b)
            worst = max(worst, d)
            if not (d <= 1e-9 * max(1.0, abs(b))):
                print("%s label %s %s: got %s want %s" % (w["case"], w["label"], k, gv, wv)); bad += 1
        except ValueError:
            if gv != wv:
                print("%s: got %r want %r" % (k, gv, wv)); bad += 1
print("max |diff| vs reference %s: %.3g" % (sys.argv[2].rsplit("/", 1)[1], worst))
sys.exit(1 if bad else 0)
PYEOF
}

# ---- golden runs ---------------------------------------------------------
checks=$((checks + 1))
if $S eval --pred "$FX/eval/pred" --gt "$FX/eval/gt" --csv "$tmp/d.csv" --json "$tmp/d.json" >"$tmp/table" 2>"$tmp/err"; then
  compare "$tmp/d.csv" "$FX/expected/eval_default.csv"
  [ -s "$tmp/err" ] && fail "default run wrote to stderr: $(cat "$tmp/err")"
  grep -q '^segloss eval: 4 cases, 2 labels; hd_mode=max percentile=95' "$tmp/table" || fail "table header: $(head -2 "$tmp/table")"
  grep -qE '^2 +4 +1/1/1' "$tmp/table" || fail "table row of label 2 (empty counts): $(cat "$tmp/table")"
else
  fail "default folder run: $(cat "$tmp/err")"
fi

# The JSON: cases as the CSV, the summary from those rows, the conventions.
checks=$((checks + 1))
$PY - "$tmp/d.json" "$FX/expected/eval_default.csv" <<'PYEOF' || fail "JSON layout/summary"
import sys, json, math
import numpy as np
sys.path.insert(0, sys.argv[2].rsplit("/expected/", 1)[0])
import evalref
j = json.load(open(sys.argv[1]))
want = evalref.read_csv(sys.argv[2])
assert set(j) == {"cases", "summary", "conventions"}, j.keys()
assert len(j["cases"]) == len(want) == 8
for row, w in zip(j["cases"], want):
    assert row["case"] == w["case"] and row["label"] == int(w["label"])
    for k in evalref.COLUMNS:
        assert abs(row[k] - float(w[k])) <= 1e-9 * max(1, abs(float(w[k]))), (k, row[k], w[k])
    assert row["empty_pred"] is bool(int(w["empty_pred"])) and row["empty_gt"] is bool(int(w["empty_gt"]))
    assert row["distance_substituted"] is bool(int(w["distance_substituted"]))
s = j["summary"]
assert set(s) == {"1", "2"}
for lab in ("1", "2"):
    vals = [float(w["dice"]) for w in want if w["label"] == lab]
    d = s[lab]["dice"]
    assert abs(d["mean"] - np.mean(vals)) < 1e-12 and abs(d["std"] - np.std(vals)) < 1e-12
    assert abs(d["median"] - np.median(vals)) < 1e-12 and d["n"] == 4
    hd = [float(w["hd95"]) for w in want if w["label"] == lab]
    assert abs(s[lab]["hd95"]["mean"] - np.mean(hd)) < 1e-9
assert s["2"]["empty_pred"] == 1 and s["2"]["empty_gt"] == 1 and s["2"]["both_empty"] == 1
assert s["2"]["distance_substituted"] == 2 and s["1"]["distance_substituted"] == 0
c = j["conventions"]
assert c["hd_mode"] == "max" and c["percentile"] == 95 and c["assd_mode"] == "pooled" and c["surface"] == "border"
assert "diagonal" in c["empty_distance_mm"] and "hd_mode=max" in c["metrics"]
PYEOF

# Every convention option at once, an explicit label list with an absent label.
checks=$((checks + 1))
if $S eval --pred "$FX/eval/pred" --gt "$FX/eval/gt" --hd-mode union --assd-mode mean --percentile 90 \
     --nsd-tolerance 2 --empty-distance 100 --labels 3,1,2 --csv "$tmp/u.csv" --threads 3 >/dev/null 2>"$tmp/err"; then
  compare "$tmp/u.csv" "$FX/expected/eval_union.csv"
else
  fail "union run: $(cat "$tmp/err")"
fi

# 2-D .npy pair given as files, spacing on the command line.
checks=$((checks + 1))
if $S eval --pred "$FX/eval2d/pred.npy" --gt "$FX/eval2d/gt.npy" --spacing 0.8,0.5 --csv "$tmp/2d.csv" >/dev/null 2>"$tmp/err"; then
  compare "$tmp/2d.csv" "$FX/expected/eval2d.csv"
else
  fail "2-D run: $(cat "$tmp/err")"
fi

# The result does not depend on the thread count; --metrics all runs every group.
checks=$((checks + 1))
$S eval --pred "$FX/eval/pred" --gt "$FX/eval/gt" --metrics all --csv "$tmp/t1.csv" --threads 1 >/dev/null 2>&1 &&
$S eval --pred "$FX/eval/pred" --gt "$FX/eval/gt" --metrics all --csv "$tmp/t4.csv" --threads 4 >/dev/null 2>&1 &&
cmp -s "$tmp/t1.csv" "$tmp/t4.csv" || fail "--threads 1 and 4 give different CSVs (or a run failed)"
head -1 "$tmp/t1.csv" | grep -q 'lesion_f1.*cldice' || fail "--metrics all columns: $(head -1 "$tmp/t1.csv")"

# Metric selection: aliases expand, order is kept, unknown names refused.
checks=$((checks + 1))
$S eval --pred "$FX/eval/pred/case1.nii.gz" --gt "$FX/eval/gt/case1.nii.gz" --metrics hd95,counts,dice --csv "$tmp/m.csv" >/dev/null 2>&1
[ "$(head -1 "$tmp/m.csv")" = "case,label,hd95,tp,fp,fn,tn,dice,empty_pred,empty_gt,distance_substituted" ] ||
  fail "--metrics columns: $(head -1 "$tmp/m.csv")"

# The surfel surface runs and reports itself.
checks=$((checks + 1))
$S eval --pred "$FX/eval/pred/case1.nii.gz" --gt "$FX/eval/gt/case1.nii.gz" --surface surfel --json "$tmp/s.json" >/dev/null 2>&1 &&
  $PY -c "import json,sys; j=json.load(open('$tmp/s.json')); sys.exit(j['conventions']['surface']!='surfels')" ||
  fail "--surface surfel"

# ---- bad input ---------------------------------------------------------------
$PY - "$tmp" "$FX" <<'PYEOF'
import sys, os, shutil, numpy as np
sys.path.insert(0, sys.argv[2])
import evalref
d = sys.argv[1]
np.save(d + "/a.npy", np.zeros((4, 5, 6), np.uint8))
np.save(d + "/b.npy", np.zeros((4, 5, 7), np.uint8))
np.save(d + "/prob.npy", np.full((4, 5, 6), 0.7, np.float32))
np.save(d + "/four_d.npy", np.zeros((2, 4, 5, 6), np.uint8))
np.save(d + "/zeros.npy", np.zeros((4, 5, 6), np.uint8))
evalref.write_nifti(d + "/sp1.nii.gz", np.ones((4, 5, 6), np.uint8), (1.0, 1.0, 1.0))
evalref.write_nifti(d + "/sp2.nii.gz", np.ones((4, 5, 6), np.uint8), (1.0, 1.0, 1.2))
open(d + "/junk.nii.gz", "wb").write(b"\x1f\x8b\x08\x00garbage")
for side in ("P", "G"):
    os.makedirs(d + "/" + side)
    for c in ("c1", "c2"):
        shutil.copy(d + "/a.npy", "%s/%s/%s.npy" % (d, side, c))
shutil.copy(d + "/a.npy", d + "/G/c3.npy")
os.makedirs(d + "/Pdup"); shutil.copy(d + "/a.npy", d + "/Pdup/c1.npy"); shutil.copy(d + "/sp1.nii.gz", d + "/Pdup/c1.nii.gz")
os.makedirs(d + "/E1"); os.makedirs(d + "/E2")
PYEOF
P1=$FX/eval/pred/case1.nii.gz G1=$FX/eval/gt/case1.nii.gz
expect 2 "missing --gt" -- $S eval --pred "$P1"
expect 2 "missing --pred" -- $S eval --gt "$G1"
expect 2 "unknown option '--frobnicate'" -- $S eval --pred "$P1" --gt "$G1" --frobnicate
expect 2 "needs a value" -- $S eval --pred "$P1" --gt
expect 2 "unknown metric 'dicee'" -- $S eval --pred "$P1" --gt "$G1" --metrics dice,dicee
expect 2 "--labels expects" -- $S eval --pred "$P1" --gt "$G1" --labels 1,x
expect 2 "lists 2 twice" -- $S eval --pred "$P1" --gt "$G1" --labels 2,1,2
expect 2 "--percentile" -- $S eval --pred "$P1" --gt "$G1" --percentile 101
expect 2 "--hd-mode" -- $S eval --pred "$P1" --gt "$G1" --hd-mode median
expect 2 "--assd-mode" -- $S eval --pred "$P1" --gt "$G1" --assd-mode sum
expect 2 "--surface" -- $S eval --pred "$P1" --gt "$G1" --surface mesh
expect 2 "--nsd-tolerance" -- $S eval --pred "$P1" --gt "$G1" --nsd-tolerance -1
expect 2 "--empty-distance" -- $S eval --pred "$P1" --gt "$G1" --empty-distance nan
expect 2 "--connectivity" -- $S eval --pred "$P1" --gt "$G1" --connectivity 5
expect 2 "--threads" -- $S eval --pred "$P1" --gt "$G1" --threads -2
expect 2 "--spacing" -- $S eval --pred "$P1" --gt "$G1" --spacing 1,0,1
expect 2 "--spacing has 2 values" -- $S eval --pred "$P1" --gt "$G1" --spacing 1,1
expect 2 "is a folder but" -- $S eval --pred "$FX/eval/pred" --gt "$G1"
expect 2 "unknown image format" -- $S eval --pred "$FX/eval/gt/README.txt" --gt "$G1"
expect 2 "connectivity" -- $S eval --pred "$FX/eval2d/pred.npy" --gt "$FX/eval2d/gt.npy" --metrics lesion --connectivity 26
expect 1 "nothing.nii.gz" -- $S eval --pred "$tmp/nothing.nii.gz" --gt "$G1"
expect 1 "grids differ" -- $S eval --pred "$tmp/a.npy" --gt "$tmp/b.npy"
expect 1 "b.npy" -- $S eval --pred "$tmp/a.npy" --gt "$tmp/b.npy"
expect 1 "spacing" -- $S eval --pred "$tmp/sp1.nii.gz" --gt "$tmp/sp2.nii.gz"
expect 1 "whole numbers" -- $S eval --pred "$tmp/prob.npy" --gt "$tmp/a.npy"
expect 1 "1-, 2- or 3-D" -- $S eval --pred "$tmp/four_d.npy" --gt "$tmp/four_d.npy"
expect 1 "junk.nii.gz" -- $S eval --pred "$tmp/junk.nii.gz" --gt "$tmp/sp1.nii.gz"
expect 1 "no non-zero label" -- $S eval --pred "$tmp/zeros.npy" --gt "$tmp/zeros.npy"
expect 1 "without a prediction in '$tmp/P': 'c3'" -- $S eval --pred "$tmp/P" --gt "$tmp/G"
expect 1 "without a ground truth in '$tmp/P'" -- $S eval --pred "$tmp/G" --gt "$tmp/P"
expect 1 "same case 'c1'" -- $S eval --pred "$tmp/Pdup" --gt "$tmp/G"
expect 1 "no image files" -- $S eval --pred "$tmp/E1" --gt "$tmp/E2"
expect 1 "cannot write" -- $S eval --pred "$P1" --gt "$G1" --csv "$tmp/no/such/dir/x.csv"
# Explicit labels on all-background maps are fine: both-empty rows.
checks=$((checks + 1))
$S eval --pred "$tmp/zeros.npy" --gt "$tmp/zeros.npy" --labels 1 --csv "$tmp/z.csv" >/dev/null 2>&1 &&
  grep -q '^zeros,1,1,1,1,1,1,0,0,0,1,1,1,0$' "$tmp/z.csv" || fail "both-empty row: $(cat "$tmp/z.csv" 2>&1)"
checks=$((checks + 1))
$S eval --help | grep -q -- '--empty-distance' || fail "--help"

echo "test_eval: $checks checks, $fails failed"
[ $fails -eq 0 ]
