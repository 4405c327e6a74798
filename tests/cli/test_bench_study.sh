#!/usr/bin/env bash
# segloss bench's convergence column and budget study end to end on a tiny
# preset (one 32x32 phantom, one seed, 3 losses and a staged schedule at 1x
# and 2x the epochs):
# the `converged` column of results.csv (and results.json) equals the rule
# of docs/benchmark.md recomputed here from each run's recorded validation
# curve with numpy.polyfit; the longer runs really trained twice the epochs;
# the report's Kendall tau per data set and overall equals
# scipy.stats.kendalltau of the scores in results.json, and its swapped
# pairs are the discordant ones; --report-only rebuilds the same report;
# a finished benchmark grows a study with --resume, training only the new
# runs; the staged entry's @2x run trains the schedule stretched (its stage
# starts at twice the epoch, as its config.json and log.csv record); a bad
# budget_study is refused in one line with nothing written.
set -u
. "$(dirname "$0")/lib.sh"

cat >"$tmp/study.json" <<'EOF'
{
  "name": "study",
  "seeds": [1],
  "baseline": "dice+ce",
  "train": {
    "data_opts": {"height": 32, "width": 32, "n_train": 12, "n_val": 4, "n_test": 6},
    "network": {"depth": 2, "base_width": 4},
    "optimizer": {"lr": 0.01},
    "training": {"epochs": 8, "steps_per_epoch": 2, "batch_size": 4}
  },
  "datasets": [{"name": "phantom 5%", "data": "phantom", "data_opts": {"small_fraction": 0.05}}],
  "losses": ["ce", "dice+ce", "dice(batch=true)", {"name": "staged", "loss": "0:ce; 4:dice+ce"}],
  "budget_study": [1, 2],
  "evaluation": {"bootstrap": 100, "overlay_cases": 0}
}
EOF
# the preset without its study first; then the study grows the finished benchmark by
# the @2x entries alone (--resume), as it would grow the full preset's
grep -v '"budget_study"' "$tmp/study.json" >"$tmp/base.json"
run "benchmark without the study" $S bench --preset "$tmp/base.json" --out "$tmp/a" --threads 2 --quiet
check "[ \$(ls '$tmp/a/results' | grep -c '\.json$') = 4 ]" "results/ does not hold 4 result files"
sleep 1 && touch "$tmp/marker" && sleep 1
run "study benchmark" $S bench --preset "$tmp/study.json" --out "$tmp/a" --threads 2 --resume --quiet
check "[ \$(ls '$tmp/a/results' | grep -c '\.json$') = 8 ]" "results/ does not hold 8 result files"
check "[ \"\$(cd '$tmp/a/results' && find . -name '*.json' -newer '$tmp/marker' | grep -vc '__2x\.json$')\" = 0 ]" \
  "--resume with the study rewrote a 1x result"
check "grep -q budget_study '$tmp/a/preset.json'" "preset.json does not hold the study after --resume"
checks=$((checks + 1))
$PY - "$tmp/a" <<'PYEOF' || fail "convergence column or budget study"
import csv, json, math, sys, glob, re
import numpy as np
from scipy.stats import kendalltau
d = sys.argv[1]

