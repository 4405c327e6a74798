"""segloss eval's aggregation options and new metric families against
references written here (Debian's /usr/bin/python3, numpy + scipy):

- the confusion-matrix family: transcriptions of scikit-learn's
  definitions (accuracy_score, balanced_accuracy_score, fbeta_score from
  precision and recall, class_likelihood_ratios) and of the textbook rates
  (NPV, FPR, FNR, FDR, FOR, informedness = Youden's J, markedness);
- --ignore-label: nnU-Net's evaluation (compute_tp_fp_fn_tn with an ignore
  mask: every count restricted to the voxels whose reference is not the
  ignore label);
- --regions: BraTS unions (WT = {1,2,4}, TC = {1,4}, ET = {4});
- --empty nan|exclude: MONAI's ignore_empty (NaN where the ground truth is
  empty) and the exclusion from the summary;
- the pooled summary: nnU-Net's / smp's global Dice 2 sum TP / (2 sum TP +
  sum FP + sum FN);
- autoPET's false-positive / false-negative volumes (lab-midas autoPET
  val_script.py: 18-connected components of the prediction that touch no
  ground-truth voxel, and of the ground truth that touch no predicted voxel,
  times the voxel volume in mL);
- --shard K/N + --merge: byte-identical to the unsharded run;
- bad input: one line, exit 1/2, no output written.
Run: /usr/bin/python3 tests/ref/test_eval_aggregation.py (SEGLOSS=build/segloss).
"""
import csv
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cli", "fixtures"))
from slref import QUICK, Check, cli  # noqa: E402
import evalref  # noqa: E402

chk = Check("test_eval_aggregation")
tmp = tempfile.mkdtemp()
rng = np.random.default_rng(15)
SPACING = (1.5, 0.8, 1.2)


def blobs(shape, labels, n, rng):
    """A label map of a few random boxes per label (later labels on top)."""
    m = np.zeros(shape, np.uint8)
    for lab in labels:
        for _ in range(n):
            lo = [rng.integers(0, s - 2) for s in shape]
            hi = [min(s, l + rng.integers(1, 5)) for l, s in zip(lo, shape)]
            m[tuple(slice(a, b) for a, b in zip(lo, hi))] = lab
    return m


