#!/usr/bin/env bash
# segloss bench end to end on a tiny preset (32x32 phantoms, 2 data sets of
# the sweep, 2 seeds, 4 entries sharing 3 trainings per data set and seed):
# every output file and its columns; the per-case evaluation agrees with
# the trainer's own test metrics; 1 and 2 threads give the same files; a
# benchmark killed with SIGKILL (and one stopped with Ctrl-C) resumes with
# nothing lost or duplicated and ends with the same results as an
# uninterrupted one; --report-only, --force, preset lookup by name, a loss
# that diverges (recorded as a failed run, ranked last); every refusal is
# one stderr line with the right exit code.
set -u
. "$(dirname "$0")/lib.sh"

write_preset() {  # write_preset FILE SEEDS LR
  cat >"$1" <<EOF
{
  "name": "tiny",
  "description": "a tiny matrix for the tests",
  "seeds": $2,
  "train": {
    "data_opts": {"height": 32, "width": 32, "n_train": 12, "n_val": 4, "n_test": 6},
    "network": {"depth": 2, "base_width": 4},
    "optimizer": {"lr": $3},
    "training": {"epochs": 2, "steps_per_epoch": 6, "batch_size": 4}
  },
  "datasets": [
    {"name": "phantom 5%", "data": "phantom", "data_opts": {"small_fraction": 0.05}, "sweep": true,
     "train": {"training": {"epochs": 3}}},
    {"name": "phantom 1%", "data": "phantom", "data_opts": {"small_fraction": 0.01}, "sweep": true}
  ],
  "losses": ["ce", "dice+ce", {"name": "dice+ce +TTA", "loss": "dice+ce", "tta": true},
             {"name": "staged", "loss": "0:ce; 1:ce+dice"}],
  "evaluation": {"bootstrap": 200, "overlay_cases": 2}
}
EOF
}
P=$tmp/tiny.json
write_preset "$P" "[1, 2]" 0.01

# ---- end to end, with every output file
checks=$((checks + 1))
if $S bench --preset "$P" --out "$tmp/a" --threads 2 >"$tmp/a.out" 2>"$tmp/a.err"; then
  grep -q "^Overall ranking" "$tmp/a.out" || fail "no ranking on stdout: $(head -5 "$tmp/a.out")"
  grep -q "^report: $tmp/a/report.html" "$tmp/a.out" || fail "no report path on stdout"
  grep -q "^run 16/16 " "$tmp/a.err" || fail "no 'run 16/16' progress line: $(tail -3 "$tmp/a.err")"
  grep -q "ETA" "$tmp/a.err" || fail "no ETA in the progress lines"
else
  fail "tiny benchmark: $(tail -5 "$tmp/a.err")"
fi
for f in preset.json results.csv summary.csv results.json report.md report.html; do
  check "[ -s '$tmp/a/$f' ]" "benchmark folder lacks $f"
done
check "[ \$(ls '$tmp/a/results' | grep -c '\.json$') = 16 ]" "results/ does not hold 16 result files"
check "[ \$(ls '$tmp/a'/runs/*/*/*/model.bin | wc -l) = 12 ]" "not 12 trainings (TTA entries share theirs)"
check "[ \$(ls '$tmp/a'/overlays/*/*.png | wc -l) = 20 ]" "not 20 overlay PNGs (2 data sets x 2 cases x (target + 4 entries))"
checks=$((checks + 1))
$PY - "$tmp/a" <<'PYEOF' || fail "output files"
import csv, json, math, sys, os, re
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/results.csv")))
head = open(d + "/results.csv").readline().strip().split(",")
assert head == ["dataset", "fraction", "seed", "loss", "spec", "tta", "int8", "status", "class", "metric", "value", "n_cases", "converged"], head
metrics = ["dice", "hd95", "nsd", "recall", "precision", "lesion_f1"]
assert len(rows) == 2 * 2 * 4 * 3 * 6, len(rows)
keys = {(r["dataset"], r["seed"], r["loss"], r["class"], r["metric"]) for r in rows}
assert len(keys) == len(rows), "duplicate rows"
assert {r["class"] for r in rows} == {"mean", "large", "core"}
assert {r["metric"] for r in rows} == set(metrics)
assert {r["loss"] for r in rows} == {"ce", "dice+ce", "dice+ce +TTA", "staged"}
for r in rows:
    v = float(r["value"])
    assert r["status"] == "ok" and r["n_cases"] == "6", r
    assert r["converged"] == "unknown", r  # 2 epochs: too few validation points for the rule
    assert (0 <= v <= 1) if r["metric"] != "hd95" else (0 <= v <= math.hypot(32, 32) + 1e-9), r
    assert r["tta"] == ("1" if r["loss"] == "dice+ce +TTA" else "0"), r
    assert 0 < float(r["fraction"]) < 0.2
