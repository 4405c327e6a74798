#!/usr/bin/env bash
# segloss bench's weight search (docs/benchmark.md, "Searching compound
# weights") end to end on a tiny preset (a 32x32 phantom, 2 seeds, the
# baseline and two searched entries: a*dice+b*ce random n=4 eta=2, and
# gdice+c*boundary on a grid of 3, eta 3). Checked from the files alone,
# in Python (standard library): the number of trainings per rung follows
# n, n/eta, ...; each rung's survivors are the best of the rung before by
# validation Dice; the chosen candidate is the best of the last rung; grid
# and random candidates as documented; the last rung's score of the chosen
# candidate equals the first seed's final validation Dice (the same
# training); results.csv's spec column, results.json's "searches",
# report.md and report.html carry the choice. Then: a second benchmark in
# another folder with another thread count gives the same outcome and
# results (deterministic); --resume of a finished benchmark redoes no
# search; an interrupted search (its last rung cut from the file)
# continues and chooses the same; the tasks (--run K) count a searched
# entry as one task and give the serial results; bad search specs get one
# line each, exit 2, nothing written.
set -u
. "$(dirname "$0")/lib.sh"

cat >"$tmp/p.json" <<'EOF'
{
  "name": "wsearch",
  "seeds": [1, 2],
  "baseline": "dice+ce",
  "train": {
    "data_opts": {"height": 32, "width": 32, "n_train": 8, "n_val": 4, "n_test": 4},
    "network": {"depth": 2, "base_width": 4},
    "optimizer": {"lr": 0.01},
    "training": {"epochs": 4, "steps_per_epoch": 2, "batch_size": 4}
  },
  "datasets": [{"name": "phantom 5%", "data": "phantom", "data_opts": {"small_fraction": 0.05}}],
  "losses": ["dice+ce",
    {"name": "a*dice+b*ce (searched)", "loss": "a*dice+b*ce",
     "search": {"a": [0.1, 10, "log"], "b": [0.1, 10, "log"], "method": "random", "n": 4, "eta": 2, "min_epochs": 1}},
    {"name": "gdice+c*boundary (searched)", "loss": "gdice+c*boundary",
     "search": {"c": [0, 1], "method": "grid", "n": 3, "eta": 3}}],
  "evaluation": {"bootstrap": 50, "overlay_cases": 0}
}
EOF
run "benchmark" $S bench --preset "$tmp/p.json" --out "$tmp/a" --threads 2 --quiet

