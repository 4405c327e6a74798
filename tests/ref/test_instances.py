"""Instance matching and panoptic quality (sl_instances_eval,
sl_instances_eval_label) against a transcription of MONAI's
compute_panoptic_quality (monai/metrics/panoptic_quality.py: remapped ids,
pairwise IoU, _get_paired_iou — IoU > threshold for threshold >= 0.5,
scipy's linear_sum_assignment below — and the PQ/SQ/RQ formulas with
smooth_numerator in the denominators), plus the greedy rule and the
Hungarian rule at every threshold, on hand cases, random instance maps and
components of semantic maps; the empty cases by name.

The library is loaded through ctypes, which the sanitized build cannot do:
sanitized: skip
"""
import os
import sys

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(__file__))
import famref as F  # noqa: E402
import geomref as G  # noqa: E402
from slref import Check  # noqa: E402

ck = Check("test_instances")
rng = np.random.default_rng(1515)


# ---- MONAI, transcribed (numpy in float64 instead of torch float32) -------------------------
def pairwise_iou(pred, gt):
    tids = [t for t in np.unique(gt) if t != 0]
    pids = [p for p in np.unique(pred) if p != 0]
    m = np.zeros((len(tids), len(pids)))
    for i, t in enumerate(tids):
        tm = gt == t
        for pid in np.unique(pred[tm]):
            if pid == 0:
                continue
            j = pids.index(pid)
            pm = pred == pid
            total = tm.sum() + pm.sum()
            inter = (tm & pm).sum()
            m[i, j] = inter / (total - inter)
    return m, tids, pids


def paired_iou(m, thr, rule):
    if rule == "monai" and thr >= 0.5:
        m = np.where(m <= thr, 0.0, m)
        t, p = np.nonzero(m)
        return m[t, p], t, p
    if rule in ("monai", "hungarian"):
        if m.size == 0:
            return np.zeros(0), np.zeros(0, int), np.zeros(0, int)
        t, p = linear_sum_assignment(-m)
        iou = m[t, p]
        keep = iou > thr
        return iou[keep], t[keep], p[keep]
    # greedy: by decreasing IoU, ties by target then prediction index
    cand = sorted(((-m[i, j], i, j) for i in range(m.shape[0]) for j in range(m.shape[1]) if m[i, j] > thr))
    ut, up, out = set(), set(), []
    for neg, i, j in cand:
        if i not in ut and j not in up:
            ut.add(i), up.add(j), out.append((i, j, -neg))
    return (np.array([x[2] for x in out]), np.array([x[0] for x in out], int), np.array([x[1] for x in out], int))


def monai_pq(pred, gt, thr=0.5, rule="monai", smooth=1e-6):
    m, tids, pids = pairwise_iou(pred, gt)
    iou, t, p = paired_iou(m, thr, rule)
    tp = len(t)
    fp, fn = len(pids) - tp, len(tids) - tp
    s = float(np.sum(iou))
    return {"tp": tp, "fp": fp, "fn": fn, "iou_sum": s, "rq": tp / (tp + 0.5 * fp + 0.5 * fn + smooth),
            "sq": s / (tp + smooth), "pq": s / (tp + 0.5 * fp + 0.5 * fn + smooth),
            "pairs": sorted((tids[a], pids[b]) for a, b in zip(t, p))}


def compare(what, pred, gt, thr=0.5, rule="monai", smooth=1e-6):
    got, pairs = F.instances(pred, gt, rule, thr, smooth)
    want = monai_pq(pred, gt, thr, rule, smooth)
    ck.true("%s: TP/FP/FN %s vs %s" % (what, (got["tp"], got["fp"], got["fn"]), (want["tp"], want["fp"], want["fn"])),
            (got["tp"], got["fp"], got["fn"]) == (want["tp"], want["fp"], want["fn"]))
    ck.close("%s: PQ SQ RQ" % what, [got["pq"], got["sq"], got["rq"], got["iou_sum"]],
             [want["pq"], want["sq"], want["rq"], want["iou_sum"]], rtol=1e-12, atol=1e-12, group="pq_" + rule)
    ck.true("%s: matched pairs" % what, sorted((a, b) for a, b, _ in pairs) == want["pairs"])
    return got


# ---- hand cases -----------------------------------------------------------------------------
gt = np.zeros((6, 8), np.int32)
gt[0:2, 0:2] = 1    # 4 voxels
gt[3:6, 3:6] = 7    # 9 voxels
gt[0:2, 6:8] = 3    # 4 voxels, missed
pred = np.zeros((6, 8), np.int64)
pred[0:2, 0:2] = 5  # exact match of 1: IoU 1
pred[3:6, 3:5] = 2  # 6 of the 9: IoU 6/9
pred[5, 0] = 9      # a false positive
r = compare("hand: 3 targets, 3 predictions", pred, gt)
ck.close("hand: PQ = (1 + 2/3) / (2 + 1/2 + 1/2)", r["pq"], (1 + 2 / 3) / (3 + 1e-6), rtol=0, atol=1e-15, group="hand")
ck.close("hand: SQ = (1 + 2/3) / 2, RQ = 2 / 3", [r["sq"], r["rq"]], [(1 + 2 / 3) / (2 + 1e-6), 2 / (3 + 1e-6)],
         rtol=0, atol=1e-15, group="hand")