spec = {r["loss"]: r["spec"] for r in rows}
assert spec["staged"] == "0:ce; 1:ce+dice" and spec["dice+ce +TTA"] == "dice+ce"
# the per-case evaluation (no TTA) agrees with the trainer's own test metrics
for ds, slug in (("phantom 5%", "phantom_5_"), ("phantom 1%", "phantom_1_")):
    for seed in ("1", "2"):
        for loss, folder in (("ce", "ce"), ("dice+ce", "dice+ce"), ("staged", "staged")):
            m = json.load(open("%s/runs/%s/seed%s/%s/metrics.json" % (d, slug, seed, folder)))
            for t in m["test"]:
                for metric in ("dice", "hd95", "nsd", "recall", "precision"):
                    mine = [float(r["value"]) for r in rows if r["dataset"] == ds and r["seed"] == seed and r["loss"] == loss
                            and r["class"] == t["name"] and r["metric"] == metric][0]
                    assert abs(mine - t[metric]) <= 1e-12 * max(1, abs(mine)), (ds, seed, loss, t["name"], metric, mine, t[metric])
summ = list(csv.DictReader(open(d + "/summary.csv")))
assert open(d + "/summary.csv").readline().strip().split(",") == [
    "dataset", "loss", "class", "metric", "n_cases", "mean", "ci_lo", "ci_hi", "seed_std", "diff", "diff_ci_lo", "diff_ci_hi",
    "wilcoxon", "p", "p_holm", "rank"]
assert len(summ) == 2 * 4 * 3 * 6, len(summ)
for s in summ:
    assert float(s["ci_lo"]) <= float(s["mean"]) + 1e-12 <= float(s["ci_hi"]) + 2e-12, s
    if s["loss"] == "dice+ce":
        assert s["diff"] == "" and s["p"] == "" and s["p_holm"] == "", s
    else:
        assert 0 <= float(s["p"]) <= float(s["p_holm"]) <= 1, s
# p_holm: Holm's step-down over the 3 entries compared with the baseline on each
# (data set, class, metric), transcribed from statsmodels' multipletests("holm")
fam = {}
for s in summ:
    if s["p"] != "":
        fam.setdefault((s["dataset"], s["class"], s["metric"]), []).append(s)
assert len(fam) == 2 * 3 * 6 and all(len(v) == 3 for v in fam.values())
for v in fam.values():
    v.sort(key=lambda s: float(s["p"]))
    run = 0.0
    for i, s in enumerate(v):
        run = max(run, min(1.0, (len(v) - i) * float(s["p"])))
        assert abs(float(s["p_holm"]) - run) <= 1e-15, (s, run)
j = json.load(open(d + "/results.json"))
for k in ("format", "preset", "conventions", "datasets", "rows", "statistics", "ranking", "runs", "timing"):
    assert k in j, k
assert j["format"] == "segloss-bench-results" and len(j["rows"]) == len(rows) and len(j["statistics"]) == len(summ)
assert len(j["runs"]) == 16 and all(r["status"] == "ok" for r in j["runs"])
assert [x["name"] for x in j["datasets"]] == ["phantom 5%", "phantom 1%"] and all(x["sweep"] for x in j["datasets"])
assert j["datasets"][0]["fraction"] > j["datasets"][1]["fraction"] > 0
assert sorted(x["loss"] for x in j["ranking"]["overall"]) == sorted(spec)
assert [x["rank"] for x in j["ranking"]["datasets"]["phantom 1%"]] == [1, 2, 3, 4]
assert j["preset"]["name"] == "tiny" and j["preset"]["seeds"] == [1, 2]
md = open(d + "/report.md").read()
for h in ("# segloss benchmark: tiny", "## Ranking", "### phantom 5%", "## Per-class Dice and HD95", "## Imbalance sweep",
          "## Overlays", "## Runs", "## Conventions"):
    assert h in md, h
