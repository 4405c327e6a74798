"""Probabilities (sl_prob_eval, sl_auroc_ap) against transcriptions of the
reference formulas written here: scikit-learn's roc_auc_score (roc_curve
from _binary_clf_curve + trapezoids), average_precision_score
(precision_recall_curve, -sum(diff(recall) * precision[:-1])) and
brier_score_loss; Guo et al.'s top-label ECE loop (bins (lo, hi]) and MCE;
Kull et al.'s class-wise ECE; NLL. Hand cases from scikit-learn's
documentation, random softmax outputs with ties and exact bin edges, 1 vs
4 threads, the ignore label, and bad input by name.

The library is loaded through ctypes, which the sanitized build cannot do:
sanitized: skip
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import famref as F  # noqa: E402
import geomref as G  # noqa: E402
from slref import Check  # noqa: E402

ck = Check("test_prob")
rng = np.random.default_rng(15)


# ---- references (transcribed) --------------------------------------------------------
def binary_clf_curve(y, s):
    """sklearn.metrics._ranking._binary_clf_curve"""
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    distinct = np.where(np.diff(s))[0]
    thr_idx = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y, dtype=np.float64)[thr_idx]
    fps = 1 + thr_idx - tps
    return fps, tps


def sk_roc_auc(y, s):
    """roc_curve (without drop_intermediate, which removes only collinear
    points) + auc (trapezoids)"""
    fps, tps = binary_clf_curve(y, s)
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def sk_average_precision(y, s):
    fps, tps = binary_clf_curve(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    precision, recall = np.r_[precision[::-1], 1], np.r_[recall[::-1], 0]
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def sk_brier(y, p):
    return float(np.average((y - p) ** 2))


def guo_ece_mce(conf, hit, B):
    """Guo et al. 2017's loop: bins (lo, hi]; here 0 joins the first bin"""
    conf = conf.astype(np.float64)
    ece, mce = 0.0, 0.0
    for b in range(B):
        lo, hi = b / B, (b + 1) / B
        inb = (conf > lo) & (conf <= hi)
        if b == 0:
            inb |= conf == 0
        prop = inb.mean()
        if prop > 0:
            gap = abs(hit[inb].mean() - conf[inb].mean())
            ece += gap * prop
            mce = max(mce, gap)
    return ece, mce


def ref_all(prob, lab, B, ignore=None):
    C = prob.shape[0]
    p = prob.reshape(C, -1).astype(np.float64)
    y = lab.ravel().astype(np.int64)
    keep = np.ones(y.size, bool) if ignore is None else y != ignore
    p, y = p[:, keep], y[keep]
    p32 = prob.reshape(C, -1)[:, keep]
    pred = np.argmax(p32, axis=0)
    conf = p32.max(axis=0)
    hit = (pred == y).astype(np.float64)
    out = {"n": y.size, "accuracy": hit.mean()}
    out["ece"], out["mce"] = guo_ece_mce(conf, hit, B)
    per = []
    for c in range(C):
        yc = (y == c).astype(np.float64)
        e, m = guo_ece_mce(p32[c], yc, B)
        d = {"positives": int(yc.sum()), "ece": e, "mce": m, "brier": sk_brier(yc, p[c])}
        d["auroc"] = sk_roc_auc(yc, p32[c]) if 0 < yc.sum() < yc.size else np.nan
        d["ap"] = sk_average_precision(yc, p32[c]) if yc.sum() > 0 else np.nan
        per.append(d)
    out["classwise_ece"] = np.mean([d["ece"] for d in per])
    out["brier"] = float(np.mean(np.sum((p - np.eye(C)[y].T) ** 2, axis=0)))
    out["nll"] = float(np.mean(-np.log(np.maximum(p[y, np.arange(y.size)], 1e-15))))
    return out, per


