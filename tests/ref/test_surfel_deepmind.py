"""--surface surfels against DeepMind surface-distance, transcribed in
tests/ref/dmsurfref.py: the surfel area of every 2x2x2 neighbourhood
configuration (all 256, unit and anisotropic spacing) and every 2x2 one,
then HD, HD95, both ASSD conventions, the directed means and NSD on random
3-D shapes at anisotropic spacing to 1e-9, and the empty cases by name.

The library is loaded through ctypes, which the sanitized build cannot do:
sanitized: skip
"""
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(__file__))
import dmsurfref as D  # noqa: E402
import geomref as G  # noqa: E402
from slref import QUICK, Check  # noqa: E402

ck = Check("test_surfel_deepmind")
rng = np.random.default_rng(2025)
TOL = 1e-9

# ---- every neighbourhood configuration -----------------------------------------
# A 2x2x2 mask: the corner point (1, 1, 1) of its 3x3x3 corner grid sees all
# eight voxels; DeepMind's code at that point (its correlation) reads its
# own table, segloss's weight at that point must be the same number.
for sp in ((1.0, 1.0, 1.0), (2.0, 0.7, 1.3), (0.5, 3.0, 0.9)):
    table = D.area_table(sp)
    got, want = [], []
    for bits in range(1, 255):
        m = np.array([(bits >> k) & 1 for k in range(8)], np.uint8).reshape(2, 2, 2)
        got.append(G.surface_elements(m, sp)[1, 1, 1])
        want.append(table[D.codes(m)[1, 1, 1]])
    ck.close("surfel area of all 254 3-D configurations at spacing %s" % (sp,), got, want, rtol=0, atol=1e-13,
             group="configurations")
for sp in ((1.0, 1.0), (1.7, 0.6)):
    table = D.length_table(sp)
    got, want = [], []
    for bits in range(1, 15):
        m = np.array([(bits >> k) & 1 for k in range(4)], np.uint8).reshape(2, 2)
        got.append(G.surface_elements(m, sp)[1, 1])
        want.append(table[D.codes(m)[1, 1]])
    ck.close("surfel length of all 14 2-D configurations at spacing %s" % (sp,), got, want, rtol=0, atol=1e-13,
             group="configurations")

# a whole random volume: every corner's weight, where the surfels are
m = ndimage.gaussian_filter(rng.standard_normal((13, 16, 11)), 1.2) > 0.2
sp = (1.9, 0.8, 1.1)
ck.close("surfel weights of a random volume == DeepMind's area map", G.surface_elements(m, sp),
         D.area_table(sp)[D.codes(m)], rtol=0, atol=1e-13, group="configurations")


# ---- metrics on random 3-D shapes ----------------------------------------------------
def shapes(shape, sigma, frac):
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    g = f > np.quantile(f, 1 - frac)
    f2 = np.roll(f, 1, axis=0) + 0.4 * ndimage.gaussian_filter(rng.standard_normal(shape), sigma / 2)
    p = f2 > np.quantile(f2, 1 - frac * 1.1)
    return p, g


cases = [((20, 24, 22), 2.0, 0.2, (2.5, 0.7, 1.1)), ((16, 30, 18), 1.5, 0.1, (1.2, 1.2, 3.0)),
         ((24, 20, 26), 3.0, 0.3, (0.6, 1.7, 0.9))]
if not QUICK:
    cases += [((30, 28, 26), 2.5, 0.05, (3.0, 0.8, 0.8)), ((18, 18, 18), 1.0, 0.4, (1.0, 2.0, 0.5))]