# each data set's own budget is named for it, not the first data set's for all
assert ("Network and budget per data set: depth 2, width 4, 3 epochs × 6 steps × batch 4 (phantom 5%); depth 2, "
        "width 4, 2 epochs × 6 steps × batch 4 (phantom 1%).") in md, md[:800]
for link in re.findall(r"\]\((overlays/[^)]+)\)", md):
    assert os.path.isfile(os.path.join(d, link)), link
html = open(d + "/report.html").read()
for s in ('id="ranking"', 'id="cd"', 'id="per-class"', 'id="curves"', 'id="sweep"', 'id="overlays"', 'id="runs"'):
    assert s in html, s
assert html.count("<svg") == 2 * 2 + 2 * 2 + 1 + 1, html.count("<svg")
assert html.count("<th>p (Holm)</th>") == 2, "no p (Holm) column in the per-data-set tables"
assert md.count("p (Holm)") >= 2 and "### Across data sets: Friedman test and critical difference" in md
# Friedman over the 2 data sets of the ranking score, against scipy's ranks and statistic
from scipy import stats as sst
import numpy as np
fr = j["friedman"]
names = sorted(spec)
score = np.array([[next(x["score"] for x in j["ranking"]["datasets"][ds] if x["loss"] == n) for n in names]
                  for ds in ("phantom 5%", "phantom 1%")])
ref = sst.friedmanchisquare(*(-score).T)
mr = dict(zip(names, np.apply_along_axis(sst.rankdata, 1, -score).mean(0)))
assert abs(fr["chi2"] - ref.statistic) <= 1e-12 and abs(fr["p"] - ref.pvalue) <= 1e-9, (fr, ref)
assert all(abs(x["mean_rank"] - mr[x["loss"]]) <= 1e-15 for x in fr["mean_ranks"]), (fr, mr)
assert abs(fr["cd"] - 2.569 * math.sqrt(4 * 5 / 12)) <= 1e-3 * math.sqrt(4 * 5 / 12), fr
assert html.count('class="cdgroup"') == len(fr["groups"]) >= 1, fr

assert html.count("data:image/png;base64,") == 20
assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
PYEOF

# ---- the same benchmark on one thread gives the same files
checks=$((checks + 1))
if $S bench --preset "$P" --out "$tmp/b" --threads 1 --quiet >/dev/null 2>"$tmp/b.err"; then
  cmp -s "$tmp/a/results.csv" "$tmp/b/results.csv" || fail "results.csv differs between 2 threads and 1 thread"
  cmp -s "$tmp/a/summary.csv" "$tmp/b/summary.csv" || fail "summary.csv differs between 2 threads and 1 thread"
  [ -s "$tmp/b.err" ] && fail "--quiet printed: $(head -2 "$tmp/b.err")"
else
  fail "one-thread benchmark: $(tail -3 "$tmp/b.err")"
fi

# ---- killed midway (SIGKILL), then resumed: nothing lost, nothing twice, same results
$S bench --preset "$P" --out "$tmp/c" --threads 1 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  n=$(ls "$tmp/c/results" 2>/dev/null | grep -c '\.json$')
  [ "$n" -ge 3 ] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