checks=$((checks + 1))
$PY - "$tmp/a" <<'PYEOF' || fail "the search's outcome against its own recorded scores"
import csv, glob, json, math, sys
d = sys.argv[1]
preset = json.load(open(d + "/preset.json"))
E = preset["datasets"][0]["train"]["training"]["epochs"]
files = sorted(glob.glob(d + "/results/*__search__*.json"))
assert len(files) == 2, files
rank = lambda scores: sorted(scores, key=lambda kv: (math.isnan(kv[1]), -kv[1] if not math.isnan(kv[1]) else 0, kv[0]))
chosen = {}
for f in files:
    o = json.load(open(f))
    s = o["search"]
    n, eta = s["n"], s["eta"]
    assert o["status"] == "done" and o["test_split_read"] is False, o["status"]
    # schedule: n, n // eta, ... while > 1; the last rung at the preset's epochs, each earlier eta times fewer
    keep = []
    m = n
    while m > 1:
        keep.append(m)
        m = max(1, m // eta)
    eps = [max(s["min_epochs"], E // eta ** (len(keep) - 1 - r)) for r in range(len(keep))]
    assert [r["candidates"] for r in o["rungs"]] == keep, (o["rungs"], keep)
    assert [len(r["trained"]) for r in o["rungs"]] == keep, [r["trained"] for r in o["rungs"]]
    assert [r["epochs"] for r in o["rungs"]] == eps, ([r["epochs"] for r in o["rungs"]], eps)
    # each rung trains the best keep[r] of the rung before (higher Dice first, ties by index)
    prev = list(range(n))
    for r, rung in enumerate(o["rungs"]):
        assert sorted(rung["trained"]) == sorted(prev[:keep[r]]), (r, rung["trained"], prev)
        sc = [(k, v if v is not None else float("nan")) for k, v in zip(rung["trained"], rung["val_dice"])]
        prev = [k for k, _ in rank(sc)]
    assert o["chosen"] == prev[0], (o["chosen"], prev)
    last = dict(zip(o["rungs"][-1]["trained"], o["rungs"][-1]["val_dice"]))
    assert all(last[o["chosen"]] >= v for v in last.values()), last
    c = o["candidates"][o["chosen"]]
    assert o["chosen_spec"] == c["spec"] and o["chosen_weights"] == c["weights"], o["chosen_spec"]
    # the candidates' specs are the free spec with the weights substituted ("%.3g")
    for c in o["candidates"]:
        spec = o["loss"]
        for k, v in c["weights"].items():
            spec = spec.replace(k + "*", "%.3g*" % v)
        assert spec == c["spec"], (spec, c["spec"])
    if s["method"] == "grid":
        lo, hi, _ = s["c"]
        want = [float("%.3g" % (lo + (hi - lo) * k / (n - 1))) for k in range(n)]
        assert [c["weights"]["c"] for c in o["candidates"]] == want, o["candidates"]
    else:
        for c in o["candidates"]:
            for k, v in c["weights"].items():
                assert s[k][0] <= v <= s[k][1] and v == float("%.3g" % v), (k, v)
        assert len({c["spec"] for c in o["candidates"]}) == n, "random candidates repeat"
    # the last rung's training of the chosen candidate is the first seed's run
    run = json.load(open(d + "/results/phantom_5___seed1__%s.json" % f.split("__search__")[1][:-5]))
    vd = run["curve"]["val_dice"]
    final = sum(vd[k][-1] for k in vd) / len(vd)
    assert abs(final - last[o["chosen"]]) <= 1e-12, (final, last[o["chosen"]])
    for seed in (1, 2):
        cfg = json.load(open(glob.glob(d + "/runs/phantom_5_/seed%d/%s/config.json" % (seed, f.split("__search__")[1][:-5]))[0]))
        assert cfg["loss"] == o["chosen_spec"], (cfg["loss"], o["chosen_spec"])
    assert o["cpu_seconds"] > 0 and o["seconds"] > 0, o
    chosen[o["entry"]] = o
    print("%s: rungs %s, epochs %s, chosen %d %s, |val - seed1 val| %.1e, CPU %.2f s" %
          (o["entry"], keep, eps, o["chosen"], o["chosen_spec"], abs(final - last[o["chosen"]]), o["cpu_seconds"]))
rows = list(csv.DictReader(open(d + "/results.csv")))
for r in rows:
    want = chosen[r["loss"]]["chosen_spec"] if r["loss"] in chosen else r["loss"]
    assert r["spec"] == want, (r["loss"], r["spec"], want)
j = json.load(open(d + "/results.json"))
assert {s["entry"]: s["chosen_spec"] for s in j["searches"]} == {k: v["chosen_spec"] for k, v in chosen.items()}, j["searches"]
assert {r["spec"] for r in j["rows"] if r["loss"] in chosen} == {v["chosen_spec"] for v in chosen.values()}
md = open(d + "/report.md").read()
assert "## Weight search" in md and "the trainer did not load the test split during the search" in md, "report.md"
for v in chosen.values():
    assert "`%s`" % v["chosen_spec"] in md and "search CPU %.1f s" % v["cpu_seconds"] in md, v["chosen_spec"]
html = open(d + "/report.html").read()
assert '<section id="search">' in html and "did not load the test split" in html, "report.html"
PYEOF

# determinism: another folder, one thread: the same outcomes and results
run "benchmark again" $S bench --preset "$tmp/p.json" --out "$tmp/b" --threads 1 --quiet
check "cmp -s '$tmp/a/results.csv' '$tmp/b/results.csv' && cmp -s '$tmp/a/summary.csv' '$tmp/b/summary.csv'" "a rerun changed results.csv or summary.csv"
for f in "$tmp"/a/results/*__search__*.json; do
  check "diff <(grep -v seconds '$f') <(grep -v seconds '$tmp/b/results/${f##*/}') >/dev/null" "a rerun changed ${f##*/}"
done

# --resume of a finished benchmark whose searched runs were removed: the runs
# train again, the search is read back (its file, CPU time included, unchanged)
srch="$tmp/a/results/phantom_5___search__a_dice+b_ce__searched_.json"
cp "$srch" "$tmp/srch.json"
rm "$tmp"/a/results/phantom_5___seed*__a_dice+b_ce__searched_.json
rm -r "$tmp/a/runs/phantom_5_/seed1/a_dice+b_ce__searched_" "$tmp/a/runs/phantom_5_/seed2/a_dice+b_ce__searched_"
run "resume" $S bench --preset "$tmp/p.json" --out "$tmp/a" --resume --quiet
check "cmp -s '$srch' '$tmp/srch.json'" "--resume redid a finished search"
check "cmp -s '$tmp/a/results.csv' '$tmp/b/results.csv'" "--resume changed results.csv"

# an interrupted search (the file of one whose last rung had not trained):
# --resume trains the last rung only and chooses the same
$PY - "$srch" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))
o["status"] = "running"
o["rungs"][-1]["trained"], o["rungs"][-1]["val_dice"] = [], []
for k in ("chosen", "chosen_weights", "chosen_spec"):
    del o[k]
