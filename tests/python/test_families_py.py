"""segloss.metrics.calibration / auroc_ap / panoptic_quality / fuse against
transcriptions written here of the reference formulas:
  - scikit-learn: roc_auc_score (_binary_clf_curve, trapezoids through the
    distinct thresholds), average_precision_score (sum (R_n - R_n-1) P_n),
    brier_score_loss; Guo et al. 2017 top-label ECE/MCE and Kull et al.
    2019 class-wise ECE on equal-width bins (b/B < v <= (b+1)/B); NLL;
  - MONAI compute_panoptic_quality (pairwise IoU, pairs above a threshold
    >= 0.5, scipy's linear_sum_assignment below it, SQ/RQ/PQ with
    smooth_numerator), a greedy matcher by decreasing IoU;
  - majority vote (smallest label on ties) and binary STAPLE's EM
    (Warfield, Zou & Wells 2004) with a fixed prior.
The C engine is tested in depth by tests/ref/test_prob.py,
test_instances.py and test_staple.py; this checks that the binding passes
every option and returns every value in the right place."""
# sanitized: skip (loads libsegloss.so through ctypes)
import math

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

import pyref  # noqa: F401  (paths)
import slref

import segloss
from segloss import metrics as sm

chk = slref.Check("segloss.metrics families")
rng = np.random.default_rng(2019)


