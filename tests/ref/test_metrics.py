"""Every metric of include/segloss/metrics.h against an independent numpy /
scipy implementation of each documented convention, on random blobby
masks in 2-D and 3-D with anisotropic spacing, plus the empty-mask table of
docs/metrics.md as named checks.

The library is loaded through ctypes, which the sanitized build cannot do:
sanitized: skip
(tests/unit/test_metrics.c runs the same paths under ASan+UBSan).

The references work on the whole image (no crop), with scipy's EDT:
  MONAI / MetricsReloaded : HD95 = max of the directed percentiles, ASSD pooled
  MedPy                   : hd95 = percentile of the pooled set, assd = mean of
                            the two directed means
  plastimatch-style       : mean of the directed percentiles
  DeepMind surface-distance: corner-grid surfels, area-weighted means,
                            percentile by cumulative area (searchsorted),
                            surface Dice at tolerance
"""
import math
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(__file__))
import geomref as G  # noqa: E402
from slref import QUICK, Check  # noqa: E402
from surfelref import area_table_ref, codes_ref  # noqa: E402

ck = Check("test_metrics")
rng = np.random.default_rng(7)
INF = math.inf


def blobs(shape, sigma, frac, r=rng):
    f = ndimage.gaussian_filter(r.standard_normal(shape), sigma)
    return f > np.quantile(f, 1.0 - frac)


def pair(shape, sigma, frac, shift):
    """a target and a prediction that resembles it: the same field, shifted
    and re-noised, so distances are small but not trivial"""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    g = f > np.quantile(f, 1.0 - frac)
    f2 = np.roll(f, shift, axis=tuple(range(len(shape)))) + 0.3 * ndimage.gaussian_filter(
        rng.standard_normal(shape), sigma / 2)
    p = f2 > np.quantile(f2, 1.0 - frac * 1.1)
    return p, g


# ---- references ----------------------------------------------------------------
def ref_overlap(p, g):
    tp = float(np.sum(p & g)); fp = float(np.sum(p & ~g)); fn = float(np.sum(~p & g)); tn = float(np.sum(~p & ~g))
    n = tp + fp + fn + tn
    o = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    o["dice"] = 2 * tp / (2 * tp + fp + fn)
    o["iou"] = tp / (tp + fp + fn)
    o["precision"] = tp / (tp + fp)
    o["recall"] = tp / (tp + fn)
    o["specificity"] = tn / (tn + fp)
    o["voe"] = 1 - o["iou"]
    o["rvd"] = ((tp + fp) - (tp + fn)) / (tp + fn)
    o["volume_similarity"] = 1 - abs(fn - fp) / (2 * tp + fp + fn)
    o["mcc"] = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n ** 2
    o["kappa"] = (po - pe) / (1 - pe)
    return o


def border_ref(m):
    return m & ~ndimage.binary_erosion(m, ndimage.generate_binary_structure(m.ndim, 1), border_value=0)


def border_dists(p, g, sp):
    bp, bg = border_ref(p), border_ref(g)
    dp = ndimage.distance_transform_edt(~bg, sampling=sp)[bp]
    dg = ndimage.distance_transform_edt(~bp, sampling=sp)[bg]
    return dp, dg


def surfel_dists(p, g, sp):
    cp, cg = codes_ref(p), codes_ref(g)
    full = 2 ** (2 ** p.ndim) - 1
    sp_, sg_ = (cp != 0) & (cp != full), (cg != 0) & (cg != full)
    table = area_table_ref(p.ndim, sp)
    dp = ndimage.distance_transform_edt(~sg_, sampling=sp)[sp_]
    dg = ndimage.distance_transform_edt(~sp_, sampling=sp)[sg_]
    return dp, table[cp[sp_]], dg, table[cg[sg_]]


def dm_percentile(d, w, q):
    """DeepMind compute_robust_hausdorff, one direction"""
    order = np.lexsort((w, d))  # sorted by (distance, area), as sorted(zip(d, w))
    d, w = d[order], w[order]
    cum = np.cumsum(w) / np.sum(w)
    idx = np.searchsorted(cum, q / 100.0)
    return d[min(idx, len(d) - 1)]


