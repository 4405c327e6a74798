"""segloss.metrics.evaluate: every convention of `segloss eval` reaches the
library and comes back in the right column. References: the MedPy,
DeepMind and MONAI transcriptions of the compat tests (border voxels with a
pooled or max percentile, mean or pooled ASSD, DeepMind's surfels), numpy
overlap formulas, scipy lesion labelling and Euclidean boundary bands
(the C engine itself is tested in depth by tests/ref/test_metrics.py)."""
# sanitized: skip (loads libsegloss.so through ctypes)
import math
import warnings

import numpy as np
import torch
from scipy import ndimage as ndi

import pyref  # noqa: F401  (paths)
import slref
import test_compat_medpy as medref
import test_compat_monai as monairef
import test_compat_surface_distance as dmref

import segloss
from segloss import metrics as sm

chk = slref.Check("segloss.metrics")
rng = np.random.default_rng(21)


def label_maps(shape, ncls=3):
    f = ndi.gaussian_filter(rng.standard_normal(shape), 2.5)
    g = np.digitize(f, np.quantile(f, [0.55, 0.75, 0.9][:ncls]))
    f2 = np.roll(f, 1, axis=0) + 0.35 * ndi.gaussian_filter(rng.standard_normal(shape), 1.2)
    p = np.digitize(f2, np.quantile(f2, [0.5, 0.78, 0.92][:ncls]))
    return p.astype(np.uint8), g.astype(np.int16)


def ref_overlap(p, g, vox):
    tp = float(np.sum(p & g)); fp = float(np.sum(p & ~g)); fn = float(np.sum(~p & g)); tn = float(np.sum(~p & ~g))
    n = tp + fp + fn + tn
    po, pe = (tp + tn) / n, ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n ** 2
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "dice": medref.ref_dc(p, g), "iou": medref.ref_jc(p, g),
            "precision": medref.ref_precision(p, g), "recall": medref.ref_recall(p, g),
            "specificity": tn / (tn + fp), "voe": 1 - medref.ref_jc(p, g), "rvd": medref.ref_ravd(p, g),
            "volume_similarity": 1 - abs(fn - fp) / (2 * tp + fp + fn),
            "mcc": (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)),
            "kappa": (po - pe) / (1 - pe), "vol_pred": (tp + fp) * vox, "vol_gt": (tp + fn) * vox}


def ref_lesions(p, g, rank, iou=None):
    st = ndi.generate_binary_structure(p.ndim, rank)
    lp, npred = ndi.label(p, st)
    lg, ngt = ndi.label(g, st)
    ov = np.zeros((ngt + 1, npred + 1), np.int64)
    np.add.at(ov, (lg.ravel(), lp.ravel()), 1)
    ov = ov[1:, 1:]
    szg, szp = np.bincount(lg.ravel(), minlength=ngt + 1)[1:], np.bincount(lp.ravel(), minlength=npred + 1)[1:]

    def hit(size, row, other):
        inter, uni = row.sum(), other[row > 0].sum()
        return row.max(initial=0) >= 1 if iou is None else inter / (size + uni - inter) >= iou
    det = [hit(szg[i], ov[i], szp) for i in range(ngt)]
    mat = [hit(szp[j], ov[:, j], szg) for j in range(npred)]
    tp, fp = int(sum(det)), npred - int(sum(mat))
    return {"lesions_gt": ngt, "lesions_pred": npred, "lesion_tp": tp, "lesion_fn": ngt - tp, "lesion_fp": fp,
            "lesion_precision": sum(mat) / npred, "lesion_recall": tp / ngt,
            "lesion_f1": 2 * tp / (2 * tp + fp + ngt - tp),
            "lesion_dice": np.mean([2 * ov[i].sum() / (szg[i] + szp[ov[i] > 0].sum()) for i in range(ngt)])}


def ref_biou(p, g, sp, d):
    def band(m):
        e = ndi.distance_transform_edt(np.pad(m, 1), sampling=sp)[tuple(slice(1, -1) for _ in m.shape)]
        return m & (e <= d)
    bp, bg = band(p), band(g)
    return np.sum(bp & bg) / np.sum(bp | bg)


def compare(name, rec, want, rtol=1e-9, atol=1e-12):
    for k, v in want.items():
        chk.close("%s %s" % (name, k), rec[k], v, rtol=rtol, atol=atol, group=k)


