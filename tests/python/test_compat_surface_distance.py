"""segloss.compat.surface_distance against a transcription of DeepMind's
surface_distance/metrics.py procedure written here: neighbour codes on the
voxel-corner grid, surfels = codes neither empty nor full, scipy EDTs of
the complement of the other surface, lists sorted by (distance, area), and
the metric formulas on those lists, including the empty-mask results.

Surfel sizes come from tests/ref/surfelref.py: in 2-D DeepMind's
marching-squares lengths (checked analytically below), in 3-D DeepMind's
neighbour-code area table. 3-D anisotropic cases are also compared, to
1e-9, with tests/ref/dmsurfref.py, a separate literal transcription of
DeepMind's compute_surface_distances (its 2x2x2 correlation kernel, its
normals table and area formula, its sorting) and metrics."""
# sanitized: skip (loads libsegloss.so through ctypes)
import math
import warnings

import numpy as np
from scipy import ndimage as ndi

import pyref  # noqa: F401  (paths)
import dmsurfref
import slref
from surfelref import area_table_ref, codes_ref

from segloss.compat import surface_distance as sd

chk = slref.Check("segloss.compat.surface_distance")
rng = np.random.default_rng(9)


# ---- DeepMind's procedure, transcribed ------------------------------------------
def ref_surface_distances(mask_gt, mask_pred, spacing_mm):
    if not (mask_gt | mask_pred).any():
        e = np.array([])
        return {"distances_gt_to_pred": e, "distances_pred_to_gt": e, "surfel_areas_gt": e, "surfel_areas_pred": e}
    full = 2 ** (2 ** mask_gt.ndim) - 1
    table = area_table_ref(mask_gt.ndim, spacing_mm)
    cg, cp = codes_ref(mask_gt), codes_ref(mask_pred)
    borders_gt, borders_pred = (cg != 0) & (cg != full), (cp != 0) & (cp != full)
    dist_gt = ndi.distance_transform_edt(~borders_gt, sampling=spacing_mm) if borders_gt.any() \
        else np.inf * np.ones(borders_gt.shape)
    dist_pred = ndi.distance_transform_edt(~borders_pred, sampling=spacing_mm) if borders_pred.any() \
        else np.inf * np.ones(borders_pred.shape)
    d_gp, d_pg = dist_pred[borders_gt], dist_gt[borders_pred]
    a_g, a_p = table[cg[borders_gt]], table[cp[borders_pred]]
    if d_gp.shape != (0,):
        s = np.array(sorted(zip(d_gp, a_g)))
        d_gp, a_g = s[:, 0], s[:, 1]
    if d_pg.shape != (0,):
        s = np.array(sorted(zip(d_pg, a_p)))
        d_pg, a_p = s[:, 0], s[:, 1]
    return {"distances_gt_to_pred": d_gp, "distances_pred_to_gt": d_pg, "surfel_areas_gt": a_g,
            "surfel_areas_pred": a_p}


def ref_average(s):
    return (np.sum(s["distances_gt_to_pred"] * s["surfel_areas_gt"]) / np.sum(s["surfel_areas_gt"]),
            np.sum(s["distances_pred_to_gt"] * s["surfel_areas_pred"]) / np.sum(s["surfel_areas_pred"]))


def ref_robust_hausdorff(s, percent):
    def one(d, a):
        if len(d) > 0:
            cum = np.cumsum(a) / np.sum(a)
            idx = np.searchsorted(cum, percent / 100.0)
            return d[min(idx, len(d) - 1)]
        return np.inf
    return max(one(s["distances_gt_to_pred"], s["surfel_areas_gt"]),
               one(s["distances_pred_to_gt"], s["surfel_areas_pred"]))


def ref_overlap(s, tol):
    return (np.sum(s["surfel_areas_gt"][s["distances_gt_to_pred"] <= tol]) / np.sum(s["surfel_areas_gt"]),
            np.sum(s["surfel_areas_pred"][s["distances_pred_to_gt"] <= tol]) / np.sum(s["surfel_areas_pred"]))


def ref_surface_dice(s, tol):
    og = np.sum(s["surfel_areas_gt"][s["distances_gt_to_pred"] <= tol])
    op = np.sum(s["surfel_areas_pred"][s["distances_pred_to_gt"] <= tol])
    return (og + op) / (np.sum(s["surfel_areas_gt"]) + np.sum(s["surfel_areas_pred"]))


def ref_dice(g, p):
    vs = g.sum() + p.sum()
    if vs == 0:
        return np.nan
    return 2 * (g & p).sum() / vs


# ---------------------------------------------------------------------------------
def pair(shape, sigma, frac):
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    g = f > np.quantile(f, 1 - frac)
    f2 = np.roll(f, 1, axis=1) + 0.4 * ndi.gaussian_filter(rng.standard_normal(shape), sigma / 2)
    p = f2 > np.quantile(f2, 1 - frac * 1.15)
    return g, p