def raw_dists(p, g, sp, surface):
    if surface == "border":
        dp, dg = border_dists(p, g, sp)
        return dp, np.ones_like(dp), dg, np.ones_like(dg)
    return surfel_dists(p, g, sp)


def ref_distances(raw, q, hd_mode, assd_mode, tau, surface):
    dp, wp, dg, wg = raw
    if surface == "border":
        pp, pg = np.percentile(dp, q), np.percentile(dg, q)
        pooled = np.percentile(np.concatenate([dp, dg]), q)
    else:
        pp, pg = dm_percentile(dp, wp, q), dm_percentile(dg, wg, q)
        pooled = dm_percentile(np.concatenate([dp, dg]), np.concatenate([wp, wg]), q)
    o = {"hd": max(dp.max(), dg.max()), "msd_pred_to_gt": dp.max(), "msd_gt_to_pred": dg.max(),
         "hd_perc_pred_to_gt": pp, "hd_perc_gt_to_pred": pg,
         "asd_pred_to_gt": np.sum(dp * wp) / np.sum(wp), "asd_gt_to_pred": np.sum(dg * wg) / np.sum(wg),
         "n_surf_pred": len(dp), "n_surf_gt": len(dg)}
    o["hd_perc"] = {"max": max(pp, pg), "union": pooled, "mean": 0.5 * (pp + pg)}[hd_mode]
    o["assd"] = ((np.sum(dp * wp) + np.sum(dg * wg)) / (np.sum(wp) + np.sum(wg)) if assd_mode == "pooled"
                 else 0.5 * (o["asd_pred_to_gt"] + o["asd_gt_to_pred"]))
    o["nsd"] = (np.sum(wp[dp <= tau]) + np.sum(wg[dg <= tau])) / (np.sum(wp) + np.sum(wg))
    return o


def ref_biou(p, g, sp, d):
    def band(m):
        e = ndimage.distance_transform_edt(np.pad(m, 1), sampling=sp)
        e = e[tuple(slice(1, -1) for _ in m.shape)]
        return m & (e <= d)
    bp, bg = band(p), band(g)
    return np.sum(bp & bg) / np.sum(bp | bg)


def ref_lesions(p, g, conn_rank, match="overlap", k=1, t=0.5):
    st = ndimage.generate_binary_structure(p.ndim, conn_rank)
    lp, npred = ndimage.label(p, st)
    lg, ngt = ndimage.label(g, st)
    ov = np.zeros((ngt + 1, npred + 1), np.int64)
    np.add.at(ov, (lg.ravel(), lp.ravel()), 1)
    ov = ov[1:, 1:]
    szg = np.bincount(lg.ravel(), minlength=ngt + 1)[1:]
    szp = np.bincount(lp.ravel(), minlength=npred + 1)[1:]

    def rule(size, inter_row, other_sizes):
        touch = inter_row > 0
        inter = inter_row.sum()
        uni = other_sizes[touch].sum()
        if match == "overlap":
            return inter_row.max(initial=0) >= k
        return inter / (size + uni - inter) >= t
    det = np.array([rule(szg[i], ov[i], szp) for i in range(ngt)], bool)
    mat = np.array([rule(szp[j], ov[:, j], szg) for j in range(npred)], bool)
    dice = np.array([2 * ov[i].sum() / (szg[i] + szp[ov[i] > 0].sum()) for i in range(ngt)])
    tp = int(det.sum()); fn = ngt - tp; fp = npred - int(mat.sum())
    return {"lesions_gt": ngt, "lesions_pred": npred, "lesion_tp": tp, "lesion_fn": fn, "lesion_fp": fp,
            "lesion_precision": mat.sum() / npred, "lesion_recall": tp / ngt,
            "lesion_f1": 2 * tp / (2 * tp + fp + fn), "lesion_dice": dice.mean(),
            "gt_dice": dice, "gt_detected": det, "pred_matched": mat}


def compare(name, got, want, keys, rtol=1e-9, atol=1e-12, group=None):
    for k in keys:
        ck.close("%s %s" % (name, k), got[k], want[k], rtol=rtol, atol=atol, group=group or k)


OVERLAP_KEYS = ["tp", "fp", "fn", "tn", "dice", "iou", "precision", "recall", "specificity", "voe", "rvd",
                "volume_similarity", "mcc", "kappa"]