k=$(ls "$tmp/c/results" | grep -c '\.json$')
check "[ $k -ge 3 ] && [ $k -lt 16 ]" "the kill did not land midway ($k of 16 runs done)"
check "[ ! -e '$tmp/c/results.csv' ]" "a killed benchmark left a results.csv"
expect 1 "have no result; finish them with --resume" -- $S bench --out "$tmp/c" --report-only
expect 1 "holds a benchmark; --resume continues it" -- $S bench --preset "$P" --out "$tmp/c"
checks=$((checks + 1))
if $S bench --out "$tmp/c" --resume --threads 2 >"$tmp/c.out" 2>"$tmp/c.err"; then
  grep -q "^16 runs, $k already done" "$tmp/c.err" || fail "resume did not start from the $k finished runs: $(head -3 "$tmp/c.err")"
  [ "$(grep -c '^run ' "$tmp/c.err")" = $((16 - k)) ] || fail "resume ran $(grep -c '^run ' "$tmp/c.err") runs, not $((16 - k))"
  cmp -s "$tmp/a/results.csv" "$tmp/c/results.csv" || fail "results.csv after kill + resume differs from an uninterrupted run"
  cmp -s "$tmp/a/summary.csv" "$tmp/c/summary.csv" || fail "summary.csv after kill + resume differs"
  grep -q "16 runs ($k from earlier calls, 0 failed)" "$tmp/c.out" || fail "final line: $(tail -2 "$tmp/c.out")"
else
  fail "resume after SIGKILL: $(tail -3 "$tmp/c.err")"
fi
check "[ \$(ls '$tmp/c/results' | grep -c '\.json$') = 16 ]" "results/ after resume"

# ---- Ctrl-C: a clean stop that says how to continue
$S bench --preset "$P" --out "$tmp/i" --threads 1 >"$tmp/i.out" 2>"$tmp/i.err" &
pid=$!
for _ in $(seq 1 600); do
  [ "$(ls "$tmp/i/results" 2>/dev/null | grep -c '\.json$')" -ge 2 ] && break
  sleep 0.05
done
kill -INT "$pid"
wait "$pid"
rc=$?
checks=$((checks + 1))
[ "$rc" = 1 ] && grep -q "interrupted with .* runs done; continue with: segloss bench --out $tmp/i --resume" "$tmp/i.err" ||
  fail "Ctrl-C: exit $rc, $(tail -2 "$tmp/i.err")"
checks=$((checks + 1))
$S bench --out "$tmp/i" --resume --quiet >/dev/null 2>&1 && cmp -s "$tmp/a/results.csv" "$tmp/i/results.csv" ||
  fail "resume after Ctrl-C"

# ---- --report-only writes the report again from the result files
rm "$tmp/a/report.html" "$tmp/a/results.csv"
checks=$((checks + 1))
if $S bench --out "$tmp/a" --report-only >"$tmp/r.out" 2>&1; then
  cmp -s "$tmp/a/results.csv" "$tmp/b/results.csv" || fail "--report-only: results.csv differs"
  [ -s "$tmp/a/report.html" ] || fail "--report-only did not write report.html"
  grep -q "^Overall ranking" "$tmp/r.out" || fail "--report-only: no ranking"
else
  fail "--report-only: $(tail -3 "$tmp/r.out")"
fi

# ---- a preset that gains entries continues a finished benchmark: the new
# entries run (an INT8 entry reuses dice+ce's trained model: no trainer file
# is rewritten),
# the old results stay; an entry whose definition changed is refused
cp -r "$tmp/a" "$tmp/g"
touch "$tmp/g.mark"
sed 's|{"name": "staged", "loss": "0:ce; 1:ce+dice"}\]|{"name": "staged", "loss": "0:ce; 1:ce+dice"}, {"name": "dice+ce INT8", "loss": "dice+ce", "int8": true}]|' \
  "$P" >"$tmp/grown.json"
checks=$((checks + 1))
if $S bench --preset "$tmp/grown.json" --out "$tmp/g" --resume --threads 2 >"$tmp/g.out" 2>"$tmp/g.err"; then
  grep -q "^20 runs, 16 already done" "$tmp/g.err" || fail "grown preset: $(head -2 "$tmp/g.err")"
  [ "$(grep -c '^run .*INT8' "$tmp/g.err")" = 4 ] || fail "grown preset ran $(grep -c '^run ' "$tmp/g.err") runs, not the 4 INT8 ones"
  [ "$(ls "$tmp/g"/runs/*/*/*/model.bin | wc -l)" = 12 ] || fail "the INT8 entry trained a model"
  [ -z "$(find "$tmp/g/runs" -newer "$tmp/g.mark" -type f)" ] || fail "the INT8 entry trained dice+ce again"
  $PY - "$tmp/a" "$tmp/g" <<'PYEOF' || fail "INT8 results"