def close(what, got, want, rtol=1e-12, atol=1e-12, group=None):
    """Check.close with NaN == NaN (DeepMind's 0/0 results are part of the behaviour)"""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    chk.true("%s: NaN where the reference has none, or the reverse (%s vs %s)" % (what, got, want),
             got.shape == want.shape and np.array_equal(np.isnan(got), np.isnan(want)))
    if got.shape == want.shape:
        chk.close(what, np.where(np.isnan(got), 0, got), np.where(np.isnan(want), 0, want), rtol=rtol, atol=atol,
                  group=group)


def canonical(d, a):
    """(distance, area) pairs in a fixed order that float rounding of equal distances cannot permute"""
    o = np.lexsort((a, np.round(d, 9)))
    return d[o], a[o]


def compare_all(name, g, p, sp, rtol=1e-12):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # 0/0 of empty masks, in both
        got = sd.compute_surface_distances(g, p, sp)
        want = ref_surface_distances(g, p, sp)
        for side in ("gt", "pred"):
            dk = "distances_gt_to_pred" if side == "gt" else "distances_pred_to_gt"
            ak = "surfel_areas_" + side
            d, a = got[dk], got[ak]
            chk.true("%s %s sorted by (distance, area)" % (name, side),
                     np.all((d[1:] > d[:-1]) | ((d[1:] == d[:-1]) & (a[1:] >= a[:-1]))))
            chk.true("%s %s dtypes" % (name, side), d.dtype == np.float64 and a.dtype == np.float64)
            gd, ga = canonical(d, a)
            wd, wa = canonical(want[dk], want[ak])
            chk.close("%s %s" % (name, dk), gd, wd, rtol=rtol, atol=1e-12, group="lists")
            chk.close("%s %s" % (name, ak), ga, wa, rtol=rtol, atol=1e-12, group="lists")
        close("%s average" % name, sd.compute_average_surface_distance(got), ref_average(want),
                  rtol=rtol, atol=1e-12, group="average")
        for q in (50, 95, 100):
            close("%s robust_hausdorff %d" % (name, q), sd.compute_robust_hausdorff(got, q),
                      ref_robust_hausdorff(want, q), rtol=rtol, atol=1e-12, group="robust_hausdorff")
        for tol in (0.0, 1.0, 2.5):
            close("%s overlap %g" % (name, tol), sd.compute_surface_overlap_at_tolerance(got, tol),
                      ref_overlap(want, tol), rtol=rtol, atol=1e-12, group="overlap")
            close("%s surface_dice %g" % (name, tol), sd.compute_surface_dice_at_tolerance(got, tol),
                      ref_surface_dice(want, tol), rtol=rtol, atol=1e-12, group="surface_dice")
        close("%s dice" % name, sd.compute_dice_coefficient(g, p), ref_dice(g, p), rtol=1e-15, atol=0,
                  group="dice")