# IoU exactly 0.5 does not match (strictly greater), as MONAI
gt = np.zeros(4, np.uint8)
gt[:2] = 1
pred = np.zeros(4, np.uint8)
pred[1:2] = 1
r = compare("hand: IoU exactly 0.5 is not a match", pred, gt)
ck.true("hand: IoU 0.5 -> TP 0", r["tp"] == 0 and r["fp"] == 1 and r["fn"] == 1)
# where the rules differ (threshold 0.1): target A (10 voxels) overlaps
# prediction X (8 voxels) by 6 (IoU 6/12 = 0.5) and Y (8 voxels) by 4
# (IoU 4/14); target B (2 voxels) lies inside X (IoU 2/8). Greedy takes A-X
# (total 0.5, TP 1); Hungarian takes A-Y + B-X (0.536, TP 2).
gt = np.zeros(40, np.int16)
pred = np.zeros(40, np.int16)
gt[0:10] = 1            # A
pred[0:6] = 2; pred[10:12] = 2   # X
pred[6:10] = 3; pred[20:24] = 3  # Y
gt[10:12] = 4                    # B
ck.true("hand: contested pair: greedy TP 1, Hungarian TP 2",
        F.instances(pred, gt, "greedy", 0.1)[0]["tp"] == 1 and F.instances(pred, gt, "hungarian", 0.1)[0]["tp"] == 2)
for rule in ("hungarian", "greedy", "monai"):
    compare("hand: contested pair, rule %s, threshold 0.1" % rule, pred, gt, thr=0.1, rule=rule)

# ---- empty cases by name ----------------------------------------------------------------------
z = np.zeros((5, 5), np.uint8)
one = z.copy()
one[1:3, 1:3] = 4
r = compare("empty: both empty", z, z)
ck.true("empty: both empty -> PQ = SQ = RQ = 0 (MONAI)", r["pq"] == 0 and r["sq"] == 0 and r["rq"] == 0)
r = compare("empty: prediction empty", z, one)
ck.true("empty: prediction empty -> FN 1, PQ 0", r["fn"] == 1 and r["pq"] == 0)
r = compare("empty: target empty", one, z)
ck.true("empty: target empty -> FP 1, PQ 0", r["fp"] == 1 and r["pq"] == 0)
r, _ = F.instances(z, z, smooth=0.0)
ck.true("empty: smooth 0, both empty -> 0 not NaN", r["pq"] == 0 and r["sq"] == 0 and r["rq"] == 0)


# ---- random instance maps -----------------------------------------------------------------------
def blobs_instances(shape, n, r):
    """n random balls with ids 1..n painted in order; the prediction: the
    same balls shifted, some dropped, some extra, ids permuted"""
    out = np.zeros(shape, np.int32)
    grids = np.indices(shape)
    centres = [rng.uniform(0, s, n) for s in shape]
    radii = rng.uniform(r / 2, r, n)
    for k in range(n):
        d2 = sum((grids[a] - centres[a][k]) ** 2 for a in range(len(shape)))
        out[d2 <= radii[k] ** 2] = k + 1
    return out, centres, radii


for shape, n, r in (((40, 50), 12, 6.0), ((20, 24, 22), 8, 5.0), ((64, 64), 30, 5.0), ((16, 16, 16), 10, 4.0)):
    gt, centres, radii = blobs_instances(shape, n, r)
    grids = np.indices(shape)
    pred = np.zeros(shape, np.int64)
    perm = rng.permutation(n + 5) * 3 + 11
    for k in range(n):
        if rng.random() < 0.2:
            continue
        d2 = sum((grids[a] - centres[a][k] - rng.normal(0, r / 3)) ** 2 for a in range(len(shape)))
        pred[d2 <= (radii[k] * rng.uniform(0.7, 1.3)) ** 2] = perm[k]
    for k in range(3):
        c = [rng.uniform(0, s) for s in shape]
        d2 = sum((grids[a] - c[a]) ** 2 for a in range(len(shape)))
        pred[d2 <= (r / 2) ** 2] = perm[n + k]
    for rule in ("monai", "greedy", "hungarian"):
        for thr in (0.5, 0.7, 0.3, 0.1, 0.0):
            compare("random %s n=%d rule=%s thr=%g" % (shape, n, rule, thr), pred, gt, thr=thr, rule=rule)

# ---- connected components of a class of semantic maps ------------------------------------------------
for shape, conn in (((48, 52), 0), ((48, 52), 4), ((18, 20, 22), 6), ((18, 20, 22), 0)):
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    gt = np.where(f > 0.15, 2, np.where(f < -0.2, 1, 0)).astype(np.uint8)
    f2 = f + 0.3 * ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    pred = np.where(f2 > 0.15, 2, np.where(f2 < -0.2, 1, 0)).astype(np.int16)
    rank = {0: len(shape), 4: 1, 6: 1}[conn]
    st = ndimage.generate_binary_structure(len(shape), rank)
    for label in (1, 2):
        got = F.instances_label(pred, gt, label, connectivity=conn)
        want = monai_pq(ndimage.label(pred == label, st)[0], ndimage.label(gt == label, st)[0])
        ck.true("components %s conn=%d label %d: TP/FP/FN" % (shape, conn, label),
                (got["tp"], got["fp"], got["fn"]) == (want["tp"], want["fp"], want["fn"]))
        ck.close("components %s conn=%d label %d: PQ" % (shape, conn, label), [got["pq"], got["sq"], got["rq"]],
                 [want["pq"], want["sq"], want["rq"]], rtol=1e-12, atol=1e-12, group="components")

# ---- bad input -----------------------------------------------------------------------------------------
for what, code, args, kw in (("threshold above 1", 1, (one, one), {"threshold": 1.5}),
                             ("negative smooth", 1, (one, one), {"smooth": -1.0}),
                             ("non-integer id", 4, (one.astype(np.float32) + 0.5, one), {})):
    try:
        F.instances(*args, **kw)
        ck.true(what + ": refused", False)
    except G.SlError as e:
        ck.true("%s: code %d (got %d: %s)" % (what, code, e.code, e), e.code == code)
ck.report()