def make_cases(folder, k, shape=(10, 12, 11), labels=(1, 2, 4), ignore=None):
    os.makedirs(folder + "/P")
    os.makedirs(folder + "/G")
    cases = {}
    for i in range(k):
        g = blobs(shape, labels, 2, rng)
        p = g.copy()
        # perturb: drop some voxels, add some boxes
        drop = rng.random(shape) < 0.15
        p[drop] = 0
        p = np.maximum(p, blobs(shape, labels, 1, rng) * (rng.random(shape) < 0.5))
        if i == 1:
            g[g == 2] = 0  # label 2 absent from G (P may still have it)
        if i == 2:
            g[g == 2] = 0
            p[p == 2] = 0  # both empty
        if ignore is not None:
            ig = np.zeros(shape, bool)
            ig[:, : shape[1] // 3, :] = rng.random((shape[0], shape[1] // 3, shape[2])) < 0.5
            g[ig] = ignore
        name = "case%02d" % i
        np.save("%s/P/%s.npy" % (folder, name), p)
        np.save("%s/G/%s.npy" % (folder, name), g)
        cases[name] = (p, g)
    return cases


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def run(args):
    rc, out, err = cli(["eval"] + args)
    if rc != 0:
        raise RuntimeError("segloss eval %s: %s" % (" ".join(args), err.strip()))
    return out


def f(x):
    return float(x)


# ---- reference formulas ------------------------------------------------------

def counts(pm, gm, valid):
    pm, gm = pm & valid, gm & valid
    return (int((pm & gm).sum()), int((pm & ~gm).sum()), int((~pm & gm).sum()), int((~pm & ~gm & valid).sum()))


def ref_confusion(tp, fp, fn, tn, beta):
    """Transcriptions of scikit-learn's binary definitions (NaN where it
    divides by zero) and the textbook rates."""
    nan = float("nan")
    div = lambda a, b: a / b if b else nan  # noqa: E731
    tpr, tnr = div(tp, tp + fn), div(tn, tn + fp)
    ppv, npv = div(tp, tp + fp), div(tn, tn + fn)
    # balanced_accuracy_score: mean of the per-class recalls of the classes in y_true
    rec = [r for r in (tpr, tnr) if not math.isnan(r)]
    # fbeta_score = (1 + b^2) P R / (b^2 P + R); both masks empty -> 1 (Dice rule), one empty -> 0
    if tp + fp + fn == 0:
        fb = 1.0
    elif tp == 0:
        fb = 0.0
    else:
        fb = (1 + beta ** 2) * ppv * tpr / (beta ** 2 * ppv + tpr)
    # class_likelihood_ratios: LR+ = TPR / FPR, LR- = FNR / TNR, NaN when FP = 0 / TN = 0 or no positives
    lrp = nan if (tp + fn == 0 or fp == 0) else tpr / div(fp, fp + tn)
    lrm = nan if (tp + fn == 0 or tn == 0) else div(fn, tp + fn) / tnr
    return {
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "balanced_accuracy": sum(rec) / len(rec) if rec else nan,
        "npv": npv, "fpr": div(fp, fp + tn), "fnr": div(fn, fn + tp), "fdr": div(fp, fp + tp),
        "for": div(fn, fn + tn), "lr_plus": lrp, "lr_minus": lrm,
        "youden": tpr + tnr - 1, "informedness": tpr + tnr - 1, "markedness": ppv + npv - 1,
        "fbeta": fb,
    }


def autopet_fp_fn_ml(pm, gm, spacing):
    """lab-midas autoPET val_script.py false_pos_pix / false_neg_pix, with
    scipy's labelling at 18-connectivity (cc3d connectivity=18), times the
    voxel volume in mL."""
    st = ndi.generate_binary_structure(3, 2)  # 18-connectivity
    vox_ml = np.prod(spacing) / 1000.0
    pcc, npc = ndi.label(pm, structure=st)
    fp = sum(int((pcc == i).sum()) for i in range(1, npc + 1) if not (gm[pcc == i]).any())
    gcc, ngc = ndi.label(gm, structure=st)
    fn = sum(int((gcc == i).sum()) for i in range(1, ngc + 1) if not (pm[gcc == i]).any())
    return fp * vox_ml, fn * vox_ml


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-12 * max(1.0, abs(b))


# ---- 1. confusion family, pixel accuracy, autoPET volumes, pooled ---------------
d1 = tmp + "/one"
cases = make_cases(d1, 5)
sp = ",".join(map(str, SPACING))
cols = "dice,counts,confusion,pixel_accuracy,autopet"
run(["--pred", d1 + "/P", "--gt", d1 + "/G", "--metrics", cols, "--beta", "2", "--spacing", sp,
     "--connectivity", "18", "--csv", d1 + "/o.csv", "--json", d1 + "/o.json", "--threads", "2"])
rows = read_csv(d1 + "/o.csv")
labels = [1, 2, 4]
chk.true("rows: %d" % len(rows), len(rows) == 5 * 3)
worst = 0.0
for r in rows:
    p, g = cases[r["case"]]
    lab = int(r["label"])
    valid = np.ones(g.shape, bool)
    tp, fp, fn, tn = counts(p == lab, g == lab, valid)
    chk.true("counts %s/%d" % (r["case"], lab), (int(r["tp"]), int(r["fp"]), int(r["fn"]), int(r["tn"])) == (tp, fp, fn, tn))
    ref = ref_confusion(tp, fp, fn, tn, 2.0)
    for k, v in ref.items():
        ok = same(f(r[k]), v)
        if not math.isnan(v):
            worst = max(worst, abs(f(r[k]) - v) / max(1.0, abs(v)))  # the CSV holds 15 digits
        chk.true("%s %s/%d: got %s want %r" % (k, r["case"], lab, r[k], v), ok)
    pa = float((p == g).mean())
    chk.close("pixel_accuracy %s" % r["case"], f(r["pixel_accuracy"]), pa, rtol=1e-14, atol=0, group="pixel_accuracy")
    fpv, fnv = autopet_fp_fn_ml(p == lab, g == lab, SPACING)
    chk.close("fp_volume_ml %s/%d" % (r["case"], lab), f(r["fp_volume_ml"]), fpv, rtol=1e-12, atol=1e-15, group="autopet volumes")
    chk.close("fn_volume_ml %s/%d" % (r["case"], lab), f(r["fn_volume_ml"]), fnv, rtol=1e-12, atol=1e-15, group="autopet volumes")
chk.close("confusion family (relative)", worst, 0.0, rtol=0, atol=1e-13, group="confusion family (relative)")
# autoPET volumes on a hand case: a predicted blob far from G (FP), a G blob with no prediction (FN)
j = json.load(open(d1 + "/o.json"))
for lab in labels:
    s = j["summary"][str(lab)]
    tot = np.zeros(4, np.int64)
    for r in rows:
        if int(r["label"]) == lab:
            tot += [int(r["tp"]), int(r["fp"]), int(r["fn"]), int(r["tn"])]
    tp, fp, fn, tn = (float(x) for x in tot)
    chk.close("pooled dice label %d" % lab, s["pooled"]["dice"], 2 * tp / (2 * tp + fp + fn), rtol=1e-14, atol=0, group="pooled")
    chk.close("pooled fbeta label %d" % lab, s["pooled"]["fbeta"], ref_confusion(tp, fp, fn, tn, 2.0)["fbeta"], rtol=1e-13,
              atol=0, group="pooled")
    vals = [f(r["dice"]) for r in rows if int(r["label"]) == lab]
    chk.close("summary dice mean/std (population) %d" % lab, [s["dice"]["mean"], s["dice"]["std"]],
              [np.mean(vals), np.std(vals, ddof=0)], rtol=1e-13, atol=1e-15, group="summary")

# hand case for the autoPET volumes: 2 predicted components, one touching G; 2 G components, one missed
p = np.zeros((6, 10, 10), np.uint8)
g = np.zeros_like(p)
g[1:3, 1:4, 1:4] = 1      # hit by the prediction
p[2:4, 2:5, 2:5] = 1
p[4:6, 7:10, 7:10] = 1    # FP component: 2*3*3 = 18 voxels
g[0:2, 7:9, 0:2] = 1      # FN component: 2*2*2 = 8 voxels
p[5, 0, 9] = 1            # a lone voxel far from G: its own FP component (1 voxel)
os.makedirs(tmp + "/hand")
np.save(tmp + "/hand/p.npy", p)
np.save(tmp + "/hand/g.npy", g)
run(["--pred", tmp + "/hand/p.npy", "--gt", tmp + "/hand/g.npy", "--metrics", "autopet", "--spacing", "2,1,1",
     "--connectivity", "18", "--csv", tmp + "/hand/o.csv"])
h = read_csv(tmp + "/hand/o.csv")[0]
chk.close("autopet hand FP mL", f(h["fp_volume_ml"]), (18 + 1) * 2 / 1000.0, rtol=1e-14, atol=0, group="autopet volumes")
chk.close("autopet hand FN mL", f(h["fn_volume_ml"]), 8 * 2 / 1000.0, rtol=1e-14, atol=0, group="autopet volumes")

# ---- 2. ignore label (nnU-Net) ----------------------------------------------------
d2 = tmp + "/ign"
cases = make_cases(d2, 4, ignore=9)
run(["--pred", d2 + "/P", "--gt", d2 + "/G", "--ignore-label", "9", "--metrics", "dice,counts,specificity,hd95,assd,pixel_accuracy",
     "--spacing", sp, "--csv", d2 + "/o.csv", "--json", d2 + "/o.json"])
rows = read_csv(d2 + "/o.csv")
chk.true("ignore label is no target", sorted({r["label"] for r in rows}) == ["1", "2", "4"])
for r in rows:
    p, g = cases[r["case"]]
    lab = int(r["label"])
    valid = g != 9
    tp, fp, fn, tn = counts(p == lab, g == lab, valid)  # nnU-Net compute_tp_fp_fn_tn with ignore_mask
    chk.true("ignore counts %s/%d" % (r["case"], lab), (int(r["tp"]), int(r["fp"]), int(r["fn"]), int(r["tn"])) == (tp, fp, fn, tn))
    want_dice = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0  # nnU-Net: NaN; segloss's table: 1
    chk.close("ignore dice %s/%d" % (r["case"], lab), f(r["dice"]), want_dice, rtol=1e-14, atol=0, group="ignore dice")
    chk.close("ignore specificity %s/%d" % (r["case"], lab), f(r["specificity"]), tn / (tn + fp), rtol=1e-14, atol=0,
              group="ignore dice")
    # distances on the masks with the ignored voxels removed from both sides
    pm, gm = (p == lab) & valid, (g == lab) & valid
    if pm.any() and gm.any():
        bp, bg = evalref.border(pm), evalref.border(gm)
        dp, dg = evalref.directed(bp, bg, SPACING), evalref.directed(bg, bp, SPACING)
        want = max(np.percentile(dp, 95), np.percentile(dg, 95))
        chk.close("ignore hd95 %s/%d" % (r["case"], lab), f(r["hd95"]), want, rtol=1e-12, atol=1e-12, group="ignore hd95")
    chk.close("ignore pixel accuracy", f(r["pixel_accuracy"]), float((p[valid] == g[valid]).mean()), rtol=1e-14, atol=0,
              group="ignore dice")

# ---- 3. regions (BraTS) and --label-mean --------------------------------------------
d3 = tmp + "/reg"
cases = make_cases(d3, 3)
run(["--pred", d3 + "/P", "--gt", d3 + "/G", "--regions", "WT=1,2,4;TC=1,4;ET=4", "--label-mean",
     "--metrics", "dice,hd95,counts", "--csv", d3 + "/o.csv", "--json", d3 + "/o.json"])
rows = read_csv(d3 + "/o.csv")
chk.true("regions only: %s" % sorted({r["label"] for r in rows}), [r["label"] for r in rows[:4]] == ["WT", "TC", "ET", "mean"])
REG = {"WT": [1, 2, 4], "TC": [1, 4], "ET": [4]}
for r in rows:
    p, g = cases[r["case"]]
    if r["label"] == "mean":
        mine = [x for x in rows if x["case"] == r["case"] and x["label"] != "mean"]
        chk.close("label mean dice %s" % r["case"], f(r["dice"]), np.mean([f(x["dice"]) for x in mine]), rtol=1e-14, atol=0,
                  group="label mean")
        continue
    pm, gm = np.isin(p, REG[r["label"]]), np.isin(g, REG[r["label"]])
    ref = evalref.case_metrics(pm.astype(np.uint8), gm.astype(np.uint8), 1, (1.0, 1.0, 1.0))
    chk.close("region dice %s/%s" % (r["case"], r["label"]), f(r["dice"]), ref["dice"], rtol=1e-14, atol=0, group="regions")
    if math.isfinite(ref["hd95"]):
        chk.close("region hd95 %s/%s" % (r["case"], r["label"]), f(r["hd95"]), ref["hd95"], rtol=1e-12, atol=1e-12, group="regions")
j = json.load(open(d3 + "/o.json"))
chk.true("json labels of regions are names", j["cases"][0]["label"] == "WT" and j["conventions"]["regions"] == "WT=1,2,4;TC=1,4;ET=4")

# ---- 4. --empty score | nan | exclude ------------------------------------------------
d4 = d1  # case01: label 2 absent from G; case02: absent from both
out = {}
for mode in ("score", "nan", "exclude"):
    run(["--pred", d4 + "/P", "--gt", d4 + "/G", "--labels", "1,2", "--metrics", "dice,hd95,counts", "--empty", mode,
         "--csv", "%s/e_%s.csv" % (d4, mode), "--json", "%s/e_%s.json" % (d4, mode)])
    out[mode] = (read_csv("%s/e_%s.csv" % (d4, mode)), json.load(open("%s/e_%s.json" % (d4, mode))))
sc_rows, sc_j = out["score"]
nan_rows, nan_j = out["nan"]
ex_rows, ex_j = out["exclude"]
gt_empty = [r for r in sc_rows if r["empty_gt"] == "1"]
chk.true("empty G rows exist: %d" % len(gt_empty), len(gt_empty) >= 2)
for a, b, c in zip(sc_rows, nan_rows, ex_rows):
    if a["empty_gt"] == "1":
        chk.true("nan mode: dice NaN where G is empty (MONAI ignore_empty) %s" % a["case"], b["dice"] == "nan" and b["hd95"] == "nan")
        chk.true("nan mode keeps counts", b["tp"] == a["tp"] and b["fp"] == a["fp"])
    else:
        chk.true("nan mode leaves other rows", a == b)
    chk.true("exclude mode keeps per-case values", a == c)
vals = [f(r["dice"]) for r in sc_rows if r["label"] == "2" and r["empty_gt"] == "0"]
chk.close("nan mode summary = mean over the non-empty-G rows", nan_j["summary"]["2"]["dice"]["mean"], np.mean(vals),
          rtol=1e-14, atol=0, group="empty modes")
chk.close("exclude mode summary", ex_j["summary"]["2"]["dice"]["mean"], np.mean(vals), rtol=1e-14, atol=0, group="empty modes")
chk.true("exclude counted: %s" % ex_j["summary"]["2"].get("excluded"), ex_j["summary"]["2"]["excluded"] == len([r for r in gt_empty if r["label"] == "2"]))
chk.true("score mode keeps both-empty Dice 1", any(r["dice"] == "1" for r in sc_rows if r["empty_gt"] == "1" and r["empty_pred"] == "1"))
tot = np.zeros(3)
for r in sc_rows:
    if r["label"] == "2" and r["empty_gt"] == "0":
        tot += [int(r["tp"]), int(r["fp"]), int(r["fn"])]
run(["--pred", d4 + "/P", "--gt", d4 + "/G", "--labels", "1,2", "--metrics", "dice", "--empty", "exclude", "--label-mean",
     "--csv", d4 + "/em.csv"])
em = read_csv(d4 + "/em.csv")
for r in em:
    if r["label"] == "mean":
        kept = [f(x["dice"]) for x in em if x["case"] == r["case"] and x["label"] != "mean" and x["empty_gt"] == "0"]
        chk.close("exclude mode: the per-case mean leaves excluded rows out %s" % r["case"], f(r["dice"]), np.mean(kept),
                  rtol=1e-14, atol=0, group="empty modes")
chk.close("exclude mode pooled dice leaves excluded rows out", ex_j["summary"]["2"]["pooled"]["dice"],
          2 * tot[0] / (2 * tot[0] + tot[1] + tot[2]), rtol=1e-14, atol=0, group="empty modes")

# ---- 5. --shard + --merge: byte-identical ---------------------------------------------
d5 = tmp + "/shard"
os.makedirs(d5)
# (the sanitized build runs a lighter column list: every group but the slow skeletons)
for extra, nsh in ((["--labels", "1,2,4", "--metrics", "dice,counts,hd95,assd,nsd,biou,lesion,autopet" if QUICK else "all"], 3),
                   (["--regions", "WT=1,2,4;TC=1,4", "--labels", "2", "--label-mean", "--empty", "exclude",
                     "--metrics", "dice,hd95,rvd,confusion"], 7)):
    base = ["--pred", d1 + "/P", "--gt", d1 + "/G"] + extra
    o_all = run(base + ["--csv", d5 + "/all.csv", "--json", d5 + "/all.json"])
    parts = []
    for k in range(1, nsh + 1):
        run(base + ["--shard", "%d/%d" % (k, nsh), "--csv", "%s/p%d.csv" % (d5, k), "--json", "%s/p%d.json" % (d5, k)])
        parts.append("%s/p%d.json" % (d5, k))
    parts.reverse()  # order of the parts does not matter
    o_m = run(["--merge"] + parts + ["--csv", d5 + "/m.csv", "--json", d5 + "/m.json"])
    for ext in ("csv", "json"):
        a, b = open("%s/all.%s" % (d5, ext), "rb").read(), open("%s/m.%s" % (d5, ext), "rb").read()
        chk.true("merge of %d shards: %s byte-identical (%d vs %d bytes)" % (nsh, ext, len(a), len(b)), a == b)
    chk.true("merge of %d shards: table identical" % nsh, o_all == o_m)
    for fn in os.listdir(d5):
        os.remove(os.path.join(d5, fn))

# one 2-D pair in 5 shares: 4 empty shares, whose conventions must still
# name the 2-D default connectivity of the run
FX2 = os.path.join(os.path.dirname(__file__), "..", "cli", "fixtures", "eval2d")
base = ["--pred", FX2 + "/pred.npy", "--gt", FX2 + "/gt.npy", "--labels", "1,2", "--metrics", "dice,lesion,hd95"]
o_all = run(base + ["--json", d5 + "/all.json"])
parts = []
for k in range(1, 6):
    run(base + ["--shard", "%d/5" % k, "--json", "%s/p%d.json" % (d5, k)])
    parts.append("%s/p%d.json" % (d5, k))
o_m = run(["--merge"] + parts + ["--json", d5 + "/m.json"])
chk.true("2-D pair in 5 shards: JSON and table byte-identical",
         open(d5 + "/all.json", "rb").read() == open(d5 + "/m.json", "rb").read() and o_all == o_m)

# ---- 6. bad input: one line, exit code, nothing written -------------------------------
P, G = d1 + "/P", d1 + "/G"
gt_file = d1 + "/G/case00.npy"
gt_bytes = open(gt_file, "rb").read()
bad = [
    (2, "--shard", ["--labels", "1", "--shard", "3/2"]),
    (2, "--shard", ["--labels", "1", "--shard", "0/2"]),
    (2, "--shard", ["--labels", "1", "--shard", "a/b"]),
    (2, "needs --labels or --regions", ["--shard", "1/2"]),
    (2, "--regions", ["--regions", "WT=1,,2"]),
    (2, "--regions", ["--regions", "WT"]),
    (2, "--regions", ["--regions", "=1"]),
    (2, "defined twice", ["--regions", "WT=1;WT=2"]),
    (2, "lists 1 twice", ["--regions", "WT=1,1"]),
    (2, "--regions", ["--regions", "WT=1;TC=x"]),
    (2, "--ignore-label 2 is also in --labels", ["--labels", "1,2", "--ignore-label", "2"]),
    (2, "part of region 'WT'", ["--regions", "WT=1,2", "--ignore-label", "2"]),
    (2, "--ignore-label expects", ["--ignore-label", "x"]),
    (2, "--empty expects", ["--empty", "skip"]),
    (2, "--beta", ["--beta", "0"]),
    (2, "is the ground truth of case 'case00'", ["--pred", P + "/case00.npy", "--gt", gt_file, "--csv", gt_file]),
    (2, "name the same file", ["--csv", d1 + "/same", "--json", d1 + "/same"]),
]
for code, needle, args in bad:
    a = args if "--pred" in args else ["--pred", P, "--gt", G] + args
    if "--csv" not in a:
        a = a + ["--csv", tmp + "/bad.csv", "--json", tmp + "/bad.json"]
    rc, _, err = cli(["eval"] + a)
    lines = err.strip().splitlines()
    chk.true("%s -> exit %d (want %d), stderr %r" % (" ".join(args), rc, code, err.strip()[:200]),
             rc == code and len(lines) == 1 and needle in lines[0])
    chk.true("no output after %s" % " ".join(args), not os.path.exists(tmp + "/bad.csv") and not os.path.exists(tmp + "/bad.json")
             and not os.path.exists(d1 + "/same"))
chk.true("the ground truth is intact", open(gt_file, "rb").read() == gt_bytes)
# merge errors: a missing shard, a shard twice, parts of another run
for k in (1, 2):
    run(["--pred", P, "--gt", G, "--labels", "1", "--shard", "%d/2" % k, "--json", "%s/s%d.json" % (tmp, k)])
run(["--pred", P, "--gt", G, "--labels", "2", "--shard", "2/2", "--json", tmp + "/other.json"])
for needle, parts in (("shard 2/2 is missing", ["s1"]), ("is given twice", ["s1", "s1"]), ("comes from another run", ["s1", "other"]),
                      ("not the JSON", ["nope"])):
    if "nope" in parts:
        open(tmp + "/nope.json", "w").write('{"cases": []}')
    rc, _, err = cli(["eval", "--merge"] + ["%s/%s.json" % (tmp, p) for p in parts] + ["--csv", tmp + "/bad.csv"])
    chk.true("merge %s -> exit %d, %r" % (parts, rc, err.strip()[:200]), rc == 1 and needle in err and len(err.strip().splitlines()) == 1)
    chk.true("no output after a failed merge", not os.path.exists(tmp + "/bad.csv"))

shutil.rmtree(tmp)
chk.report()
