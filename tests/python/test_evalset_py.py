"""segloss.metrics.EvalSet / evaluate_cases: the Python binding of the
library's evaluation engine gives what `segloss eval` gives on the same
files (CSV and JSON byte for byte, every option of sl_eval_opts), arrays
added in memory score as the same arrays read from .npy files, and the
values, summaries, pooled values, ignore label, empty handling and regions
match numpy formulas written here (population std, numpy's median, global
Dice = 2 sum TP / (2 sum TP + sum FP + sum FN)). Errors carry the C message.
"""
# sanitized: skip (loads libsegloss.so through ctypes)
import json
import math
import os
import shutil
import subprocess
import tempfile

import numpy as np
from scipy import ndimage as ndi

import pyref
import slref

import segloss
from segloss import metrics as sm

chk = slref.Check("segloss.metrics.EvalSet")
rng = np.random.default_rng(1513)
FIX = os.path.join(pyref.ROOT, "tests", "cli", "fixtures")
SEGLOSS = os.environ.get("SEGLOSS") or os.path.join(os.path.dirname(os.environ["SEGLOSS_LIB"]), "segloss")
TMP = tempfile.mkdtemp(prefix="sl_evalset_py_")


def cli(args):
    r = subprocess.run([SEGLOSS] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("segloss %s failed (%d): %s" % (" ".join(map(str, args)), r.returncode, r.stderr.strip()))
    return r.stdout


def same_bytes(what, a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        x, y = fa.read(), fb.read()
    chk.true("%s: %s and %s differ (%d vs %d bytes)" % (what, a, b, len(x), len(y)), x == y and len(x) > 0)


def read_csv(path):
    with open(path) as f:
        head = f.readline().strip().split(",")
        return head, [line.strip().split(",") for line in f if line.strip()]


def csv_matches_rows(what, path, rows):
    """every CSV cell equals the binding's value (the CSV prints %.15g)"""
    head, lines = read_csv(path)
    chk.true("%s: %d CSV rows, %d binding rows" % (what, len(lines), len(rows)), len(lines) == len(rows))
    worst = 0.0
    for line, row in zip(lines, rows):
        for name, cell in zip(head, line):
            v = row[name]
            if name == "case" or name == "label":
                chk.true("%s: %s %r vs %r" % (what, name, cell, v), cell == str(v))
            elif isinstance(v, bool) or v is None:
                chk.true("%s: flag %s %r vs %r" % (what, name, cell, v), v is None or cell == str(int(v)))
            else:
                c = float(cell)
                if math.isnan(c) or math.isnan(v):
                    chk.true("%s: NaN in one of %s %r / %r" % (what, name, cell, v), math.isnan(c) and math.isnan(v))
                elif c != v:
                    worst = max(worst, abs(c - v) / max(abs(v), 1e-300))
    chk.true("%s: CSV cells vs binding values, max rel diff %.3g (tol 1e-14)" % (what, worst), worst <= 1e-14)
    print("  %s: CSV vs rows() max rel diff %.3g" % (what, worst))


def label_maps(shape, ncls=3):
    f = ndi.gaussian_filter(rng.standard_normal(shape), 1.5)
    g = np.digitize(f, np.quantile(f, [0.5, 0.75, 0.9][:ncls]))
    f2 = np.roll(f, 1, axis=0) + 0.4 * ndi.gaussian_filter(rng.standard_normal(shape), 1.0)
    p = np.digitize(f2, np.quantile(f2, [0.5, 0.78, 0.92][:ncls]))
    return p.astype(np.uint8), g.astype(np.int16)


def raises(what, exc, fn, contains):
    try:
        fn()
    except exc as ex:
        ok = isinstance(ex, segloss.Error) and contains in str(ex)
        chk.true("%s: %s %r (want a segloss.Error containing %r)" % (what, type(ex).__name__, str(ex), contains), ok)
        print("  %s -> %s: %s" % (what, type(ex).__name__, ex))
        return
    except Exception as ex:  # noqa: BLE001
        chk.true("%s: raised %s %r, not %s" % (what, type(ex).__name__, str(ex), exc.__name__), False)
        return
    chk.true("%s: no exception" % what, False)


def main():
    pred_dir, gt_dir = os.path.join(FIX, "eval", "pred"), os.path.join(FIX, "eval", "gt")

    # 1. the defaults on the fixtures: the CLI's CSV and JSON, byte for byte
    cli(["eval", "--pred", pred_dir, "--gt", gt_dir, "--csv", TMP + "/cli.csv", "--json", TMP + "/cli.json",
         "--threads", 2])
    s = sm.evaluate_cases(pred_dir, gt_dir, threads=2)
    s.write(csv=TMP + "/py.csv", json=TMP + "/py.json")
    same_bytes("defaults CSV", TMP + "/cli.csv", TMP + "/py.csv")
    same_bytes("defaults JSON", TMP + "/cli.json", TMP + "/py.json")
    csv_matches_rows("defaults", TMP + "/cli.csv", s.rows())
    with open(TMP + "/cli.json") as f:
        js = json.load(f)
    summ = s.summary()
    worst = 0.0
    for t, d in js["summary"].items():
        for col in s.columns:
            for k in ("n", "mean", "std", "median", "min", "max"):
                a, b = d[col][k], summ[t][col][k]
                worst = max(worst, 0.0 if a == b else abs(a - b))
        for col, v in d.get("pooled", {}).items():
            worst = max(worst, abs(v - summ[t]["pooled"][col]))
        for k in ("cases", "empty_pred", "empty_gt", "both_empty", "distance_substituted"):
            chk.true("summary count %s of %s" % (k, t), d[k] == summ[t][k])
    chk.true("defaults: summary() vs the CLI's JSON summary, max diff %.3g (exact expected)" % worst, worst == 0)
    print("  defaults: summary() vs CLI JSON max diff %.3g" % worst)
    chk.true("cases", s.cases == ["case1", "case2", "case3", "case4"])
    chk.true("describe names the conventions", "hd_mode=max" in s.describe() and "assd_mode=pooled" in s.describe())

    # 2. every option of sl_eval_opts, CLI vs binding on the same files
    opts_cli = ["--labels", "1,2", "--metrics", "dice,hd95,assd,nsd,confusion,autopet,counts",
                "--ignore-label", 7, "--empty", "nan", "--regions", "A=1,2;B=2", "--label-mean", "--beta", 2,
                "--hd-mode", "union", "--percentile", 90, "--assd-mode", "mean", "--nsd-tolerance", 1.5,
                "--empty-distance", 50, "--spacing", "2,1,0.5"]
    opts_py = dict(labels=[1, 2], metrics=["dice", "hd95", "assd", "nsd", "confusion", "autopet", "counts"],
                   ignore_label=7, empty="nan", regions={"A": [1, 2], "B": [2]}, label_mean=True, beta=2,
                   hd_mode="union", percentile=90, assd_mode="mean", nsd_tolerance=1.5, empty_distance=50,
                   spacing=(2, 1, 0.5))
    cli(["eval", "--pred", pred_dir, "--gt", gt_dir, "--csv", TMP + "/cli2.csv", "--json", TMP + "/cli2.json",
         "--threads", 1] + opts_cli)
    s2 = sm.evaluate_cases(pred_dir, gt_dir, threads=1, **opts_py)
    s2.write(csv=TMP + "/py2.csv", json=TMP + "/py2.json")
    same_bytes("options CSV", TMP + "/cli2.csv", TMP + "/py2.csv")
    same_bytes("options JSON", TMP + "/cli2.json", TMP + "/py2.json")
    csv_matches_rows("options", TMP + "/cli2.csv", s2.rows())
    chk.true("options: targets %s" % s2.targets, s2.targets == ["1", "2", "A", "B", "mean"])
    for surface in ("surfels",):
        cli(["eval", "--pred", pred_dir, "--gt", gt_dir, "--csv", TMP + "/cli3.csv", "--surface", "surfel",
             "--empty", "exclude", "--threads", 2])
        s3 = sm.evaluate_cases(pred_dir, gt_dir, surface=surface, empty="exclude", threads=2)
        s3.write(csv=TMP + "/py3.csv")
        same_bytes("surfels + exclude CSV", TMP + "/cli3.csv", TMP + "/py3.csv")

    # 3. shards and their merge give the unsharded outputs
    for k in (1, 2):
        sm.evaluate_cases(pred_dir, gt_dir, labels=[1, 2], shard="%d/2" % k, threads=1).write(
            json=TMP + "/shard%d.json" % k)
    full = sm.evaluate_cases(pred_dir, gt_dir, labels=[1, 2], threads=1)
    full.write(csv=TMP + "/full.csv", json=TMP + "/full.json")
    merged = sm.EvalSet.merge([TMP + "/shard2.json", TMP + "/shard1.json"])
    merged.write(csv=TMP + "/merged.csv", json=TMP + "/merged.json")
    same_bytes("merge CSV", TMP + "/full.csv", TMP + "/merged.csv")
    same_bytes("merge JSON", TMP + "/full.json", TMP + "/merged.json")
    chk.true("merged rows() equal the unsharded rows()",
             [{k: v for k, v in r.items() if k not in ("empty_pred", "empty_gt")} for r in merged.rows()]
             == [{k: v for k, v in r.items() if k not in ("empty_pred", "empty_gt")} for r in full.rows()])

    # 4. arrays in memory = the same arrays as .npy files (CLI), and numpy formulas
    shape, sp = (14, 16, 12), (2.5, 0.8, 1.1)
    pairs = [label_maps(shape) for _ in range(5)]
    pairs[3] = (pairs[3][0], np.where(pairs[3][1] == 3, 0, pairs[3][1]).astype(np.int16))   # label 3 absent in G
    pairs[4] = (np.where(pairs[4][0] == 2, 0, pairs[4][0]).astype(np.uint8), pairs[4][1])   # label 2 absent in P
    for d in ("ap", "ag"):
        os.makedirs(os.path.join(TMP, d), exist_ok=True)
    ids = ["c%d" % i for i in range(len(pairs))]
    for cid, (p, g) in zip(ids, pairs):
        np.save(os.path.join(TMP, "ap", cid + ".npy"), p)
        np.save(os.path.join(TMP, "ag", cid + ".npy"), g)
    cols = "dice,iou,precision,recall,hd,hd95,assd,nsd,counts,fbeta,accuracy"
    cli(["eval", "--pred", TMP + "/ap", "--gt", TMP + "/ag", "--csv", TMP + "/acli.csv", "--metrics", cols,
         "--spacing", ",".join(map(str, sp)), "--threads", 2])
    sa = sm.EvalSet(metrics=cols, threads=2)
    for cid, (p, g) in zip(ids, pairs):
        sa.add(p, g, spacing=sp, case_id=cid)
    sa.score()
    sa.write(csv=TMP + "/apy.csv")
    same_bytes("arrays vs .npy files CSV", TMP + "/acli.csv", TMP + "/apy.csv")
    # the set-level spacing overrides the per-case one, torch tensors are accepted
    import torch
    sb = sm.EvalSet(metrics=cols, spacing=sp, threads=1)
    for cid, (p, g) in zip(ids, pairs):
        sb.add(torch.from_numpy(p.astype(np.int64)), g, case_id=cid)
    sb.score(threads=1)
    chk.true("set spacing + tensors: same values",
             all(np.array_equal(sa.values(c), sb.values(c), equal_nan=True) for c in sa.columns))
    # one case through evaluate() (sl_metrics_eval) gives the set's per-case values
    rec = sm.evaluate(pairs[0][0], pairs[0][1], labels=[1, 2, 3], spacing=sp, metrics="dice,hd95,assd,nsd")
    worst = max(abs(rec[t][c] - sa.values(c)[0, t]) for t in range(3) for c in ("dice", "hd95", "assd", "nsd"))
    chk.true("evaluate() vs EvalSet case 0: max diff %.3g (exact expected)" % worst, worst == 0)

    # numpy: Dice per case, summary (population std, numpy median), pooled Dice, F2
    dice = np.array([[2 * np.sum((p == l) & (g == l)) / (np.sum(p == l) + np.sum(g == l))
                      if np.sum(p == l) + np.sum(g == l) else 1.0 for l in (1, 2, 3)] for p, g in pairs])
    chk.close("per-case Dice vs numpy", sa.values("dice"), dice, rtol=1e-14, atol=0)
    summ = sa.summary()
    for t, name in enumerate(sa.targets):
        v = dice[:, t]
        chk.close("summary Dice %s: mean/std(ddof=0)/median/min/max" % name,
                  [summ[name]["dice"][k] for k in ("mean", "std", "median", "min", "max")],
                  [v.mean(), v.std(), np.median(v), v.min(), v.max()], rtol=1e-13, atol=1e-15)
        tp = sum(np.sum((p == t + 1) & (g == t + 1)) for p, g in pairs)
        fp = sum(np.sum((p == t + 1) & (g != t + 1)) for p, g in pairs)
        fn = sum(np.sum((p != t + 1) & (g == t + 1)) for p, g in pairs)
        chk.close("pooled Dice %s = 2 sum TP / (2 sum TP + sum FP + sum FN)" % name,
                  [sa.pooled(name, "dice"), summ[name]["pooled"]["dice"]], [2 * tp / (2 * tp + fp + fn)] * 2,
                  rtol=1e-14, atol=0)
    p, g = pairs[1]
    tp, fp, fn = [np.sum((p == 1) & (g == 1)), np.sum((p == 1) & (g != 1)), np.sum((p != 1) & (g == 1))]
    chk.close("F-beta (beta 1 = Dice)", sa.values("fbeta")[1, 0], 2 * tp / (2 * tp + fp + fn), rtol=1e-14, atol=0)
    chk.close("accuracy", sa.values("accuracy")[1, 0], np.mean((p == 1) == (g == 1)), rtol=1e-14, atol=0)
    chk.true("label 3 absent from G in c3: empty_gt row",
             [r for r in sa.rows() if r["case"] == "c3" and r["label"] == 3][0]["empty_gt"])

    # ignore label (nnU-Net): voxels with G == 9 take part in nothing; empty nan; regions
    p, g = label_maps((30, 34), 2)
    g = g.astype(np.int16)
    g[:6] = 9
    si = sm.evaluate_cases([p], [g], labels=[1, 2], ignore_label=9, metrics="dice,counts", threads=1)
    keep = g != 9
    for t, l in enumerate((1, 2)):
        P, G = (p == l) & keep, (g == l) & keep
        want = [2 * np.sum(P & G) / (P.sum() + G.sum()), np.sum(P & G), np.sum(P & ~G), np.sum(~P & G),
                np.sum(~P & ~G & keep)]
        got = [si.values(c)[0, t] for c in ("dice", "tp", "fp", "fn", "tn")]
        chk.close("ignore_label=9, label %d: Dice, TP, FP, FN, TN vs numpy on the kept voxels" % l, got, want,
                  rtol=1e-14, atol=0)
    g2 = np.where(g == 2, 0, g).astype(np.int16)
    sn = sm.evaluate_cases([p, p], [g, g2], labels=[1, 2], empty="nan", metrics="dice,hd95,counts", threads=1)
    v = sn.values("dice")
    chk.true("empty='nan': the row whose G lacks label 2 is NaN (scores and distances), counts kept",
             math.isnan(v[1, 1]) and math.isnan(sn.values("hd95")[1, 1]) and sn.values("fp")[1, 1] == np.sum(p == 2))
    chk.true("empty='nan': NaN left out of the summary (n = 1)", sn.summary()["2"]["dice"]["n"] == 1)
    sr = sm.evaluate_cases([p], [g], regions="U=1,2", metrics="dice", threads=1)
    U, V = (p == 1) | (p == 2), (g == 1) | (g == 2)
    chk.close("region U=1,2: Dice of the unions", sr.values("dice")[0, 0], 2 * np.sum(U & V) / (U.sum() + V.sum()),
              rtol=1e-14, atol=0)
    chk.true("regions only: targets %s" % sr.targets, sr.targets == ["U"])

    # 4b. a set built in the parent (which ran parallel regions above) and scored in a
    # forked child: the thread count is resolved when scoring (1 there), so GNU OpenMP
    # cannot hang; the child writes the CLI's CSV
    import time
    pending = sm.EvalSet(threads=None)
    pending.add_paths(pred_dir, gt_dir)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            pending.score()
            pending.write(csv=TMP + "/child.csv")
            code = 0
        finally:
            os._exit(code)
    deadline, status = time.time() + 120, None
    while time.time() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        time.sleep(0.05)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    chk.true("forked child scored within 120 s and exited 0 (status %r)" % (status,), status == 0)
    if status == 0:
        same_bytes("forked child CSV", TMP + "/cli.csv", TMP + "/child.csv")

    # 5. errors: the C message, the mapped exception, no partial output
    raises("missing folder", OSError, lambda: sm.EvalSet().add_paths(TMP + "/nope", gt_dir), "nope")
    raises("unknown metric", ValueError, lambda: sm.EvalSet(metrics="dice,nonsense"), "nonsense")
    raises("shard 3/2", ValueError, lambda: sm.EvalSet(labels=[1], shard="3/2"), "shard")
    raises("overlapping region name twice", ValueError, lambda: sm.EvalSet(regions="A=1;A=2"), "A")
    raises("unknown empty mode", ValueError, lambda: sm.EvalSet(empty="skip"), "skip")
    raises("shape mismatch", ValueError, lambda: sm.EvalSet().add(np.zeros((3, 4)), np.zeros((4, 3))), "shape")
    raises("float labels", ValueError,
           lambda: sm.evaluate_cases([np.full((4, 4), 1.5)], [np.ones((4, 4))], threads=1), "")
    raises("results before score", RuntimeError, lambda: sm.EvalSet().rows(), "not scored")
    raises("score twice", RuntimeError, lambda: s.score(), "scored")
    raises("merge of a missing file", OSError, lambda: sm.EvalSet.merge([TMP + "/missing.json"]), "missing.json")
    with open(TMP + "/keep.csv", "w") as f:
        f.write("precious\n")
    raises("--csv naming a ground truth", ValueError,
           lambda: full.write(csv=os.path.join(gt_dir, "case3.npy")), "would be overwritten")
    os.makedirs(TMP + "/ro", exist_ok=True)
    raises("unwritable json beside a good csv", OSError,
           lambda: full.write(csv=TMP + "/keep.csv", json=TMP + "/no/such/dir/x.json"), "x.json")
    with open(TMP + "/keep.csv") as f:
        chk.true("a failed write left the existing CSV as it was", f.read() == "precious\n")
    bad = sm.EvalSet(threads=1)
    bad.add_paths(TMP + "/ap/c0.npy", os.path.join(gt_dir, "case1.nii.gz"))
    raises("grids that differ", ValueError, bad.score, "c")
    shutil.rmtree(TMP, ignore_errors=True)
    chk.report()


if __name__ == "__main__":
    main()