import csv, sys
a = list(csv.DictReader(open(sys.argv[1] + "/results.csv")))
g = list(csv.DictReader(open(sys.argv[2] + "/results.csv")))
old = [r for r in g if r["loss"] != "dice+ce INT8"]
assert old == a, "the old rows changed"
q = {(r["dataset"], r["seed"], r["class"], r["metric"]): float(r["value"]) for r in g if r["loss"] == "dice+ce INT8"}
f = {(r["dataset"], r["seed"], r["class"], r["metric"]): float(r["value"]) for r in g if r["loss"] == "dice+ce"}
assert len(q) == 2 * 2 * 3 * 6 and all(r["int8"] == "1" for r in g if r["loss"] == "dice+ce INT8")
assert all(r["int8"] == "0" for r in old)
dice = [k for k in q if k[2] == "mean" and k[3] == "dice"]
change = max(abs(q[k] - f[k]) for k in dice)
print("max INT8 - float mean Dice change: %.4f" % change)
assert change < 0.1, change
import glob, json
for fi in glob.glob(sys.argv[2] + "/results/*__dice+ce_INT8.json"):
    q8, fl = json.load(open(fi)), json.load(open(fi.replace("__dice+ce_INT8", "__dice+ce")))
    assert q8["curve"] == fl["curve"] and q8["num_params"] == fl["num_params"], fi + ": not the float model's curves"
    assert q8["seconds_train"] == 0, fi + ": trained"
PYEOF
  grep -Eq '"int8":[[:space:]]*true' "$tmp/g/preset.json" || fail "preset.json not updated"
else
  fail "grown preset: $(tail -3 "$tmp/g.err")"
fi
sed 's|"loss": "0:ce; 1:ce+dice"|"loss": "0:ce; 1:dice"|' "$tmp/grown.json" >"$tmp/changed.json"
expect 1 "entry 'staged' changed" -- $S bench --preset "$tmp/changed.json" --out "$tmp/g" --resume

# ---- --force replaces a benchmark
checks=$((checks + 1))
touch "$tmp/b/results/stale.tmp"
if $S bench --preset "$P" --out "$tmp/b" --force --quiet >/dev/null 2>"$tmp/f.err"; then
  [ ! -e "$tmp/b/results/stale.tmp" ] || fail "--force kept old files in results/"
  cmp -s "$tmp/a/results.csv" "$tmp/b/results.csv" || fail "--force: results differ"
else
  fail "--force: $(tail -3 "$tmp/f.err")"
fi

# ---- runs that diverge are failed runs, ranked last; the rest goes on
# (the second data set trains with SGD at lr 1e6 and no clipping: NaN scores)
sed 's/"sweep": true}$/"sweep": true, "train": {"optimizer": {"kind": "sgd", "lr": 1e6, "clip_norm": 0}}}/' "$P" |
  sed 's/"seeds": \[1, 2\]/"seeds": [1]/' >"$tmp/nan.json"
checks=$((checks + 1))
if $S bench --preset "$tmp/nan.json" --out "$tmp/n" --threads 2 >"$tmp/n.out" 2>"$tmp/n.err"; then
  [ "$(grep -c "phantom 1% / seed 1 / .*: failed: " "$tmp/n.err")" = 4 ] || fail "not 4 failed runs: $(tail -4 "$tmp/n.err")"
  grep -q "failed (4)" "$tmp/n.out" || fail "failed entries not ranked last: $(tail -5 "$tmp/n.out")"
  $PY - "$tmp/n" <<'PYEOF' || fail "results of failed runs"