DIST_KEYS = ["hd", "hd_perc", "hd_perc_pred_to_gt", "hd_perc_gt_to_pred", "assd", "asd_pred_to_gt",
             "asd_gt_to_pred", "msd_pred_to_gt", "msd_gt_to_pred", "nsd", "n_surf_pred", "n_surf_gt"]

# ---- random cases ---------------------------------------------------------------------
CASES = [((64, 72), (0.9, 0.6), 3.0, 0.2, (2, -1)),
         ((28, 34, 30), (2.5, 0.8, 0.9), 2.5, 0.15, (1, 2, -1)),
         ((70, 50), (1.0, 1.0), 2.0, 0.3, (0, 1))]
if not QUICK:
    CASES.append(((40, 48, 44), (1.5, 0.7, 0.7), 3.0, 0.1, (1, -2, 1)))

for ci, (shape, sp, sigma, frac, shift) in enumerate(CASES):
    p, g = pair(shape, sigma, frac, shift)
    name = "case%d %dD" % (ci, len(shape))
    r = G.evaluate_mask(p, g, sp)
    compare(name, r, ref_overlap(p, g), OVERLAP_KEYS)
    vox = float(np.prod(sp))
    ck.close(name + " vol_pred", r["vol_pred"], p.sum() * vox, group="volume")
    ck.close(name + " vol_gt", r["vol_gt"], g.sum() * vox, group="volume")
    for surface in ("border", "surfels"):
        raw = raw_dists(p, g, sp, surface)
        for hd_mode in ("max", "union", "mean"):
            for assd_mode, q, tau in (("pooled", 95.0, 1.3), ("mean", 50.0, 2.0), ("pooled", 100.0, 0.5),
                                      ("mean", 0.0, 1.0), ("pooled", 37.5, 0.9)):
                r = G.evaluate_mask(p, g, sp, hd_mode=hd_mode, assd_mode=assd_mode, percentile=q,
                                    nsd_tolerance=tau, surface=surface, metrics=G.MET_DISTANCE | G.MET_NSD)
                want = ref_distances(raw, q, hd_mode, assd_mode, tau, surface)
                compare("%s %s hd=%s assd=%s q=%g tau=%g" % (name, surface, hd_mode, assd_mode, q, tau), r, want,
                        DIST_KEYS, group=surface + "_distances")
                if QUICK:
                    break
    for d in (1.0, 2.0, 3.5):
        r = G.evaluate_mask(p, g, sp, biou_width=d, metrics=G.MET_BIOU)
        ck.close("%s biou d=%g" % (name, d), r["biou"], ref_biou(p, g, sp, d), group="biou")
    for conn, rank in ((0, len(shape)), (4 if len(shape) == 2 else 6, 1)):
        for match, k, t in (("overlap", 1, 0.5), ("overlap", 5, 0.5), ("iou", 1, 0.3), ("iou", 1, 0.6)):
            r = G.evaluate_mask(p, g, sp, connectivity=conn, lesion_match=match, lesion_min_overlap=k,
                                lesion_iou=t, metrics=G.MET_LESION)
            want = ref_lesions(p, g, rank, match, k, t)
            compare("%s lesions conn=%d %s k=%d t=%g" % (name, conn, match, k, t), r, want,
                    ["lesions_gt", "lesions_pred", "lesion_tp", "lesion_fn", "lesion_fp", "lesion_precision",
                     "lesion_recall", "lesion_f1", "lesion_dice"], group="lesion")
            rep = G.lesions(p, g, connectivity=conn, lesion_match=match, lesion_min_overlap=k, lesion_iou=t)
            ck.close("%s lesion report per-lesion dice conn=%d %s" % (name, conn, match), rep["gt_dice"],
                     want["gt_dice"], group="lesion")
            ck.true("%s lesion report detected/matched flags conn=%d %s" % (name, conn, match),
                    np.array_equal(np.array(rep["gt_detected"], bool), want["gt_detected"])
                    and np.array_equal(np.array(rep["pred_matched"], bool), want["pred_matched"]))
    # clDice: the formula on the library's skeletons (skeletons are tested in test_edt.py)
    r = G.evaluate_mask(p, g, sp, metrics=G.MET_CLDICE)
    sp_, sg_ = G.skeletonize(p), G.skeletonize(g)
    tprec = np.sum(sp_ & g) / np.sum(sp_)
    tsens = np.sum(sg_ & p) / np.sum(sg_)
    ck.close(name + " cldice topo_precision", r["topo_precision"], tprec, group="cldice")
    ck.close(name + " cldice topo_sensitivity", r["topo_sensitivity"], tsens, group="cldice")
    ck.close(name + " cldice", r["cldice"], 2 * tprec * tsens / (tprec + tsens), group="cldice")
    # raw distances: the same multiset as the reference, in raster order
    for surface in ("border", "surfels"):
        sd = G.surface_distances(p, g, sp, surface)
        dp, wp, dg, wg = raw_dists(p, g, sp, surface)
        for k, want in (("d_pred_to_gt", dp), ("d_gt_to_pred", dg), ("w_pred", wp), ("w_gt", wg)):
            ck.close("%s raw %s %s" % (name, surface, k), sd[k], want, group="raw_distances")
    # threads: 1 and 2 give identical results
    a = G.evaluate_mask(p, g, sp, threads=1)
    b = G.evaluate_mask(p, g, sp, threads=2)
    ck.true(name + " threads 1 vs 2 identical",
            all((a[k] == b[k]) or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a))

