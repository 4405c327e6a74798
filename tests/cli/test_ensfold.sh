#!/usr/bin/env bash
# segloss bench with k-fold cross-validation and an ensemble entry, on a
# tiny nifti:DIR data set (6 cases of 3..8 slices of 16x16; 1 test case,
# 5 in the pool; 2 folds, 1 seed, 1 epoch of 2 steps): folds.csv gives
# every pool case exactly one validation fold, keeps a case's slices
# together and the test case out of the folds; results.csv has the fold
# column last with a row set per fold, results.json rows and runs say the
# fold; the ensemble entry trains nothing (2 models on disk) and its
# per-case scores (seed "ens") are those of `segloss predict --model fold0
# --model fold1` on the test case, scored here in numpy (Dice per slice,
# tolerance 1e-12); the preset's errors (an ensemble without its trained
# entry, folds out of range, more folds than cases) are one line, exit 2/1.
set -u
. "$(dirname "$0")/lib.sh"

mkdir -p "$tmp/nd/images" "$tmp/nd/labels"
$PY - "$tmp/nd" <<'PYEOF'
import struct, sys
import numpy as np
d = sys.argv[1]
def nii(path, a, code, bits):
    # a minimal NIfTI-1 file: array (nz, ny, nx), x fastest
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, a.shape[2], a.shape[1], a.shape[0], 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, code, bits)
    struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<ff", h, 108, 352, 1)
    h[344:348] = b"n+1\0"
    open(path, "wb").write(bytes(h) + b"\0" * 4 + a.tobytes())
r = np.random.default_rng(3)
yy, xx = np.mgrid[0:16, 0:16]
for i in range(6):
    D = 3 + i  # distinct depths: the test case is known by its slice count
    lab = np.zeros((D, 16, 16), np.uint8)
    for z in range(D):
        cy, cx, rad = r.integers(5, 11), r.integers(5, 11), r.uniform(2, 4.5)
        lab[z][(yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad] = 1
    img = (2.0 * lab + r.normal(0, 0.7, lab.shape)).astype(np.float32)
    nii("%s/images/c%d.nii" % (d, i), img, 16, 32)
    nii("%s/labels/c%d.nii" % (d, i), lab, 2, 8)
PYEOF
write_preset() {  # write_preset FILE FOLDS LOSSES
  cat >"$1" <<EOF
{
  "name": "ensfold", "seeds": [1], "folds": $2, "baseline": "ce",
  "train": {"network": {"depth": 2, "base_width": 4}, "optimizer": {"lr": 0.01},
            "training": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2}},
  "datasets": [{"name": "nd", "data": "nifti:$tmp/nd", "data_opts": {"val_fraction": 0.2, "test_fraction": 0.2}}],
  "losses": $3,
  "evaluation": {"bootstrap": 50, "overlay_cases": 1}
}
EOF
}
write_preset "$tmp/p.json" 2 '["ce", {"name": "ce ens", "loss": "ce", "ensemble": true}]'
run "bench with folds and an ensemble" $S bench --preset "$tmp/p.json" --out "$tmp/b" --threads 2 --quiet
run "emit-slurm" $S bench --preset "$tmp/p.json" --out "$tmp/x" --emit-slurm "$tmp/s.sh"
check 'grep -q "array=0-1$" "$tmp/s.sh"' "2 tasks (one per fold; the ensemble trains nothing): $(grep -o 'array=.*' "$tmp/s.sh")"
B=$tmp/b
M0=$B/runs/nd/seed1/fold0/ce/model.bin M1=$B/runs/nd/seed1/fold1/ce/model.bin
check '[ "$(find "$B/runs" -name model.bin | wc -l)" = 2 ] && [ -f "$M0" ] && [ -f "$M1" ]' "two trainings, one per fold: $(find "$B/runs" -name model.bin)"
TEST_CASE=$(awk -F, '$6 == "test" {print $3}' "$B/runs/nd/folds.csv" | sort -u)
check '[ -n "$TEST_CASE" ]' "folds.csv names the test case"
run "predict the ensemble" $S predict --model "$M0" --model "$M1" --input "$tmp/nd/images/$TEST_CASE" --out "$tmp/ens.npy" --threads 1
checks=$((checks + 1))
$PY - "$B" "$tmp" "$TEST_CASE" <<'PYEOF' || fail "folds and ensemble: see above"
import csv, json, struct, sys
import numpy as np
B, t, test_case = sys.argv[1:4]
bad = 0
def say(ok, what):
    global bad
    print(("ok: " if ok else "FAILED: ") + what)
    bad += not ok
rows = list(csv.DictReader(open(B + "/runs/nd/folds.csv")))
pool = [r for r in rows if r["split"] != "test"]
fold_of_case = {}
for r in pool:
    fold_of_case.setdefault(r["name"], set()).add(r["fold"])