for shape, sigma, frac, sp in cases:
    p, g = shapes(shape, sigma, frac)
    sd = D.surface_distances(g, p, sp)
    d_gp, a_g, d_pg, a_p = sd
    asd_gp, asd_pg = D.average_surface_distance(sd)
    what = "%s sp=%s" % (shape, sp)
    for tau in (0.0, 1.0, 2.5):
        for q in (95.0, 50.0):
            for assd_mode in ("mean", "pooled"):
                r = G.evaluate_mask(p, g, sp, surface="surfels", hd_mode="max", percentile=q, nsd_tolerance=tau,
                                    assd_mode=assd_mode, metrics=G.MET_DISTANCE | G.MET_NSD)
                ck.close("NSD == compute_surface_dice_at_tolerance %s tau=%g" % (what, tau), r["nsd"],
                         D.surface_dice(sd, tau), rtol=TOL, atol=TOL, group="nsd")
                ck.close("HD%g == compute_robust_hausdorff %s" % (q, what), r["hd_perc"],
                         D.robust_hausdorff(sd, q), rtol=TOL, atol=TOL, group="hd_perc")
                if assd_mode == "mean":
                    want = (asd_gp + asd_pg) / 2
                else:
                    want = (np.sum(d_gp * a_g) + np.sum(d_pg * a_p)) / (np.sum(a_g) + np.sum(a_p))
                ck.close("ASSD %s == compute_average_surface_distance %s" % (assd_mode, what), r["assd"], want,
                         rtol=TOL, atol=TOL, group="assd")
    ck.close("ASD pred->gt, gt->pred == compute_average_surface_distance %s" % what,
             [r["asd_pred_to_gt"], r["asd_gt_to_pred"]], [asd_pg, asd_gp], rtol=TOL, atol=TOL, group="asd")
    ck.close("HD == compute_robust_hausdorff(100) %s" % what, r["hd"], D.robust_hausdorff(sd, 100.0),
             rtol=TOL, atol=TOL, group="hd")
    ck.close("surface areas %s" % what, [r["surf_pred"], r["surf_gt"]], [np.sum(a_p), np.sum(a_g)],
             rtol=TOL, atol=TOL, group="areas")
    raw = G.surface_distances(p, g, sp, surface="surfels")
    ck.close("raw surfel areas (sorted) %s" % what, np.sort(raw["w_gt"]), np.sort(a_g), rtol=0, atol=1e-12,
             group="areas")

# ---- empty cases by name ---------------------------------------------------------------
p, g = shapes((12, 14, 10), 1.5, 0.2)
e = np.zeros_like(g)
sp = (1.5, 0.9, 1.2)
r = G.evaluate_mask(e, g, sp, surface="surfels", metrics=G.MET_DISTANCE | G.MET_NSD)
ck.true("empty prediction: NSD 0 as DeepMind's surface Dice (%g)" % r["nsd"],
        r["nsd"] == 0.0 and D.surface_dice(D.surface_distances(g, e, sp), 1.0) == 0.0)
ck.true("empty prediction: HD95 +inf as DeepMind's robust Hausdorff",
        np.isinf(r["hd_perc"]) and np.isinf(D.robust_hausdorff(D.surface_distances(g, e, sp), 95)))
r = G.evaluate_mask(p, e, sp, surface="surfels", metrics=G.MET_DISTANCE | G.MET_NSD)
ck.true("empty target: NSD 0 and HD95 +inf as DeepMind",
        r["nsd"] == 0.0 and np.isinf(r["hd_perc"]) and D.surface_dice(D.surface_distances(e, p, sp), 1.0) == 0.0)
r = G.evaluate_mask(e, e, sp, surface="surfels", metrics=G.MET_DISTANCE | G.MET_NSD)
ck.true("both empty: NSD 1, distances 0 (segloss's rule; DeepMind divides 0 by 0 here)",
        r["nsd"] == 1.0 and r["hd_perc"] == 0.0 and r["assd"] == 0.0)
one = np.zeros((5, 5, 5), bool)
one[2, 2, 2] = True
sd = D.surface_distances(one, one, sp)
r = G.evaluate_mask(one, one, sp, surface="surfels", metrics=G.MET_DISTANCE | G.MET_NSD)
ck.close("one voxel each, same place: area == DeepMind's 8 corner triangles", r["surf_gt"], np.sum(sd[1]),
         rtol=0, atol=1e-12, group="areas")
ck.report()