# ---- a multi-label case: pred and gt of different dtypes, an absent label ------------------
shape, sp = (30, 36, 33), (2.0, 0.75, 0.8)
gt = np.zeros(shape, np.int16)
pr = np.zeros(shape, np.uint8)
for L in (1, 2, 3):
    pp_, gg_ = pair(shape, 2.5, 0.12, (1, 0, -1))
    gt[gg_] = L
    pr[pp_] = L
res = G.evaluate(pr, gt, [0, 1, 2, 3, 9], sp)
for rr, L in zip(res, [0, 1, 2, 3, 9]):
    p, g = pr == L, gt == L
    ck.true("multilabel label %d is reported" % L, rr["label"] == L)
    if L == 9:
        continue
    single = G.evaluate_mask(p, g, sp)
    for k in OVERLAP_KEYS + DIST_KEYS + ["biou", "lesion_f1", "lesion_dice", "cldice"]:
        ck.close("multilabel label %d %s equals the binary evaluation" % (L, k), rr[k], single[k], rtol=0, atol=0,
                 group="multilabel")
    compare("multilabel label %d" % L, rr, ref_overlap(p, g), ["dice", "iou", "mcc"], group="multilabel_ref")
# float label maps: 2.0 is label 2
resf = G.evaluate(pr.astype(np.float32), gt.astype(np.float64), [2], sp)
ck.close("float label maps match integer ones", resf[0]["hd_perc"], res[2]["hd_perc"], rtol=0, atol=0,
         group="multilabel")

# ---- the empty-mask table (docs/metrics.md) ------------------------------------------------
ONE = ["dice", "iou", "precision", "recall", "specificity", "volume_similarity", "mcc", "kappa", "nsd", "biou",
       "lesion_f1", "lesion_precision", "lesion_recall", "lesion_dice", "cldice", "topo_precision",
       "topo_sensitivity"]
DIST = ["hd", "hd_perc", "hd_perc_pred_to_gt", "hd_perc_gt_to_pred", "assd", "asd_pred_to_gt", "asd_gt_to_pred",
        "msd_pred_to_gt", "msd_gt_to_pred"]