# ---- scikit-learn and the calibration papers, transcribed -------------------------
def clf_curve(y, s):
    o = np.argsort(-s, kind="mergesort")
    s, y = s[o], y[o].astype(np.float64)
    idx = np.r_[np.where(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[idx]
    return 1 + idx - tps, tps


def sk_roc_auc(y, s):
    if y.all() or not y.any():
        return math.nan
    fps, tps = clf_curve(y, s)
    fpr, tpr = np.r_[0, fps] / fps[-1], np.r_[0, tps] / tps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def sk_average_precision(y, s):
    if not y.any():
        return math.nan
    fps, tps = clf_curve(y, s)
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def binned(v, hit, B):
    """ECE and MCE of values v with outcomes hit on B equal-width bins"""
    b = np.clip(np.ceil(v * B).astype(np.int64) - 1, 0, B - 1)
    ece, mce = 0.0, 0.0
    for k in range(B):
        m = b == k
        if m.any():
            gap = abs(hit[m].mean() - v[m].mean())
            ece += m.sum() / v.size * gap
            mce = max(mce, gap)
    return ece, mce


def ref_calibration(prob, lab, B, ignore=None):
    C = prob.shape[0]
    P = prob.reshape(C, -1).astype(np.float64)
    y = lab.ravel()
    if ignore is not None:
        P, y = P[:, y != ignore], y[y != ignore]
    conf, pred = P.max(axis=0), P.argmax(axis=0)
    ece, mce = binned(conf, (pred == y).astype(np.float64), B)
    out = {"n": y.size, "accuracy": np.mean(pred == y), "ece": ece, "mce": mce,
           "nll": np.mean(-np.log(np.maximum(P[y, np.arange(y.size)], 1e-15)))}
    classes = []
    for c in range(C):
        yc = (y == c).astype(np.float64)
        e, m = binned(P[c], yc, B)
        classes.append({"positives": int(yc.sum()), "ece": e, "mce": m, "brier": np.mean((P[c] - yc) ** 2),
                        "auroc": sk_roc_auc(y == c, P[c]), "ap": sk_average_precision(y == c, P[c])})
    out["classwise_ece"] = np.mean([c["ece"] for c in classes])
    out["brier"] = np.sum([c["brier"] for c in classes])
    return out, classes


def softmax(z):
    e = np.exp(z - z.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


# ---- MONAI compute_panoptic_quality, transcribed ----------------------------------
def monai_pq(pred, gt, thr=0.5, smooth=1e-6, rule="monai"):
    gid = [i for i in np.unique(gt) if i != 0]
    pid = [i for i in np.unique(pred) if i != 0]
    iou = np.zeros((len(gid), len(pid)))
    for a, g in enumerate(gid):
        G = gt == g
        for b, p in enumerate(pid):
            P = pred == p
            inter = np.sum(G & P)
            if inter:
                iou[a, b] = inter / np.sum(G | P)
    if rule == "monai" and thr >= 0.5:
        pairs = [(a, b) for a, b in zip(*np.nonzero(iou > thr))]
    elif rule == "greedy":
        order = sorted(((-iou[a, b], gid[a], pid[b], a, b) for a in range(len(gid)) for b in range(len(pid))
                        if iou[a, b] > thr))
        used_g, used_p, pairs = set(), set(), []
        for _, _, _, a, b in order:
            if a not in used_g and b not in used_p:
                used_g.add(a), used_p.add(b), pairs.append((a, b))
    else:
        r, c = linear_sum_assignment(-iou) if iou.size else ([], [])
        pairs = [(a, b) for a, b in zip(r, c) if iou[a, b] > thr]
    tp = len(pairs)
    fp, fn = len(pid) - tp, len(gid) - tp
    s = sum(iou[a, b] for a, b in pairs)
    return {"n_gt": len(gid), "n_pred": len(pid), "tp": tp, "fp": fp, "fn": fn, "iou_sum": s,
            "sq": s / (tp + smooth), "rq": tp / (tp + fp / 2 + fn / 2 + smooth),
            "pq": s / (tp + fp / 2 + fn / 2 + smooth)}, sorted((gid[a], pid[b], iou[a, b]) for a, b in pairs)


def blobs(shape, n, r):
    out = np.zeros(shape, np.int32)
    grid = np.indices(shape)
    for k in range(n):
        c = [rng.integers(0, s) for s in shape]
        out[sum((grid[a] - c[a]) ** 2 for a in range(len(shape))) <= r * r] = rng.integers(1, 3 * n)
    return out


# ---- majority vote and binary STAPLE, transcribed ---------------------------------
def majority(raters):
    labs = np.unique(np.stack(raters))
    votes = np.stack([sum((r == l).astype(np.int64) for r in raters) for l in labs])
    return labs[np.argmax(votes, axis=0)]      # first maximum: the smallest label on ties


def staple_binary(D, init=0.99, max_iter=200, tol=1e-8):
    """Warfield 2004: D (R, n) 0/1 decisions; prior f fixed at the fraction of
    1 decisions; returns (W, sensitivity p, specificity q)"""
    D = D.astype(np.float64)
    f = D.mean()
    p = np.full(D.shape[0], init)
    q = np.full(D.shape[0], init)
    for _ in range(max_iter):
        a = f * np.prod(np.where(D == 1, p[:, None], 1 - p[:, None]), axis=0)
        b = (1 - f) * np.prod(np.where(D == 0, q[:, None], 1 - q[:, None]), axis=0)
        W = a / (a + b)
        p2 = (W * D).sum(axis=1) / W.sum()
        q2 = ((1 - W) * (1 - D)).sum(axis=1) / (1 - W).sum()
        done = max(np.abs(p2 - p).max(), np.abs(q2 - q).max()) <= tol
        p, q = p2, q2
        if done:
            break
    a = f * np.prod(np.where(D == 1, p[:, None], 1 - p[:, None]), axis=0)
    b = (1 - f) * np.prod(np.where(D == 0, q[:, None], 1 - q[:, None]), axis=0)
    W = a / (a + b)
    return W, (W * D).sum(axis=1) / W.sum(), ((1 - W) * (1 - D)).sum(axis=1) / (1 - W).sum()


def raises(what, exc, fn, contains):
    try:
        fn()
    except exc as ex:
        chk.true("%s: %s %r (want a segloss.Error containing %r)" % (what, type(ex).__name__, str(ex), contains),
                 isinstance(ex, segloss.Error) and contains in str(ex))
        print("  %s -> %s: %s" % (what, type(ex).__name__, ex))
        return
    except Exception as ex:  # noqa: BLE001
        chk.true("%s: raised %s %r, not %s" % (what, type(ex).__name__, str(ex), exc.__name__), False)
        return
    chk.true("%s: no exception" % what, False)


def compare_dict(what, got, want, keys, rtol=1e-12, atol=1e-12):
    g = np.array([got[k] for k in keys], np.float64)
    w = np.array([want[k] for k in keys], np.float64)
    chk.true("%s: NaN pattern %s vs %s" % (what, g, w), np.array_equal(np.isnan(g), np.isnan(w)))
    chk.close(what, np.nan_to_num(g), np.nan_to_num(w), rtol=rtol, atol=atol)


def main():
    # ---- calibration: hand case, random cases, ignore label, ties -------------------
    keys = ("n", "accuracy", "ece", "mce", "classwise_ece", "brier", "nll")
    ckeys = ("positives", "ece", "mce", "brier", "auroc", "ap")
    hand = np.array([[0.75, 0.75, 0.125, 0.625], [0.25, 0.25, 0.875, 0.375]], np.float32)
    lab = np.array([0, 1, 1, 0])
    got = sm.calibration(hand, lab, bins=4, threads=1)
    want, wc = ref_calibration(hand, lab, 4)
    compare_dict("calibration hand case (bins 4)", got, want, keys)
    # confidences 0.75 0.75 0.875 0.625, hits 1 0 1 1: bin (0.5, 0.75] holds three (acc 2/3,
    # mean confidence 17/24), bin (0.75, 1] one (acc 1, confidence 0.875)
    chk.close("hand case: ECE by hand = (3/4)|2/3 - 17/24| + (1/4)|1 - 0.875|", got["ece"],
              0.75 * abs(2 / 3 - 17 / 24) + 0.25 * 0.125, rtol=1e-15, atol=1e-16)
    for c in range(2):
        compare_dict("hand case class %d" % c, got["classes"][c], wc[c], ckeys)
    for shape, C, B, ign in (((12, 14), 3, 15, None), ((6, 8, 7), 4, 10, None), ((20, 20), 2, 7, 9)):
        z = rng.standard_normal((C,) + shape) * 2
        y = rng.integers(0, C, shape)
        z[(y,) + tuple(np.indices(shape))] += 1.0       # informative scores
        prob = softmax(z)
        if ign is not None:
            y[rng.random(shape) < 0.2] = ign
        got = sm.calibration(prob, y, bins=B, ignore_label=ign, threads=2)
        want, wc = ref_calibration(prob, y, B, ignore=ign)
        compare_dict("calibration %s C=%d B=%d ignore=%s" % (shape, C, B, ign), got, want, keys)
        for c in range(C):
            compare_dict("  class %d" % c, got["classes"][c], wc[c], ckeys)
    # float64 and torch input are taken as float32; ranking=False leaves AUROC/AP NaN
    import torch
    prob64 = softmax(rng.standard_normal((3, 9, 9))).astype(np.float64)
    y = rng.integers(0, 3, (9, 9))
    a = sm.calibration(prob64, y, threads=1)
    b = sm.calibration(torch.from_numpy(prob64.astype(np.float32)), torch.from_numpy(y), threads=1)
    chk.true("float64 numpy vs float32 tensor input: identical", a == b)
    nr = sm.calibration(prob64, y, ranking=False, threads=1)
    chk.true("ranking=False: AUROC and AP NaN", all(math.isnan(c["auroc"]) and math.isnan(c["ap"])
                                                    for c in nr["classes"]))
    # AUROC / AP with many ties; undefined cases are NaN
    s = rng.integers(0, 6, 300).astype(np.float32) / 5
    t = (rng.random(300) < 0.3 + 0.4 * s).astype(np.uint8)
    chk.close("auroc_ap with ties vs scikit-learn", sm.auroc_ap(s, t), [sk_roc_auc(t == 1, s),
                                                                        sk_average_precision(t == 1, s)],
              rtol=1e-13, atol=1e-15)
    au, ap = sm.auroc_ap(s, np.zeros(300))
    chk.true("auroc_ap without positives: NaN, NaN (%r, %r)" % (au, ap), math.isnan(au) and math.isnan(ap))
    au, ap = sm.auroc_ap(s, np.ones(300))
    chk.true("auroc_ap with positives only: AUROC NaN, AP 1 (%r, %r)" % (au, ap), math.isnan(au) and ap == 1)

    # ---- panoptic quality ------------------------------------------------------------
    pk = ("n_gt", "n_pred", "tp", "fp", "fn", "iou_sum", "pq", "sq", "rq")
    gt = np.zeros((6, 8), np.int32)
    gt[0:2, 0:2], gt[0:2, 4:8], gt[4:6, 0:3] = 1, 2, 5
    pred = np.zeros((6, 8), np.int64)
    pred[0:2, 0:3], pred[0:2, 5:8], pred[3:6, 6:8] = 7, 3, 4
    got = sm.panoptic_quality(pred, gt, return_pairs=True)
    want, wpairs = monai_pq(pred, gt)
    compare_dict("PQ hand case (MONAI)", got, want, pk, rtol=1e-14, atol=1e-15)
    chk.true("hand case pairs %s vs %s" % (got["pairs"], wpairs),
             [(g, p) for g, p, _ in got["pairs"]] == [(g, p) for g, p, _ in wpairs])
    one = np.zeros(4, np.uint8)
    one[:2] = 1
    half = np.zeros(4, np.uint8)
    half[1:3] = 1
    r = sm.panoptic_quality(np.r_[half, 0, 0], np.r_[one, 1, 0])   # one pair, IoU 1/4
    chk.true("IoU below the threshold: no match (tp %d)" % r["tp"], r["tp"] == 0 and r["pq"] == 0)
    empty = np.zeros((5, 5), np.int32)
    r = sm.panoptic_quality(empty, empty)
    chk.true("no instances on either side: PQ = SQ = RQ = 0 (MONAI)", r["pq"] == r["sq"] == r["rq"] == 0)
    for k in range(6):
        g = blobs((30, 32), 6, 4)
        p = np.roll(blobs((30, 32), 2, 3) + g * (rng.random() < 0.9), 1, axis=k % 2)
        for rule, thr in (("monai", 0.5), ("monai", 0.3), ("greedy", 0.2), ("hungarian", 0.1), ("monai", 0.7)):
            got = sm.panoptic_quality(p, g, match=rule, iou_threshold=thr)
            want, _ = monai_pq(p, g, thr=thr, rule=rule)
            compare_dict("PQ random %d %s thr %.1f" % (k, rule, thr), got, want, pk, rtol=1e-13, atol=1e-15)
    # components of a class of semantic maps (scipy.ndimage.label, full connectivity in 3-D)
    sem_g = (blobs((12, 14, 10), 5, 3) > 0).astype(np.uint8) * 2
    sem_p = np.roll(sem_g, 1, axis=2)
    sem_p[:2] = 2
    got = sm.panoptic_quality(sem_p, sem_g, label=2, connectivity=26)
    st = np.ones((3, 3, 3))
    want, _ = monai_pq(ndi.label(sem_p == 2, st)[0], ndi.label(sem_g == 2, st)[0])
    compare_dict("PQ on the components of label 2 (26-connected)", got, want, pk, rtol=1e-13, atol=1e-15)
    got6 = sm.panoptic_quality(sem_p, sem_g, label=2, connectivity=6, match="hungarian", iou_threshold=0.25)
    want6, _ = monai_pq(ndi.label(sem_p == 2)[0], ndi.label(sem_g == 2)[0], thr=0.25, rule="hungarian")
    compare_dict("PQ on the components of label 2 (6-connected, hungarian 0.25)", got6, want6, pk,
                 rtol=1e-13, atol=1e-15)

    # ---- fusion -----------------------------------------------------------------------
    truth = (ndi.gaussian_filter(rng.standard_normal((24, 26)), 2) > 0.1).astype(np.uint8)
    raters = []
    for err in (0.05, 0.1, 0.2, 0.3):
        flip = rng.random(truth.shape) < err
        raters.append(np.where(flip, 1 - truth, truth).astype(np.uint8))
    chk.true("majority vote of 4 binary raters (ties: 0)",
             np.array_equal(sm.fuse(raters, method="majority"), majority(raters)))
    multi = [np.where(r == 1, 1 + (rng.random(r.shape) < 0.3), rng.integers(0, 3, r.shape) * (rng.random(r.shape) < .1))
             .astype(np.int16) for r in raters]
    multi[1] = multi[1].astype(np.float32)
    fused, det = sm.fuse(multi, method="majority", return_details=True)
    chk.true("majority vote of 4 three-label raters (mixed dtypes, smallest label on ties)",
             np.array_equal(fused, majority(multi)) and fused.dtype == np.int64 and fused.shape == truth.shape)
    chk.true("majority details: labels %s, NaN sensitivity" % det["labels"],
             det["labels"] == [0, 1, 2] and np.isnan(det["sensitivity"]).all())
    W, p, q = staple_binary(np.stack([r.ravel() for r in raters]))
    fused, det = sm.fuse(raters, return_details=True, threads=1)
    chk.true("STAPLE (binary data, multiclass EM) fused = W > 0.5 of the transcription",
             np.array_equal(fused.ravel(), (W > 0.5).astype(np.int64)))
    chk.close("STAPLE sensitivities p_j = theta_j[1][1]", det["sensitivity"][:, 1], p, rtol=0, atol=1e-6)
    chk.close("STAPLE specificities q_j = theta_j[0][0]", det["specificity"][:, 1], q, rtol=0, atol=1e-6)
    chk.close("STAPLE prior = fraction of 1 decisions", det["prior"][1], np.mean(raters), rtol=1e-14, atol=0)
    chk.true("STAPLE converged (%d iterations)" % det["iterations"], det["converged"])
    fb, db = sm.fuse(raters, mode="binary", return_details=True, threads=2)
    chk.true("STAPLE binary mode on 0/1 raters = multiclass", np.array_equal(fb, fused))
    chk.close("STAPLE binary mode sensitivities", db["sensitivity"][:, 1], p, rtol=0, atol=1e-6)
    chk.true("STAPLE ranks the raters by their error rates", list(np.argsort(-det["sensitivity"][:, 1]))[0] == 0)

    # ---- errors: the C message and the mapped exception -----------------------------
    bad = softmax(rng.standard_normal((3, 5, 5)))
    bad[0, 2, 3] += 0.01
    raises("probabilities not summing to 1", ValueError, lambda: sm.calibration(bad, np.zeros((5, 5), int)), "sum")
    neg = softmax(rng.standard_normal((2, 4)))
    neg[:, 1] = [-0.5, 1.5]
    raises("probability outside [0, 1]", ValueError, lambda: sm.calibration(neg, np.zeros(4, int)), "")
    raises("label outside [0, C)", ValueError,
           lambda: sm.calibration(softmax(rng.standard_normal((2, 4))), np.array([0, 1, 2, 0])), "2")
    raises("labels of another shape", ValueError,
           lambda: sm.calibration(softmax(rng.standard_normal((2, 4))), np.zeros(5, int)), "shape")
    raises("all voxels ignored", ValueError,
           lambda: sm.calibration(softmax(rng.standard_normal((2, 4))), np.full(4, 7), ignore_label=7), "")
    raises("NaN score", ValueError, lambda: sm.auroc_ap(np.array([0.1, np.nan]), np.array([0, 1])), "")
    raises("instance maps of two shapes", ValueError, lambda: sm.panoptic_quality(np.zeros(4), np.zeros(5)), "shape")
    raises("unknown match", ValueError, lambda: sm.panoptic_quality(np.zeros(4), np.zeros(4), match="best"), "best")
    raises("non-integer instance id", ValueError, lambda: sm.panoptic_quality(np.full(4, 0.5), np.zeros(4)), "")
    raises("bad threshold", ValueError,
           lambda: sm.panoptic_quality(np.zeros(4), np.zeros(4), iou_threshold=1.5), "")
    raises("one rater", ValueError, lambda: sm.fuse([truth]), "2 raters")
    raises("raters of two shapes", ValueError, lambda: sm.fuse([truth, truth[:-1]]), "shape")
    raises("unknown fusion method", ValueError, lambda: sm.fuse([truth, truth], method="mean"), "mean")
    raises("bad STAPLE init", ValueError, lambda: sm.fuse([truth, truth], init=1.5), "init")
    chk.report()


if __name__ == "__main__":
    main()
