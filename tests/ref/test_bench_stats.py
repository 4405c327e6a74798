"""The benchmark's statistics tables against numpy/scipy on fixed numbers.

A tiny benchmark is run for real (seconds), then every result file's
per-case metrics are replaced by fixed numbers (multiples of 1/64, so that
sums are exact and two entries can tie on the ranking score), and
`segloss bench --report-only` rebuilds the report from them. Every number of
results.json / summary.csv / results.csv is then recomputed here:
  per run     the mean over the test cases                         numpy
  y_i         the case's value averaged over the seeds             numpy
  mean        mean of y_i; seed_std = std (ddof=1) of the per-seed means
  CI          percentile bootstrap of the mean of y_i: equal to stats.h's
              sl_bootstrap_ci with the preset's seed (ctypes), and within
              Monte-Carlo error of a numpy bootstrap
  diff        mean of y_i - baseline_i, its bootstrap CI as above,
  wilcoxon/p  scipy.stats.wilcoxon(y, baseline) with its defaults
  ranking     by the "mean" class's Dice, ties by the smallest class's Dice,
              then by name; overall by the mean rank, ties by the mean score
Uses libsegloss.so through ctypes:
sanitized: skip
"""
import csv
import ctypes as C
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(__file__))
import slref  # noqa: E402

PRESET = {
    "name": "stats",
    "seeds": [1, 2, 3],
    "baseline": "dice+ce",
    "train": {
        "data_opts": {"height": 32, "width": 32, "n_train": 8, "n_val": 0, "n_test": 12},
        "network": {"depth": 2, "base_width": 4},
        "training": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 2},
    },
    "datasets": [
        {"name": "A", "data": "phantom", "data_opts": {"small_fraction": 0.05}},
        {"name": "B", "data": "phantom", "data_opts": {"small_fraction": 0.02, "seed": 3}},
    ],
    "losses": ["ce", "dice+ce", "tversky", {"name": "tversky +TTA", "loss": "tversky", "tta": True}],
    "evaluation": {"bootstrap": 3000, "ci_level": 0.9, "stats_seed": 11, "overlay_cases": 0},
}
METRICS = ["dice", "hd95", "nsd", "recall", "precision", "lesion_f1"]