def main():
    for shape, sp in [((60, 70), (1.0, 1.0)), ((60, 70), (0.7, 1.9)), ((24, 30, 28), (2.5, 0.8, 0.8)),
                      ((24, 30, 28), (1.0, 1.0, 1.0))]:
        g, p = pair(shape, 2.5, 0.3)
        compare_all("%dD sp=%s" % (len(shape), sp), g, p, sp)
        # which points are surfels and every distance are DeepMind's exactly: the sorted
        # distance lists do not depend on the surfel sizes
        got = sd.compute_surface_distances(g, p, sp, threads=1)
        want = ref_surface_distances(g, p, sp)
        chk.true("%dD surfel counts" % len(shape),
                 len(got["distances_gt_to_pred"]) == len(want["distances_gt_to_pred"])
                 and len(got["distances_pred_to_gt"]) == len(want["distances_pred_to_gt"]))
        chk.close("%dD sorted distances, threads=1" % len(shape), got["distances_pred_to_gt"],
                  want["distances_pred_to_gt"], rtol=1e-12, atol=1e-12, group="lists")
    # 3-D at anisotropic spacings against the literal DeepMind transcription (dmsurfref):
    # every list, average, percentile, overlap and surface Dice to 1e-9
    for k, (shape, sp) in enumerate([((18, 22, 20), (2.5, 0.8, 0.8)), ((16, 20, 24), (1.3, 0.6, 2.1)),
                                     ((20, 16, 18), (0.7, 1.9, 1.1)), ((12, 14, 16), (3.0, 0.5, 0.5))]):
        g, p = pair(shape, 1.5 + 0.5 * k, 0.25)
        got = sd.compute_surface_distances(g, p, sp)
        d_gp, a_g, d_pg, a_p = dmsurfref.surface_distances(g, p, sp)
        want = {"distances_gt_to_pred": d_gp, "surfel_areas_gt": a_g, "distances_pred_to_gt": d_pg,
                "surfel_areas_pred": a_p}
        tag = "3D DeepMind sp=%s" % (sp,)
        for dk, ak in (("distances_gt_to_pred", "surfel_areas_gt"), ("distances_pred_to_gt", "surfel_areas_pred")):
            gd, ga = canonical(got[dk], got[ak])
            wd, wa = canonical(want[dk], want[ak])
            chk.true("%s %s: %d vs %d surfels" % (tag, dk, len(gd), len(wd)), len(gd) == len(wd))
            if len(gd) == len(wd):
                chk.close("%s %s" % (tag, dk), gd, wd, rtol=1e-9, atol=1e-9, group="3D DeepMind")
                chk.close("%s %s" % (tag, ak), ga, wa, rtol=1e-9, atol=1e-9, group="3D DeepMind")
        chk.close("%s average" % tag, sd.compute_average_surface_distance(got),
                  dmsurfref.average_surface_distance((d_gp, a_g, d_pg, a_p)), rtol=1e-9, atol=1e-9,
                  group="3D DeepMind")
        for q in (50, 95, 100):
            chk.close("%s robust_hausdorff %d" % (tag, q), sd.compute_robust_hausdorff(got, q),
                      dmsurfref.robust_hausdorff((d_gp, a_g, d_pg, a_p), q), rtol=1e-9, atol=1e-9,
                      group="3D DeepMind")
        for tol in (0.0, 0.8, 1.0, 2.5):
            chk.close("%s surface_dice %g" % (tag, tol), sd.compute_surface_dice_at_tolerance(got, tol),
                      dmsurfref.surface_dice((d_gp, a_g, d_pg, a_p), tol), rtol=1e-9, atol=1e-9,
                      group="3D DeepMind")
            chk.close("%s overlap %g" % (tag, tol), sd.compute_surface_overlap_at_tolerance(got, tol),
                      ref_overlap(want, tol), rtol=1e-9, atol=1e-9, group="3D DeepMind")
    # 2-D lengths are DeepMind's marching squares: a single pixel is a closed
    # contour through the four edge midpoints, 4 * hypot(sy/2, sx/2)
    one = np.zeros((5, 6), bool)
    one[2, 3] = True
    s = sd.compute_surface_distances(one, one, (0.7, 1.9))
    chk.close("2D single pixel contour length", s["surfel_areas_gt"].sum(), 4 * math.hypot(0.35, 0.95),
              rtol=1e-14, atol=0, group="analytic")
    bar = np.zeros((6, 9), bool)
    bar[2:4, 2:7] = True   # a 2x5 rectangle: 4 + 4 + 1 + 1 straight, 4 cut corners
    s = sd.compute_surface_distances(bar, bar, (1.0, 1.0))
    chk.close("2D rectangle contour length", s["surfel_areas_gt"].sum(), 2 * (1 + 4) + 4 * math.sqrt(0.5),
              rtol=1e-14, atol=0, group="analytic")

    # empty masks: DeepMind's lists and the NaN / inf they lead to
    e2 = np.zeros((20, 25), bool)
    g, p = pair((20, 25), 2, 0.3)
    for what, a, b in (("both empty", e2, e2), ("gt empty", e2, p), ("pred empty", g, e2)):
        compare_all(what, a, b, (1.0, 1.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = sd.compute_surface_distances(e2, e2, (1.0, 1.0))
        chk.true("both empty: four empty lists", all(v.shape == (0,) for v in s.values()))
        chk.true("both empty: NaN averages", all(np.isnan(v) for v in sd.compute_average_surface_distance(s)))
        chk.true("both empty: robust Hausdorff inf", sd.compute_robust_hausdorff(s, 95) == np.inf)
        chk.true("both empty: NaN surface Dice", np.isnan(sd.compute_surface_dice_at_tolerance(s, 1)))
        chk.true("both empty: NaN volumetric Dice", np.isnan(sd.compute_dice_coefficient(e2, e2)))
        s = sd.compute_surface_distances(e2, p, (1.0, 1.0))
        chk.true("gt empty: pred->gt all inf, gt->pred empty",
                 np.all(np.isinf(s["distances_pred_to_gt"])) and s["distances_gt_to_pred"].shape == (0,))
        chk.true("gt empty: surface Dice 0", sd.compute_surface_dice_at_tolerance(s, 1) == 0)

    # DeepMind's argument errors
    def err(what, fn, contains):
        try:
            fn()
        except ValueError as ex:
            chk.true("%s: %r lacks %r" % (what, str(ex), contains), contains in str(ex))
            return
        except Exception as ex:  # noqa: BLE001
            chk.true("%s: raised %s" % (what, type(ex).__name__), False)
            return
        chk.true("%s: no exception" % what, False)
    err("uint8 mask", lambda: sd.compute_surface_distances(g.astype(np.uint8), p, (1, 1)), "of type bool")
    err("list mask", lambda: sd.compute_surface_distances(g.tolist(), p, (1, 1)), "numpy array")
    err("spacing length", lambda: sd.compute_surface_distances(g, p, (1, 1, 1)), "spacing_mm")
    err("1-D masks", lambda: sd.compute_surface_distances(g[0], p[0], (1,)), "Only 2D and 3D")
    err("ndim differ", lambda: sd.compute_surface_distances(g, p[None], (1, 1)), "compatible shape")
    err("negative spacing (C message)", lambda: sd.compute_surface_distances(g, p, (-1.0, 1.0)), "spacing")
    chk.report()


if __name__ == "__main__":
    main()