def raises(what, exc, fn, contains):
    try:
        fn()
    except exc as e:
        chk.true("%s: %r lacks %r" % (what, str(e), contains), contains in str(e))
        return
    except Exception as e:  # noqa: BLE001
        chk.true("%s: raised %s(%s), expected %s" % (what, type(e).__name__, e, exc.__name__), False)
        return
    chk.true("%s: no exception" % what, False)


def main():
    for shape, sp in [((70, 64), (0.9, 0.6)), ((26, 30, 28), (2.5, 0.8, 0.9))]:
        p, g = label_maps(shape)
        nd = len(shape)
        tag = "%dD" % nd
        vox = float(np.prod(sp))
        recs = sm.evaluate(p, g, spacing=sp, metrics="all")
        chk.true("%s labels found: %s" % (tag, [r["label"] for r in recs]), [r["label"] for r in recs] == [1, 2, 3])
        chk.true("%s columns in order" % tag, list(recs[0])[1:4] == ["dice", "iou", "precision"]
                 and list(recs[0])[-3:] == ["empty_pred", "empty_gt", "distance_substituted"])
        for r in recs:
            L = r["label"]
            pm, gm = p == L, g == L
            name = "%s label %d" % (tag, L)
            compare(name, r, ref_overlap(pm, gm, vox))
            # defaults: MONAI's conventions (border voxels, max of the directed 95th percentiles, pooled ASSD)
            yp = torch.from_numpy(pm[None, None].astype(np.float32))
            yt = torch.from_numpy(gm[None, None].astype(np.float32))
            compare(name + " MONAI", r, {
                "hd": monairef.ref_hausdorff(yp, yt, True, spacing=sp)[0, 0],
                "hd95": monairef.ref_hausdorff(yp, yt, True, percentile=95, spacing=sp)[0, 0],
                "assd": monairef.ref_asd(yp, yt, True, symmetric=True, spacing=sp)[0, 0],
                "asd_pred_to_gt": medref.ref_asd(pm, gm, sp), "asd_gt_to_pred": medref.ref_asd(gm, pm, sp),
                # (MONAI's own NSD divides in float32; the same count ratio in float64)
                "nsd": (np.sum(medref.ref_surface_distances(pm, gm, sp) <= 1.0)
                        + np.sum(medref.ref_surface_distances(gm, pm, sp) <= 1.0))
                / (len(medref.ref_surface_distances(pm, gm, sp)) + len(medref.ref_surface_distances(gm, pm, sp)))})
            compare(name + " lesions", r, ref_lesions(pm, gm, nd))
            chk.close(name + " biou", r["biou"], ref_biou(pm, gm, sp, 2.0), rtol=1e-12, atol=1e-12, group="biou")
            chk.true(name + " cldice in [0, 1]", 0 <= r["cldice"] <= 1 and 0 <= r["topo_precision"] <= 1)
            # MedPy's conventions
            mp = sm.evaluate(p, g, labels=[L], spacing=sp, hd_mode="union", assd_mode="mean",
                             metrics="hd95,assd,msd")[0]
            compare(name + " MedPy", mp, {"hd95": medref.ref_hd95(pm, gm, sp), "assd": medref.ref_assd(pm, gm, sp),
                                          "msd_pred_to_gt": medref.ref_surface_distances(pm, gm, sp).max(),
                                          "msd_gt_to_pred": medref.ref_surface_distances(gm, pm, sp).max()})
            # plastimatch's mean of the directed percentiles, another percentile and tolerance
            pl = sm.evaluate(p, g, labels=[L], spacing=sp, hd_mode="mean", percentile=50, nsd_tolerance=2.0,
                             metrics=["hd95", "nsd"])[0]
            d1 = medref.ref_surface_distances(pm, gm, sp)
            d2 = medref.ref_surface_distances(gm, pm, sp)
            compare(name + " mean-mode", pl, {"hd95": 0.5 * (np.percentile(d1, 50) + np.percentile(d2, 50)),
                                              "nsd": (np.sum(d1 <= 2.0) + np.sum(d2 <= 2.0)) / (len(d1) + len(d2))})
            # DeepMind's surfels
            sd = dmref.ref_surface_distances(gm, pm, sp)
            dm = sm.evaluate(p, g, labels=[L], spacing=sp, surface="surfels", assd_mode="mean", metrics="hd95,assd,nsd")[0]
            compare(name + " DeepMind", dm, {"hd95": dmref.ref_robust_hausdorff(sd, 95),
                                             "assd": np.mean(dmref.ref_average(sd)),
                                             "nsd": dmref.ref_surface_dice(sd, 1.0)})
            # lesion matching by IoU, face connectivity
            conn = 4 if nd == 2 else 6
            li = sm.evaluate(p, g, labels=[L], spacing=sp, lesion_iou=0.3, connectivity=conn, metrics="lesion")[0]
            compare(name + " lesions iou", li, ref_lesions(pm, gm, 1, iou=0.3))
        # threads and input types do not change anything
        same = sm.evaluate(torch.from_numpy(p.astype(np.int64)), g.astype(np.float32), spacing=sp, metrics="all",
                           threads=1)
        chk.true("%s torch/float inputs, 1 thread: identical records" % tag, same == recs)

    # empty masks, the substitution of infinite distances, label 0, explicit labels
    p, g = label_maps((40, 50))
    p[p == 3] = 0
    g[g == 2] = 0
    recs = {r["label"]: r for r in sm.evaluate(p, g, labels=[0, 2, 3, 7], metrics="dice,hd,assd,rvd,specificity")}
    chk.true("label 7 both empty: dice 1, distances 0", recs[7]["dice"] == 1 and recs[7]["hd"] == 0
             and recs[7]["empty_pred"] and recs[7]["empty_gt"])
    chk.true("label 2 gt empty: dice 0, hd inf, rvd inf", recs[2]["dice"] == 0 and math.isinf(recs[2]["hd"])
             and math.isinf(recs[2]["rvd"]) and recs[2]["empty_gt"] and not recs[2]["distance_substituted"])
    chk.true("label 3 pred empty: rvd -1, specificity 1", recs[3]["rvd"] == -1 and recs[3]["specificity"] == 1)
    chk.true("label 0 scored", recs[0]["dice"] > 0)
    diag = math.hypot(40 * 2.0, 50 * 1.0)
    sub = sm.evaluate(p, g, labels=[2], spacing=(2.0, 1.0), metrics="hd,assd,dice", empty_distance="diagonal")[0]
    chk.true("empty_distance='diagonal': %r" % sub, sub["hd"] == diag and sub["assd"] == diag
             and sub["distance_substituted"] and sub["dice"] == 0)
    sub = sm.evaluate(p, g, labels=[2], metrics="hd", empty_distance=100)[0]
    chk.true("empty_distance=100", sub["hd"] == 100 and sub["distance_substituted"])
    chk.true("describe", sm.describe(2, hd_mode="union").startswith("hd_mode=union percentile=95"))

    # bad inputs: one line naming the problem, the C message where the library refuses
    raises("shape mismatch", ValueError, lambda: sm.evaluate(p, g[:10]), "shape")
    raises("unknown metric", ValueError, lambda: sm.evaluate(p, g, metrics="dice,hd99"), "hd99")
    raises("unknown hd_mode", ValueError, lambda: sm.evaluate(p, g, hd_mode="median"), "hd_mode")
    raises("percentile 120 (C)", ValueError, lambda: sm.evaluate(p, g, percentile=120), "percentile")
    raises("biou_width below the spacing (C)", ValueError,
           lambda: sm.evaluate(p, g, metrics="biou", biou_width=0.1), "biou")
    raises("connectivity 6 in 2-D (C)", ValueError, lambda: sm.evaluate(p, g, metrics="lesion", connectivity=6),
           "connectivity")
    raises("fractional label map (C)", ValueError, lambda: sm.evaluate(p * 0.5, g), "not an integer")
    raises("no label at all", ValueError, lambda: sm.evaluate(np.zeros((3, 3)), np.zeros((3, 3))), "no label")
    raises("4-D", NotImplementedError, lambda: sm.evaluate(np.ones((2, 2, 2, 2)), np.ones((2, 2, 2, 2))), "4-D")
    raises("empty_distance", ValueError, lambda: sm.evaluate(p, g, empty_distance="max"), "empty_distance")
    try:
        sm.evaluate(p, g, percentile=-1)
    except segloss.Error as e:
        chk.true("C status kept on the exception", e.status == 1)
    chk.report()


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        main()
