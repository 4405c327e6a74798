#!/usr/bin/env bash
# segloss bench on volumes: a tiny 3-D preset (phantom3d 16^3, 1 seed, 3
# entries sharing 2 trainings: ce, dice+ce and dice+ce with 3-D mirroring
# TTA) runs end to end; results.csv holds every (entry, class, metric)
# with values in range (HD95 at most the volume's diagonal in mm); the
# per-case evaluation of the entries without TTA agrees with the trainer's
# own test metrics (metrics.json, whole volumes by sliding windows) to
# 1e-12; the reports' conventions speak of volumes and mm (not the 2-D
# wording); the overlays draw one slice per case; an INT8 entry on a volume
# data set is refused with one line and no result written; presets/3d.json
# parses into its 45 tasks.
set -u
. "$(dirname "$0")/lib.sh"

write_preset() {  # write_preset FILE LOSSES BASELINE
  cat >"$1" <<EOF
{
  "name": "tiny3d",
  "baseline": "$3",
  "description": "a tiny 3-D matrix for the tests",
  "seeds": [1],
  "train": {
    "network": {"depth": 2, "base_width": 4},
    "optimizer": {"lr": 0.01},
    "training": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 2, "patch": [16, 16, 16], "augment": "flip"}
  },
  "datasets": [
    {"name": "p3d", "data": "phantom3d",
     "data_opts": {"height": 16, "width": 16, "depth": 16, "small_fraction": 0.01, "n_train": 6, "n_val": 2, "n_test": 3}}
  ],
  "losses": $2,
  "evaluation": {"bootstrap": 100, "overlay_cases": 1}
}
EOF
}
P=$tmp/tiny3d.json
write_preset "$P" '["ce", "dice+ce", {"name": "dice+ce +TTA", "loss": "dice+ce", "tta": true}]' dice+ce

t0=$(date +%s)
checks=$((checks + 1))
if $S bench --preset "$P" --out "$tmp/a" --threads 2 >"$tmp/a.out" 2>"$tmp/a.err"; then
  grep -q "^Overall ranking" "$tmp/a.out" || fail "no ranking on stdout: $(head -5 "$tmp/a.out")"
  grep -q "^run 3/3 " "$tmp/a.err" || fail "no 'run 3/3' progress line: $(tail -3 "$tmp/a.err")"
else
  fail "tiny 3-D benchmark: $(tail -5 "$tmp/a.err")"
fi
echo "tiny 3-D benchmark: $(($(date +%s) - t0)) s"
for f in preset.json results.csv summary.csv results.json report.md report.html; do
  check "[ -s '$tmp/a/$f' ]" "benchmark folder lacks $f"
done
check "[ \$(ls '$tmp/a/results' | grep -c '\.json$') = 3 ]" "results/ does not hold 3 result files"
check "[ \$(ls '$tmp/a'/runs/*/*/*/model.bin | wc -l) = 2 ]" "not 2 trainings (the TTA entry shares dice+ce's)"
check "[ \$(ls '$tmp/a'/overlays/*/*.png | wc -l) = 4 ]" "not 4 overlay PNGs (1 case x (target + 3 entries))"
checks=$((checks + 1))
$PY - "$tmp/a" <<'PYEOF' || fail "3-D output files"
import csv, json, math, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/results.csv")))
metrics = ["dice", "hd95", "nsd", "recall", "precision", "lesion_f1"]
classes = {r["class"] for r in rows}
assert "mean" in classes and "core" in classes, classes
assert len(rows) == 3 * len(classes) * 6, len(rows)
assert {r["loss"] for r in rows} == {"ce", "dice+ce", "dice+ce +TTA"}
diag = math.sqrt(3 * 16 * 16)  # the volume's diagonal in mm (1 mm voxels)
for r in rows:
    v = float(r["value"])
    assert r["status"] == "ok" and r["n_cases"] == "3", r
    assert (0 <= v <= 1) if r["metric"] != "hd95" else (0 <= v <= diag + 1e-9), r
    assert 0 < float(r["fraction"]) < 0.1, r
# the entries without TTA: per-case metrics averaged = the trainer's test
# metrics (the same sliding windows, logits aggregated)
worst = 0.0
for loss in ("ce", "dice+ce"):
    m = json.load(open("%s/runs/p3d/seed1/%s/metrics.json" % (d, loss)))
    assert m["conventions"]["units"].startswith("mm"), m["conventions"]
    for t in m["test"]:
        for metric in ("dice", "hd95", "nsd", "recall", "precision"):
            mine = [float(r["value"]) for r in rows if r["loss"] == loss and r["class"] == t["name"] and r["metric"] == metric][0]
            worst = max(worst, abs(mine - t[metric]) / max(1, abs(mine)))
print("bench vs trainer test metrics (3-D): max relative difference %.3g (tolerance 1e-12)" % worst)
assert worst <= 1e-12
# the reports' conventions speak of volumes and mm, not of slices and pixels
conv = json.load(open(d + "/results.json"))["conventions"]
assert "3-D volume" in conv and "volume diagonal" in conv and "slice diagonal (pixels)" not in conv, conv
assert "in mm for volumes" in open(d + "/report.md").read() and "HD95 (mm)" in open(d + "/report.html").read()
PYEOF

# ---- an INT8 entry on volumes: one line, no folder left behind
write_preset "$tmp/int8.json" '["ce", {"name": "ce int8", "loss": "ce", "int8": true}]' ce
expect 1 "INT8 entries are for 2-D networks only" -- $S bench --preset "$tmp/int8.json" --out "$tmp/i8"
check "[ ! -e '$tmp/i8/results.csv' ] && [ -z \"\$(ls '$tmp/i8/results' 2>/dev/null)\" ]" "a refused benchmark wrote results"

# ---- presets/3d.json parses, with its volume data sets: 3 data sets x 3 seeds x 5 losses
run "3d preset as a job array" $S bench --preset "$ROOT/presets/3d.json" --out "$tmp/p3" --emit-slurm "$tmp/p3.sbatch"
check "grep -q '^#SBATCH --array=0-44\$' '$tmp/p3.sbatch'" "presets/3d.json is not 45 tasks"

echo "test_bench3d: $checks checks, $fails failed"
[ $fails -eq 0 ]