say(all(len(f) == 1 for f in fold_of_case.values()), "every pool case in exactly one fold: %s" % fold_of_case)
say(sorted({f for s in fold_of_case.values() for f in s}) == ["0", "1"] and len(fold_of_case) == 5, "5 pool cases in folds 0 and 1")
say(test_case not in fold_of_case and all(r["fold"] == "test" for r in rows if r["split"] == "test"), "the test case in no fold")
res = list(csv.DictReader(open(B + "/results.csv")))
say(open(B + "/results.csv").readline().rstrip().endswith(",converged,fold"), "results.csv: fold is the last column")
ce = [r for r in res if r["loss"] == "ce"]
ens = [r for r in res if r["loss"] == "ce ens"]
say(sorted({r["fold"] for r in ce}) == ["0", "1"] and len(ce) == 2 * 2 * 6 and {r["seed"] for r in ce} == {"1"},
    "ce: %d rows over folds %s" % (len(ce), sorted({r["fold"] for r in ce})))
say(len(ens) == 2 * 6 and {r["seed"] for r in ens} == {"ens"} and {r["fold"] for r in ens} == {""}, "ce ens: 12 rows, seed ens")
j = json.load(open(B + "/results.json"))
say({(r["seed"], r["fold"]) for r in j["runs"]} == {(1, 0), (1, 1), ("ens", None)}, "results.json runs: %s" % [(r["seed"], r["fold"]) for r in j["runs"]])
# the ensemble's per-case Dice against segloss predict's ensemble
def nii(path):
    b = open(path, "rb").read()
    dim = struct.unpack("<8h", b[40:56])
    return np.frombuffer(b[352:], np.uint8).reshape(dim[3], dim[2], dim[1])
lab = nii(t + "/nd/labels/" + test_case)
pred = np.load(t + "/ens.npy")
def dice(p, g):
    s = p.sum() + g.sum()
    return 1.0 if s == 0 else 2.0 * (p & g).sum() / s
ref = np.array([dice(pred[z] == 1, lab[z] == 1) for z in range(lab.shape[0])])
r = json.load(open(B + "/results/nd__ens__ce_ens.json"))
got = np.array(r["metrics"]["class1"]["dice"])
d = np.abs(got - ref).max() if got.shape == ref.shape else np.inf
say(d <= 1e-12, "ensemble entry vs segloss predict --model fold0 --model fold1: %d cases, max |Dice diff| %.3g (tolerance 1e-12)"
    % (len(ref), d))
m = [json.load(open(B + "/results/nd__seed1__fold%d__ce.json" % k))["metrics"]["class1"]["dice"] for k in (0, 1)]
say(not np.array_equal(m[0], m[1]), "the two folds' models differ (the ensemble is not one of them)")
sys.exit(1 if bad else 0)
PYEOF
# report-only rebuilds the same results.csv from the files
cp "$B/results.csv" "$tmp/r1.csv"
run "report-only" $S bench --preset "$tmp/p.json" --out "$B" --report-only --quiet
check 'cmp -s "$B/results.csv" "$tmp/r1.csv"' "--report-only changed results.csv"
# an ensemble evaluated by --report-only after its trainings (a cluster's tasks)
write_preset "$tmp/p2.json" 2 '["ce", {"name": "ce ens", "loss": "ce", "ensemble": true}]'
run "task 0" $S bench --preset "$tmp/p2.json" --out "$tmp/c" --run 0 --quiet
run "task 1" $S bench --preset "$tmp/p2.json" --out "$tmp/c" --run 1 --quiet
run "report-only evaluates the ensemble" $S bench --preset "$tmp/p2.json" --out "$tmp/c" --report-only --quiet
check 'cmp -s "$tmp/c/results/nd__ens__ce_ens.json" "$B/results/nd__ens__ce_ens.json" || diff <(grep -v seconds "$tmp/c/results/nd__ens__ce_ens.json") <(grep -v seconds "$B/results/nd__ens__ce_ens.json") >/dev/null' \
  "the cluster's ensemble differs from the one-call benchmark's"
# refusals
write_preset "$tmp/e1.json" 2 '["ce", {"name": "dice ens", "loss": "dice", "ensemble": true}]'
expect 2 "needs an entry that trains its loss 'dice'" -- $S bench --preset "$tmp/e1.json" --out "$tmp/e1"
write_preset "$tmp/e2.json" 11 '["ce"]'
expect 2 "folds = 11" -- $S bench --preset "$tmp/e2.json" --out "$tmp/e2"
write_preset "$tmp/e3.json" 6 '["ce"]'
expect 1 "cannot make 6 folds" -- $S bench --preset "$tmp/e3.json" --out "$tmp/e3"
check '[ ! -e "$tmp/e1" ]' "a refused preset left an output folder"
echo "test_ensfold: $checks checks, $fails failed"
[ $fails -eq 0 ]