def softmax(z):
    e = np.exp(z - z.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


def compare(what, got, want, tol=1e-12):
    s, pc = got
    rs, rpc = want
    for k in ("accuracy", "ece", "mce", "classwise_ece", "brier", "nll"):
        ck.close("%s %s" % (what, k), s[k], rs[k], rtol=tol, atol=tol, group=k)
    ck.true("%s n" % what, s["n"] == rs["n"])
    for c, (a, b) in enumerate(zip(pc, rpc)):
        ck.true("%s class %d positives" % (what, c), a["positives"] == b["positives"])
        for k in ("ece", "mce", "brier", "auroc", "ap"):
            if np.isnan(b[k]):
                ck.true("%s class %d %s NaN as the reference" % (what, c, k), np.isnan(a[k]))
                continue
            ck.close("%s class %d %s" % (what, c, k), a[k], b[k], rtol=tol, atol=tol, group="class_" + k)


# ---- hand cases -----------------------------------------------------------------------
# scikit-learn's documentation: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8]
a, p = F.auroc_ap([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
ck.close("hand: roc_auc_score docs example 0.75", a, 0.75, rtol=0, atol=1e-15, group="hand")
ck.close("hand: average_precision_score docs example 0.8333", p, 0.5 * 1.0 + 0.5 * (2 / 3), rtol=0, atol=1e-15,
         group="hand")
a, p = F.auroc_ap([0.3] * 5, [1, 0, 1, 0, 0])
ck.close("hand: all scores tied: AUROC 1/2, AP = prevalence", [a, p], [0.5, 0.4], rtol=0, atol=1e-15, group="hand")
a, p = F.auroc_ap([0.9, 0.8, 0.2], [1, 1, 0])
ck.close("hand: perfect ranking AUROC 1, AP 1", [a, p], [1.0, 1.0], rtol=0, atol=0, group="hand")
a, p = F.auroc_ap([0.5, 0.1], [0, 0])
ck.true("hand: no positives: AUROC and AP NaN", np.isnan(a) and np.isnan(p))
a, p = F.auroc_ap([0.5, 0.1], [1, 1])
ck.true("hand: no negatives: AUROC NaN, AP 1", np.isnan(a) and p == 1.0)
a, p = F.auroc_ap([-0.0, 0.0, -2.5, 7.0], [1, 0, 0, 1])
ck.close("hand: -0 and +0 tie, negative scores", [a, p], [sk_roc_auc(np.array([1., 0, 0, 1]),
                                                                      np.array([0., 0, -2.5, 7])),
                                                          sk_average_precision(np.array([1., 0, 0, 1]),
                                                                               np.array([0., 0, -2.5, 7]))],
         rtol=0, atol=1e-15, group="hand")

# four voxels with dyadic probabilities, B = 4: 0.75 sits on an edge and
# belongs to (0.5, 0.75]; that bin holds voxels 0, 1, 3 (confidence
# (0.75 + 0.75 + 0.625) / 3, accuracy 2/3, gap 1/24), bin (0.75, 1] holds
# voxel 2 (0.875, right, gap 1/8): ECE = 3/4 * 1/24 + 1/4 * 1/8 = 1/16,
# MCE = 1/8. (With 0.8 instead of 0.875 the float32 0.8 = 0.80000001 lies
# above the edge 0.8 — the reason the bins are stated as (lo, hi].)
prob = np.array([[0.75, 0.75, 0.125, 0.625], [0.25, 0.25, 0.875, 0.375]], np.float32)
lab = np.array([0, 1, 1, 0], np.int64)
s, pc = F.prob_eval(prob, lab, bins=4)
ck.close("hand: ECE 1/16, MCE 1/8 of four voxels", [s["ece"], s["mce"]], [1 / 16, 1 / 8], rtol=0, atol=1e-15,
         group="hand")
ck.close("hand: accuracy 3/4, NLL", [s["accuracy"], s["nll"]],
         [0.75, -np.mean(np.log([0.75, 0.25, 0.875, 0.625]))], rtol=0, atol=1e-15, group="hand")
ck.close("hand: Brier = mean of sum_c (p_c - y_c)^2", s["brier"],
         np.mean([2 * 0.25 ** 2, 2 * 0.75 ** 2, 2 * 0.125 ** 2, 2 * 0.375 ** 2]), rtol=0, atol=1e-15, group="hand")

# ---- random cases ---------------------------------------------------------------------
for shape, C, B, temp in (((9, 11, 13), 3, 15, 1.0), ((40, 50), 2, 10, 3.0), ((7, 8, 9), 5, 7, 0.5),
                          ((64, 70), 4, 20, 2.0)):
    z = rng.standard_normal((C,) + shape) * temp
    lab = rng.integers(0, C, shape)
    # make the labels agree with the scores often, so the metrics are not trivial
    lab = np.where(rng.random(shape) < 0.6, np.argmax(z, axis=0), lab)
    prob = softmax(z)
    # exact bin edges and ties: some voxels at 0.5/0.5 (C = 2) or quantised
    if C == 2:
        prob[:, :5] = 0.5
        prob[0, 5:10], prob[1, 5:10] = 1.0, 0.0
    else:
        q = np.round(prob * 8) / 8
        q[-1] = 1 - q[:-1].sum(axis=0)
        ok = (q >= 0).all(axis=0)
        prob = np.where(ok & (rng.random(shape) < 0.3), q, prob).astype(np.float32)
    what = "random %s C=%d B=%d" % (shape, C, B)
    compare(what, F.prob_eval(prob, lab, bins=B), ref_all(prob, lab, B))
    g1 = F.prob_eval(prob, lab, bins=B, threads=1)
    g4 = F.prob_eval(prob, lab, bins=B, threads=4)
    ck.true("%s: 1 and 4 threads bit-identical" % what, g1 == g4)
    # ignore label: 255 on a random quarter
    lab_i = np.where(rng.random(shape) < 0.25, 255, lab).astype(np.int16)
    compare(what + " ignore=255", F.prob_eval(prob, lab_i, bins=B, ignore=255), ref_all(prob, lab_i, B, ignore=255))

# a class absent from the labels: AUROC and AP NaN by name, the rest defined
z = rng.standard_normal((3, 20, 20))
lab = rng.integers(0, 2, (20, 20))
s, pc = F.prob_eval(softmax(z), lab)
ck.true("absent class: AUROC and AP NaN, positives 0",
        pc[2]["positives"] == 0 and np.isnan(pc[2]["auroc"]) and np.isnan(pc[2]["ap"]))
compare("absent class", (s, pc), ref_all(softmax(z), lab, 15))


# ---- bad input ---------------------------------------------------------------------------------
def refused(what, code, *args, **kw):
    try:
        F.prob_eval(*args, **kw)
        ck.true(what + ": refused", False)
    except G.SlError as e:
        ck.true("%s: code %d (got %d: %s)" % (what, code, e.code, e), e.code == code)
        print("  %s -> %s" % (what, e))


good = softmax(rng.standard_normal((3, 6, 6)))
lab = rng.integers(0, 3, (6, 6))
bad = good.copy()
bad[0, 2, 3] = 1.2
refused("probability above 1", 4, bad, lab)
bad = good.copy()
bad[1, 0, 0] = -0.01
refused("probability below 0", 4, bad, lab)
bad = good.copy()
bad[:, 4, 4] *= 0.9
refused("probabilities not summing to 1 (0.9)", 4, bad, lab)
bad = good.copy()
bad[2, 1, 1] = np.nan
refused("NaN probability", 5, bad, lab)
refused("label outside [0, C)", 4, good, np.where(lab == 2, 3, lab))
refused("every voxel ignored", 12, good, np.full((6, 6), 7), ignore=7)
refused("C = 1", 1, good[:1], lab)
refused("bins = 0", 1, good, lab, bins=0)
ck.true("sum within the stated tolerance accepted (1e-4)",
        F.prob_eval(good * np.float32(1 + 5e-5), lab)[0]["n"] == 36)
ck.report()