o["cpu_seconds"] = 0.0
json.dump(o, open(sys.argv[1], "w"))
PYEOF
rm "$tmp"/a/results/phantom_5___seed*__a_dice+b_ce__searched_.json
rm -r "$tmp/a/runs/phantom_5_/seed1/a_dice+b_ce__searched_" "$tmp/a/runs/phantom_5_/seed2/a_dice+b_ce__searched_"
run "resume an interrupted search" $S bench --preset "$tmp/p.json" --out "$tmp/a" --resume --quiet
check "diff <(grep -v seconds '$srch') <(grep -v seconds '$tmp/srch.json') >/dev/null" "the continued search differs"
check "cmp -s '$tmp/a/results.csv' '$tmp/b/results.csv'" "the continued search changed results.csv"

# tasks: seed 1's dice+ce, each searched entry (all seeds), seed 2's dice+ce
run "emit" $S bench --preset "$tmp/p.json" --out "$tmp/c" --emit-slurm "$tmp/job.sbatch"
check "grep -q '^#SBATCH --array=0-3$' '$tmp/job.sbatch'" "tasks: $(grep array "$tmp/job.sbatch")"
for k in 3 0 2 1; do run "task $k" $S bench --preset "$tmp/p.json" --out "$tmp/c" --run $k --quiet; done
check "grep -q '^task 1: 2 runs done' '$tmp/out'" "task 1 is not the first searched entry's two runs: $(cat "$tmp/out")"
run "report of the tasks" $S bench --out "$tmp/c" --report-only --quiet
check "cmp -s '$tmp/c/results.csv' '$tmp/b/results.csv' && cmp -s '$tmp/c/summary.csv' '$tmp/b/summary.csv'" "tasks differ from a serial run"

# bad search specs: one line, exit 2, no folder
bad() {  # bad NEEDLE ENTRY_JSON
  $PY - "$tmp/p.json" "$2" >"$tmp/bad.json" <<'PYEOF'
import json, sys
p = json.load(open(sys.argv[1]))
p["losses"][1] = json.loads(sys.argv[2])
print(json.dumps(p))
PYEOF
  expect 2 "$1" -- $S bench --preset "$tmp/bad.json" --out "$tmp/bad" --quiet
  check "[ ! -e '$tmp/bad' ]" "a refused preset created its folder ($1)"
}
bad "free weight 'b' of the spec has no range" '{"name": "x", "loss": "a*dice+b*ce", "search": {"a": [0.1, 10]}}'
bad "free weight 'a' has no range" '"a*dice+ce"'
bad "has no free weight 'c'" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [0.1, 10], "c": [1, 2]}}'
bad "unknown key losses[1].search.a-b" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [1, 2], "a-b": 1}}'
bad "search: the spec has no free weight" '{"name": "x", "loss": "dice+ce", "search": {}}'
bad "search must be an object" '{"name": "x", "loss": "a*dice+ce", "search": [1]}'
bad "search.a = [10, 0.1] is not a range" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [10, 0.1]}}'
bad "search.a = [0, 1] is not a range 0 < lo" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [0, 1, "log"]}}'
bad "search.a = [-1, 1] is not a range" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [-1, 1]}}'
bad "scale 'cubic' is not" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [1, 2, "cubic"]}}'
bad "search.a must be [lo, hi]" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [1, "2"]}}'
bad "search.method must be" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [1, 2], "method": "bayes"}}'
bad "search.n must be an integer in [2, 64]" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [1, 2], "n": 65}}'
bad "search.eta must be an integer in [2, 4]" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [1, 2], "n": 4, "eta": 5}}'
bad "search.min_epochs must be" '{"name": "x", "loss": "a*dice+ce", "search": {"a": [1, 2], "min_epochs": 0}}'
bad "search.n = 5 is not m^2" '{"name": "x", "loss": "a*dice+b*ce", "search": {"a": [1, 2], "b": [1, 2], "method": "grid", "n": 5}}'
bad "candidate 0 (" '{"name": "x", "loss": "a*dice(bogus=1)+ce", "search": {"a": [1, 2]}}'

echo "test_wsearch: $checks checks, $fails failed"
[ $fails -eq 0 ]