import csv, json, sys
d = sys.argv[1]
j = json.load(open(d + "/results.json"))
failed = [r for r in j["runs"] if r["status"] == "failed"]
assert len(failed) == 4 and all(r["dataset"] == "phantom 1%" and "NaN" in r["message"] for r in failed), failed
rows = list(csv.DictReader(open(d + "/results.csv")))
bad = [r for r in rows if r["status"] == "failed"]
# every run of that data set failed: its classes are unknown, one row per run
assert len(bad) == 4 and all(r["value"] == "" and r["n_cases"] == "0" and r["class"] == "" for r in bad), len(bad)
assert len(rows) == 4 * 3 * 6 + 4, len(rows)
assert all(x["failed"] for x in j["ranking"]["datasets"]["phantom 1%"])
html = open(d + "/report.html").read()
assert "failed: " in html
# Friedman: the failed entries tie last on phantom 1% (all four: rank 2.5 each)
from scipy import stats as sst
import numpy as np
names = sorted(x["loss"] for x in j["ranking"]["datasets"]["phantom 5%"])
s5 = np.array([next(x["score"] for x in j["ranking"]["datasets"]["phantom 5%"] if x["loss"] == n) for n in names])
r5 = sst.rankdata(-s5)
ref = sst.friedmanchisquare(*np.array([r5, [2.5] * 4]).T)
fr = j["friedman"]
assert abs(fr["chi2"] - ref.statistic) <= 1e-12, (fr["chi2"], ref.statistic)
assert all(abs(x["mean_rank"] - (r5[names.index(x["loss"])] + 2.5) / 2) <= 1e-15 for x in fr["mean_ranks"]), fr
PYEOF
else
  fail "diverging benchmark: $(tail -3 "$tmp/n.err")"
fi

# ---- presets by name
mkdir -p "$tmp/presets"
cp "$P" "$tmp/presets/mine.json"
expect 1 "holds no benchmark to report on" -- env SEGLOSS_PRESETS="$tmp/presets" $S bench --preset mine --out "$tmp/x" --report-only
expect 1 "holds no benchmark to report on" -- $S bench --preset quick --out "$tmp/x" --report-only
expect 1 "holds no benchmark to report on" -- $S bench --preset full --out "$tmp/x" --report-only

# ---- refusals
expect 2 "--out DIR is required" -- $S bench --preset "$P"
expect 2 "unknown option '--fast'" -- $S bench --out "$tmp/x" --fast
expect 2 "unexpected argument 'quick'" -- $S bench quick --out "$tmp/x"
expect 2 "no preset 'nosuch'" -- $S bench --preset nosuch --out "$tmp/x"
expect 2 "neither a preset name nor a .json file" -- $S bench --preset 'a b' --out "$tmp/x"
expect 2 "--threads expects an integer" -- $S bench --out "$tmp/x" --threads -1
expect 2 "exclude each other" -- $S bench --out "$tmp/a" --resume --force
expect 1 "cannot read" -- $S bench --preset "$tmp/missing.json" --out "$tmp/x"
sed 's/"seeds"/"sedes"/' "$P" >"$tmp/bad.json"
expect 2 "unknown key sedes" -- $S bench --preset "$tmp/bad.json" --out "$tmp/x"
sed 's/"noise_level": 1, //; s/"n_test": 6}/"n_test": 6, "n_tset": 1}/' "$P" >"$tmp/bad2.json"
expect 2 "n_tset" -- $S bench --preset "$tmp/bad2.json" --out "$tmp/x"
write_preset "$tmp/other.json" "[1]" 0.01
expect 1 "was started with another preset" -- $S bench --preset "$tmp/other.json" --out "$tmp/a" --resume
mkdir -p "$tmp/foreign" && touch "$tmp/foreign/notes.txt"
expect 1 "is not empty and holds no segloss benchmark" -- $S bench --preset "$P" --out "$tmp/foreign"
check "[ -f '$tmp/foreign/notes.txt' ] && [ \$(ls '$tmp/foreign' | wc -l) = 1 ]" "a refused folder was changed"
expect 1 "holds no benchmark to report on" -- $S bench --preset "$P" --out "$tmp/fresh" --report-only
checks=$((checks + 1))
$S bench --help | grep -q "^usage: segloss bench" || fail "--help"

echo "bench CLI: $checks checks, $fails failed"
[ "$fails" = 0 ]