def main():
    # scipy warns that the zero differences switch it to the normal approximation: that is the case under test
    warnings.filterwarnings("ignore", category=UserWarning)
    chk = slref.Check("bench statistics vs numpy/scipy")
    lib = slref.lib()
    dp = C.POINTER(C.c_double)
    tmp = tempfile.mkdtemp()
    preset = os.path.join(tmp, "p.json")
    json.dump(PRESET, open(preset, "w"))
    out = os.path.join(tmp, "b")
    slref.cli(["bench", "--preset", preset, "--out", out, "--quiet", "--threads", "2"], check=True)

    seeds, entries, datasets = PRESET["seeds"], [], [d["name"] for d in PRESET["datasets"]]
    for e in PRESET["losses"]:
        entries.append(e if isinstance(e, str) else e["name"])
    slug = {"ce": "ce", "dice+ce": "dice+ce", "tversky": "tversky", "tversky +TTA": "tversky_+TTA"}
    rng = np.random.default_rng(3)
    vals = {}  # (dataset, seed, entry) -> {class: {metric: array}}
    classes = None
    for d in datasets:
        for s in seeds:
            for e in entries:
                path = os.path.join(out, "results", "%s__seed%d__%s.json" % (d, s, slug[e]))
                r = json.load(open(path))
                classes = list(r["metrics"])
                n = r["cases"]
                m = {}
                for ci, c in enumerate(classes):
                    m[c] = {}
                    for mi, name in enumerate(METRICS):
                        scale = 40.0 if name == "hd95" else 1.0
                        # an entry effect, a class effect and case noise, on the 1/64 grid
                        base = 0.3 + 0.1 * entries.index(e) + 0.05 * ci + 0.01 * mi
                        v = np.round((base + 0.15 * rng.standard_normal(n)) * 64) / 64
                        m[c][name] = np.clip(v, 0, 1) * scale
                # ties on data set B: tversky and "tversky +TTA" have the same mean-class Dice
                # per case, with more small-class Dice for the TTA entry
                if d == "B" and e == "tversky +TTA":
                    ref = vals[(d, s, "tversky")]
                    m[classes[0]]["dice"] = ref[classes[0]]["dice"] - 1 / 64
                    m[classes[1]]["dice"] = ref[classes[1]]["dice"] + 1 / 64
                vals[(d, s, e)] = m
                for c in classes:
                    for name in METRICS:
                        r["metrics"][c][name] = [float(x) for x in m[c][name]]
                json.dump(r, open(path, "w"))
    # zero differences for the Wilcoxon test: ce equals the baseline on 4 cases of one class's NSD
    for d in datasets:
        for s in seeds:
            path = os.path.join(out, "results", "%s__seed%d__ce.json" % (d, s))
            r = json.load(open(path))
            base = vals[(d, s, "dice+ce")][classes[0]]["nsd"]
            vals[(d, s, "ce")][classes[0]]["nsd"][:4] = base[:4]
            r["metrics"][classes[0]]["nsd"] = [float(x) for x in vals[(d, s, "ce")][classes[0]]["nsd"]]
            json.dump(r, open(path, "w"))
    os.remove(os.path.join(out, "results.json"))
    rc, stdout, stderr = slref.cli(["bench", "--out", out, "--report-only"])
    chk.true("--report-only exit 0: " + stderr.strip(), rc == 0)
    res = json.load(open(os.path.join(out, "results.json")))
    stat = {(x["dataset"], x["loss"], x["class"], x["metric"]): x for x in res["statistics"]}
    summ = {(x["dataset"], x["loss"], x["class"], x["metric"]): x for x in csv.DictReader(open(os.path.join(out, "summary.csv")))}
    rows = {(x["dataset"], x["seed"], x["loss"], x["class"], x["metric"]): x for x in csv.DictReader(open(os.path.join(out, "results.csv")))}

    def per_case(d, e, c, name, s):
        m = vals[(d, s, e)]
        if c == "mean":
            return np.mean([m[k][name] for k in classes], axis=0)
        return m[c][name]

    def boot(v):
        a = np.ascontiguousarray(v, np.float64)
        lo, hi = C.c_double(), C.c_double()
        st = lib.sl_bootstrap_ci(a.ctypes.data_as(dp), C.c_int64(len(a)), C.c_int64(PRESET["evaluation"]["bootstrap"]),
                                 C.c_double(PRESET["evaluation"]["ci_level"]), C.c_uint64(PRESET["evaluation"]["stats_seed"]),
                                 C.byref(lo), C.byref(hi))
        assert st == 0
        return lo.value, hi.value

    nprng = np.random.default_rng(0)
    score = {}
    for d in datasets:
        for e in entries:
            for c in ["mean"] + classes:
                for name in METRICS:
                    key = (d, e, c, name)
                    x = stat[key]
                    per_seed = np.array([per_case(d, e, c, name, s) for s in seeds])
                    y = per_seed.mean(axis=0)
                    yb = np.array([per_case(d, "dice+ce", c, name, s) for s in seeds]).mean(axis=0)
                    for i, s in enumerate(seeds):
                        chk.close("results.csv %s" % (key,), float(rows[(d, str(s), e, c, name)]["value"]), per_seed[i].mean(),
                                  rtol=1e-14, atol=1e-14, group="per-run means")
                    chk.close("mean %s" % (key,), x["mean"], y.mean(), rtol=1e-14, atol=1e-14, group="mean")
                    chk.close("seed_std %s" % (key,), x["seed_std"], per_seed.mean(axis=1).std(ddof=1), rtol=1e-12, atol=1e-14,
                              group="seed std")
                    lo, hi = boot(y)
                    chk.close("ci %s" % (key,), [x["ci_lo"], x["ci_hi"]], [lo, hi], rtol=0, atol=0, group="CI = sl_bootstrap_ci")
                    se = y.std(ddof=1) / np.sqrt(len(y))
                    means = y[nprng.integers(0, len(y), (20000, len(y)))].mean(axis=1)
                    ref_ci = np.percentile(means, [5, 95])
                    chk.close("ci vs numpy %s" % (key,), [x["ci_lo"], x["ci_hi"]], ref_ci, rtol=0, atol=0.25 * se + 1e-12,
                              group="CI vs numpy bootstrap")
                    chk.close("summary.csv mean %s" % (key,), float(summ[key]["mean"]), x["mean"], rtol=1e-15, atol=0,
                              group="summary.csv = results.json")
                    if e == "dice+ce":
                        chk.true("baseline has no difference %s" % (key,), x["diff"] is None and x["p"] is None)
                        continue
                    diff = y - yb
                    chk.close("diff %s" % (key,), x["diff"], diff.mean(), rtol=1e-12, atol=1e-14, group="paired difference")
                    lo, hi = boot(diff)
                    chk.close("diff ci %s" % (key,), [x["diff_ci_lo"], x["diff_ci_hi"]], [lo, hi], rtol=0, atol=0,
                              group="diff CI = sl_bootstrap_ci")
                    ref = stats.wilcoxon(y, yb)
                    chk.close("wilcoxon %s" % (key,), x["wilcoxon"], ref.statistic, rtol=1e-12, atol=1e-12, group="wilcoxon statistic")
                    chk.close("p %s" % (key,), x["p"], ref.pvalue, rtol=1e-9, atol=1e-12, group="wilcoxon p")
            small = classes[-1]
            score[(d, e)] = (np.mean([per_case(d, e, "mean", "dice", s) for s in seeds]),
                             np.mean([per_case(d, e, small, "dice", s) for s in seeds]))
    # the zero differences were there (scipy's wilcox zero_method drops them)
    chk.true("some nsd differences are zero", any((np.array([per_case("A", "ce", classes[0], "nsd", s) for s in seeds]).mean(0) ==
                                                  np.array([per_case("A", "dice+ce", classes[0], "nsd", s) for s in seeds]).mean(0)).tolist()))

    # rankings
    ranks = {}
    for d in datasets:
        order = sorted(entries, key=lambda e: (-score[(d, e)][0], -score[(d, e)][1], e))
        got = [x["loss"] for x in res["ranking"]["datasets"][d]]
        chk.true("ranking of %s: %s vs %s" % (d, got, order), got == order)
        for k, e in enumerate(order):
            ranks[(d, e)] = k + 1
    chk.true("data set B has a tie on the score, broken by the small class",
             score[("B", "tversky")][0] == score[("B", "tversky +TTA")][0])
    mean_rank = {e: np.mean([ranks[(d, e)] for d in datasets]) for e in entries}
    mean_score = {e: np.mean([score[(d, e)][0] for d in datasets]) for e in entries}
    overall = sorted(entries, key=lambda e: (mean_rank[e], -mean_score[e], e))
    got = [x["loss"] for x in res["ranking"]["overall"]]
    chk.true("overall ranking %s vs %s" % (got, overall), got == overall)
    for x in res["ranking"]["overall"]:
        chk.close("mean rank %s" % x["loss"], x["mean_rank"], mean_rank[x["loss"]], rtol=0, atol=1e-15, group="mean rank")
    subprocess.run(["rm", "-rf", tmp])
    chk.report()


if __name__ == "__main__":
    main()