for shape in ((12, 13), (6, 7, 8)):
    z = np.zeros(shape, bool)
    m = z.copy()
    m[tuple(slice(2, 5) for _ in shape)] = True
    for surface in ("border", "surfels"):
        r = G.evaluate_mask(z, z, surface=surface)
        ck.true("empty both %dD %s: flags" % (len(shape), surface), r["empty_pred"] == 1 and r["empty_gt"] == 1)
        for k in ONE:
            ck.true("empty both %dD %s: %s = 1 (got %r)" % (len(shape), surface, k, r[k]), r[k] == 1.0)
        for k in DIST + ["voe", "rvd"]:
            ck.true("empty both %dD %s: %s = 0 (got %r)" % (len(shape), surface, k, r[k]), r[k] == 0.0)
        ck.true("empty both %dD: lesion counts 0" % len(shape),
                r["lesions_gt"] == 0 and r["lesions_pred"] == 0 and r["lesion_tp"] == 0)
        for who, (p, g) in (("pred", (z, m)), ("gt", (m, z))):
            r = G.evaluate_mask(p, g, surface=surface)
            ck.true("empty %s %dD %s: flags" % (who, len(shape), surface),
                    r["empty_pred"] == (who == "pred") and r["empty_gt"] == (who == "gt"))
            for k in ONE:
                if k == "specificity":
                    continue  # measures the background: keeps its natural value
                ck.true("empty %s %dD %s: %s = 0 (got %r)" % (who, len(shape), surface, k, r[k]), r[k] == 0.0)
            for k in DIST:
                ck.true("empty %s %dD %s: %s = +inf (got %r)" % (who, len(shape), surface, k, r[k]), r[k] == INF)
            ck.true("empty %s %dD %s: voe = 1" % (who, len(shape), surface), r["voe"] == 1.0)
            ck.true("empty %s %dD %s: rvd = %s" % (who, len(shape), surface, "-1" if who == "pred" else "+inf"),
                    r["rvd"] == (-1.0 if who == "pred" else INF))
            ck.close("empty %s %dD %s: specificity natural" % (who, len(shape), surface), r["specificity"],
                     1.0 if who == "pred" else 1 - m.sum() / m.size, group="empty")
            n_other = r["n_surf_gt"] if who == "pred" else r["n_surf_pred"]
            ck.true("empty %s %dD %s: the other side's surface is counted" % (who, len(shape), surface),
                    n_other > 0)
# P == G == the whole image: no negatives, perfect agreement
full = np.ones((5, 6), bool)
r = G.evaluate_mask(full, full)
ck.true("full image both: dice, mcc, kappa, specificity = 1",
        all(r[k] == 1.0 for k in ("dice", "mcc", "kappa", "specificity")))
ck.true("full image both: hd = 0", r["hd"] == 0.0)

# ---- percentiles: numpy's linear method ------------------------------------------------------
for n in (1, 2, 7, 100, 1001):
    v = np.round(rng.random(n) * 10, 1)  # many ties
    for q in (0, 12.5, 50, 95, 99.9, 100):
        ck.close("percentile n=%d q=%g" % (n, q), G.percentile(v, q), np.percentile(v, q), rtol=1e-15, atol=0,
                 group="percentile")

# ---- requested groups only: the rest is NaN ------------------------------------------------------
p, g = pair((20, 22), 2.0, 0.3, (1, 1))
r = G.evaluate_mask(p, g, metrics=G.MET_OVERLAP)
ck.true("groups: only overlap computed, distances NaN", math.isnan(r["hd"]) and math.isnan(r["nsd"])
        and not math.isnan(r["dice"]) and r["lesions_gt"] == -1)

# ---- bad arguments give codes, not crashes ------------------------------------------------------
for kw, code in (({"percentile": 101.0}, 1), ({"nsd_tolerance": -1.0}, 1), ({"biou_width": 0.0}, 1),
                 ({"connectivity": 5}, 1), ({"lesion_iou": 0.0}, 1), ({"lesion_min_overlap": 0}, 1),
                 ({"connectivity": 6}, 1)):
    try:
        G.evaluate_mask(p, g, **kw)
        ck.true("bad option %r refused" % kw, False)
    except G.SlError as e:
        ck.true("bad option %r refused with code %d (got %d)" % (kw, code, e.code), e.code == code)
try:
    G.evaluate_mask(np.zeros(9, bool), np.zeros(9, bool), surface="surfels")
    ck.true("surfels on 1-D refused", False)
except G.SlError as e:
    ck.true("surfels on 1-D refused with SL_EUNSUPPORTED", e.code == 13)
ck.true("describe names every convention",
        G.describe(3, hd_mode="union", surface="surfels") ==
        "hd_mode=union percentile=95 percentile_rule=area-weighted assd_mode=pooled surface=surfels nsd_tol=1 "
        "biou_width=2 connectivity=26 lesion_match=overlap>=1")

ck.report()
