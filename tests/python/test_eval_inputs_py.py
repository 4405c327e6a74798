"""segloss.metrics with the three other inputs of `segloss eval`, each
against the CLI's output on the same cases:
  - instance maps: EvalSet(instances=True) writes the CSV/JSON of
    `segloss eval --instances` byte for byte (folders), and arrays added in
    memory give the same values; the instance columns also against a
    transcription of the Kirillov et al. PQ (IoU > 0.5 unique matching);
  - several raters: evaluate_raters(pred, [[R1, R2, R3], ...]) gives the
    "labels" object of `segloss eval --gt R1,R2,R3` (per rater, mean, min,
    max, STAPLE-fused), value for value;
  - probabilities: evaluate_probabilities(prob, gt) gives the cases and the
    summary of `segloss eval --prob` (population std), value for value.
Bad inputs raise with a message naming the problem.
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

import pyref  # noqa: F401 (sets up the paths)
import slref

import segloss
from segloss import metrics as sm

chk = slref.Check("segloss.metrics inputs (instances, raters, probabilities)")
rng = np.random.default_rng(2026)
SEGLOSS = os.environ.get("SEGLOSS") or os.path.join(os.path.dirname(os.environ["SEGLOSS_LIB"]), "segloss")
TMP = tempfile.mkdtemp(prefix="sl_eval_inputs_py_")


def cli(args):
    r = subprocess.run([SEGLOSS] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("segloss %s failed (%d): %s" % (" ".join(map(str, args)), r.returncode, r.stderr.strip()))
    return r.stdout


def same_bytes(what, a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        x, y = fa.read(), fb.read()
    chk.true("%s: %s and %s differ (%d vs %d bytes)" % (what, a, b, len(x), len(y)), x == y and len(x) > 0)


def same_value(what, got, want, group):
    """exact equality (JSON carries 17 digits), NaN / null equal to NaN"""
    g = math.nan if got is None else float(got)
    w = math.nan if want is None else float(want)
    if math.isnan(g) and math.isnan(w):
        chk.close(what, 0.0, 0.0, rtol=0, atol=0, group=group)
    else:
        chk.close(what, g, w, rtol=0, atol=0, group=group)


def raises(what, exc, fn):
    try:
        fn()
    except exc as e:
        chk.true("%s: empty message" % what, len(str(e)) > 0)
        return str(e)
    chk.true("%s: no %s raised" % (what, exc.__name__), False)
    return ""


# ---- instance maps ------------------------------------------------------------------

def instance_case(shape):
    f = ndi.gaussian_filter(rng.standard_normal(shape), 1.4)
    lab, _ = ndi.label(f > 0.1)
    cut = np.zeros(shape, bool)
    cut[..., shape[-1] // 2:] = True
    g = np.where((lab % 2 == 0) & cut & (lab > 0), lab + 500, lab).astype(np.int32)   # touching instances
    f2 = f + 0.22 * ndi.gaussian_filter(rng.standard_normal(shape), 1.0)
    lab2, n2 = ndi.label(f2 > 0.1)
    perm = rng.permutation(n2 + 1) + 3
    perm[0] = 0
    return perm[lab2].astype(np.int64), g


def kirillov(pred, gt, smooth=1e-6):
    gids = [v for v in np.unique(gt) if v]
    pids = [v for v in np.unique(pred) if v]
    tp, s, mg, mp = 0, 0.0, set(), set()
    for a in gids:
        ga = gt == a
        for b in np.unique(pred[ga]):
            if b == 0:
                continue
            pb = pred == b
            inter = (ga & pb).sum()
            iou = inter / (ga.sum() + pb.sum() - inter)
            if iou > 0.5:
                tp, s = tp + 1, s + iou
                mg.add(a), mp.add(b)
    fp, fn = len(pids) - len(mp), len(gids) - len(mg)
    return s / (tp + fp / 2 + fn / 2 + smooth), tp, fp, fn


os.makedirs(os.path.join(TMP, "IP"))
os.makedirs(os.path.join(TMP, "IG"))
icases = []
for k in range(4):
    p, g = instance_case((10, 24, 22) if k % 2 else (48, 44))
    icases.append((p, g))
    np.save(os.path.join(TMP, "IP", "i%d.npy" % k), p)
    np.save(os.path.join(TMP, "IG", "i%d.npy" % k), g)
for opts, flags in [({}, []), ({"match": "greedy", "iou_threshold": 0.3}, ["--match", "greedy", "--iou-threshold", "0.3"])]:
    tag = "-".join(flags[1::2]) or "default"
    cli(["eval", "--instances", "--pred", os.path.join(TMP, "IP"), "--gt", os.path.join(TMP, "IG"), "--metrics",
         "dice,hd95,instance", "--csv", os.path.join(TMP, "cli-%s.csv" % tag), "--json",
         os.path.join(TMP, "cli-%s.json" % tag), "--threads", "2"] + flags)
    s = sm.EvalSet(instances=True, metrics="dice,hd95,instance", threads=2, **opts)
    s.add_paths(os.path.join(TMP, "IP"), os.path.join(TMP, "IG"))
    s.score()
    s.write(csv=os.path.join(TMP, "py-%s.csv" % tag), json=os.path.join(TMP, "py-%s.json" % tag))
    same_bytes("instances CSV (%s)" % tag, os.path.join(TMP, "py-%s.csv" % tag), os.path.join(TMP, "cli-%s.csv" % tag))
    same_bytes("instances JSON (%s)" % tag, os.path.join(TMP, "py-%s.json" % tag),
               os.path.join(TMP, "cli-%s.json" % tag))
    chk.true("instances: targets %s" % s.targets, s.targets == ["instances"])
# arrays in memory: the same values as the files
mem = sm.evaluate_cases([p for p, g in icases], [g for p, g in icases], case_ids=["i%d" % k for k in range(4)],
                        instances=True, metrics="dice,hd95,instance", threads=1)
files = sm.EvalSet(instances=True, metrics="dice,hd95,instance", threads=1)
files.add_paths(os.path.join(TMP, "IP"), os.path.join(TMP, "IG"))
files.score()
for c in mem.columns:
    a, b = mem.values(c), files.values(c)
    chk.true("instances in memory vs files, column %s" % c, np.array_equal(a, b, equal_nan=True))
for k, row in enumerate(r for r in mem.rows()):
    pq, tp, fp, fn = kirillov(*icases[k])
    chk.close("instances pq vs Kirillov transcription", row["pq"], pq, rtol=0, atol=1e-12, group="instances_pq")
    chk.true("instances counts case %d" % k, (row["inst_tp"], row["inst_fp"], row["inst_fn"]) == (tp, fp, fn))
    chk.true("instances case %d too easy" % k, tp >= 2 and fp + fn >= 1)
raises("instances with labels", segloss.Error, lambda: sm.EvalSet(instances=True, labels=[1]))
raises("instances with an ignore label", segloss.Error, lambda: sm.EvalSet(instances=True, ignore_label=9))
raises("unknown match", segloss.Error, lambda: sm.EvalSet(match="best"))

# ---- several raters -----------------------------------------------------------------

os.makedirs(os.path.join(TMP, "RP"))
rdirs = [os.path.join(TMP, "R%d" % j) for j in range(3)]
for d in rdirs:
    os.makedirs(d)
rpred, rgt = [], []
for k in range(3):
    shape = (9, 22, 20) if k == 1 else (40, 36)
    f = ndi.gaussian_filter(rng.standard_normal(shape), 1.5)
    base = np.where(f > 0.15, 2, np.where(f < -0.2, 1, 0))
    raters = []
    for j in range(3):
        fj = f + 0.12 * ndi.gaussian_filter(rng.standard_normal(shape), 1.0)
        raters.append(np.where(fj > 0.15, 2, np.where(fj < -0.2, 1, 0)).astype(np.uint8))
        np.save(os.path.join(rdirs[j], "r%d.npy" % k), raters[-1])
    fp_ = f + 0.3 * ndi.gaussian_filter(rng.standard_normal(shape), 1.0)
    p = np.where(fp_ > 0.15, 2, np.where(fp_ < -0.2, 1, 0)).astype(np.int16)
    np.save(os.path.join(TMP, "RP", "r%d.npy" % k), p)
    rpred.append(p)
    rgt.append(raters)
    del base
cli(["eval", "--pred", os.path.join(TMP, "RP"), "--gt", ",".join(rdirs), "--metrics", "dice,hd95,assd,nsd",
     "--json", os.path.join(TMP, "raters.json"), "--threads", "2"])
want = json.load(open(os.path.join(TMP, "raters.json")))["labels"]
got = sm.evaluate_raters(rpred, rgt, case_ids=["r%d" % k for k in range(3)], metrics="dice,hd95,assd,nsd", threads=2)
chk.true("raters: labels %s vs CLI %s" % (sorted(got["labels"]), sorted(want)), sorted(got["labels"]) == sorted(want))
for lab in want:
    for col, w in want[lab].items():
        g = got["labels"][lab][col]
        for key in ("mean", "min", "max", "fused"):
            same_value("raters %s %s %s" % (lab, col, key), g[key], w[key], "raters")
        for j in range(3):
            same_value("raters %s %s rater %d" % (lab, col, j + 1), g["per_rater"][j], w["per_rater"][j], "raters")
chk.true("raters: 3 sets + fused", len(got["raters"]) == 3 and got["fused"].cases == ["r0", "r1", "r2"])
# the fused reference is STAPLE: not simply one of the raters (else the test could not tell)
d = [got["labels"]["2"]["dice"]["fused"] != got["labels"]["2"]["dice"]["per_rater"][j] for j in range(3)]
chk.true("raters: the fused value equals a rater's", all(d))
raises("raters: one rater", segloss.Error, lambda: sm.evaluate_raters(rpred, [[r[0]] for r in rgt]))
raises("raters: uneven raters", segloss.Error, lambda: sm.evaluate_raters(rpred[:2], [rgt[0], rgt[1][:2]]))
raises("raters: other grids", segloss.Error,
       lambda: sm.evaluate_raters(rpred[:1], [[rgt[0][0], rgt[0][1][:-1]]]))

# ---- probabilities ------------------------------------------------------------------

os.makedirs(os.path.join(TMP, "PP"))
os.makedirs(os.path.join(TMP, "PG"))
probs, labs = [], []
for k in range(3):
    shape = (8, 14, 12) if k == 2 else (30, 26)
    z = rng.standard_normal((3,) + shape) * 2
    e = np.exp(z - z.max(axis=0))
    p = (e / e.sum(axis=0)).astype(np.float32)
    y = rng.integers(0, 3, shape).astype(np.uint8)
    if k == 1:
        y[y == 2] = 0          # a class without voxels: AUROC/AP NaN
    np.save(os.path.join(TMP, "PP", "p%d.npy" % k), p)
    np.save(os.path.join(TMP, "PG", "p%d.npy" % k), y)
    probs.append(p)
    labs.append(y)
for flags, kw in [([], {}), (["--bins", "7", "--no-ranking"], {"bins": 7, "ranking": False})]:
    cli(["eval", "--prob", os.path.join(TMP, "PP"), "--gt", os.path.join(TMP, "PG"), "--json",
         os.path.join(TMP, "prob.json")] + flags)
    want = json.load(open(os.path.join(TMP, "prob.json")))
    got = sm.evaluate_probabilities(probs, labs, case_ids=["p%d" % k for k in range(3)], **kw)
    tag = " ".join(flags) or "defaults"
    for wc, gc in zip(want["cases"], got["cases"]):
        chk.true("prob %s: case %s vs %s" % (tag, gc["case"], wc["case"]), gc["case"] == wc["case"] and gc["n"] == wc["n"])
        for f in sm._PROB_FIELDS:
            same_value("prob %s %s %s" % (tag, wc["case"], f), gc[f], wc[f], "probabilities")
        for a, b in zip(gc["classes"], wc["classes"]):
            for f in ("ece", "mce", "brier", "auroc", "ap"):
                same_value("prob %s %s class %s" % (tag, wc["case"], f), a[f], b[f], "probabilities")
    for f in sm._PROB_FIELDS:
        for key in ("n", "mean", "std"):
            same_value("prob %s summary %s %s" % (tag, f, key), got["summary"][f][key], want["summary"][f][key],
                       "probabilities")
bad = probs[0].copy()
bad[0, 3, 3] += 0.01
msg = raises("prob: sums off", segloss.Error, lambda: sm.evaluate_probabilities([bad], [labs[0]]))
chk.true("prob: the message names the sum (%s)" % msg, "sum" in msg)
raises("prob: case counts differ", segloss.Error, lambda: sm.evaluate_probabilities(probs, labs[:2]))

shutil.rmtree(TMP, ignore_errors=True)
chk.report()