def rule(v):
    """docs/benchmark.md: the last ceil(n/4) evaluations; best within 0.01 of the
    run's best and the least-squares line rising by less than 0.01; n < 8: unknown."""
    n = len(v)
    if n < 8 or not all(map(math.isfinite, v)):
        return "unknown"
    w = -(-n // 4)
    last = v[n - w:]
    rise = np.polyfit(np.arange(w), last, 1)[0] * (w - 1)
    return "yes" if max(last) >= max(v) - 0.01 and rise < 0.01 else "no"

ref, epochs = {}, {}
for f in glob.glob(d + "/results/*.json"):
    r = json.load(open(f))
    cls = list(r["curve"]["val_dice"])
    curve = [float(np.mean([r["curve"]["val_dice"][c][i] for c in cls])) for i in range(len(r["curve"]["loss"]))]
    ref[r["entry"]] = rule(curve)
    epochs[r["entry"]] = len(curve)
assert sorted(epochs.items()) == sorted({"ce": 8, "dice+ce": 8, "dice(batch=true)": 8, "staged": 8, "ce @2x": 16,
                                         "dice+ce @2x": 16, "dice(batch=true) @2x": 16, "staged @2x": 16}.items()), epochs
rows = list(csv.DictReader(open(d + "/results.csv")))
assert list(rows[0])[-1] == "converged" and len(rows) == 8 * 3 * 6, (list(rows[0]), len(rows))
for r in rows:
    assert r["converged"] == ref[r["loss"]], (r["loss"], r["converged"], ref[r["loss"]])
j = json.load(open(d + "/results.json"))
for r in j["runs"]:
    assert r["converged"] == ref[r["loss"]] and r["budget"] == (2 if r["loss"].endswith(" @2x") else 1), r
print("converged:", ref)

# the report's tau and swaps, against scipy on the scores of results.json
base = ["ce", "dice+ce", "dice(batch=true)", "staged"]
sc = {x["loss"]: x["score"] for x in j["ranking"]["datasets"]["phantom 5%"]}
ms = {x["loss"]: x["mean_score"] for x in j["ranking"]["overall"]}
md = open(d + "/report.md").read()
assert "## Convergence" in md and "## Budget study" in md and "### 1x against 2x" in md, md[-2000:]
for name, s in (("phantom 5%", sc), ("overall", ms)):
    x = [s[b] for b in base]
    y = [s[b + " @2x"] for b in base]
    tau = kendalltau(x, y).statistic
    disc = sum(1 for a in range(len(base)) for b in range(len(base)) if x[a] > x[b] and y[a] < y[b])
    m = re.search(r"^\| " + re.escape(name) + r" \| (\S+) \| (\d+) \| (.*) \|$", md, re.M)
    assert m, name
    got = float(m.group(1)) if m.group(1) != "-" else float("nan")
    assert (math.isnan(tau) and math.isnan(got)) or abs(got - tau) <= 5e-4, (name, got, tau)
    assert int(m.group(2)) == disc and (m.group(3) == "none") == (disc == 0), (name, m.groups(), disc)
    print(f"{name}: tau {got} (scipy {tau:.6f}, |diff| {abs(got - tau) if not math.isnan(tau) else 0:.2g}), {disc} swapped")
html = open(d + "/report.html").read()
assert 'id="budget"' in html and 'id="convergence"' in html

# the schedule is stretched with the budget: stage 2 from epoch 4 at 1x, from epoch 8 at 2x
for slug, start, spec in (("staged", 4, "0:ce; 4:dice+ce"), ("staged__2x", 8, "0:ce; 8:dice+ce")):
    run = glob.glob(d + "/runs/*/seed1/" + slug)
    assert len(run) == 1, run
    cfg = json.load(open(run[0] + "/config.json"))
    assert cfg["loss"] == spec, (slug, cfg["loss"])
    stages = [int(r["stage"]) for r in csv.DictReader(open(run[0] + "/log.csv"))]
    assert stages == [0] * start + [1] * start, (slug, stages)
    print(f"{slug}: config loss '{cfg['loss']}', stages per epoch {stages}")
PYEOF

# the report rebuilt from the results alone (preset.json holds the study) is the same
study() { sed -n '/^## Convergence/,/^## Per-class/p' "$1"; }
study "$tmp/a/report.md" >"$tmp/study1.md"
cp "$tmp/a/results.csv" "$tmp/results1.csv"
run "--report-only" $S bench --out "$tmp/a" --report-only --quiet
check "[ -s '$tmp/study1.md' ] && study '$tmp/a/report.md' | cmp -s - '$tmp/study1.md'" "--report-only: the study sections differ"
check "cmp -s '$tmp/a/results.csv' '$tmp/results1.csv'" "--report-only: results.csv differs"

# refusals: one line, nothing written
sed 's/"budget_study": \[1, 2\]/"budget_study": [2, 4]/' "$tmp/study.json" >"$tmp/bad.json"
expect 2 "budget_study must start with 1" -- $S bench --preset "$tmp/bad.json" --out "$tmp/x"
sed 's/"budget_study": \[1, 2\]/"budget_study": [1, 1.5]/' "$tmp/study.json" >"$tmp/bad2.json"
expect 2 "budget_study[1] must be an integer" -- $S bench --preset "$tmp/bad2.json" --out "$tmp/x"
check "[ ! -e '$tmp/x' ]" "a refused preset left an output folder"

echo "bench_study: $checks checks, $fails failed"
[ $fails -eq 0 ]
