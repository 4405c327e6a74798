#!/usr/bin/python3
"""Speed of segloss.ndimage and segloss.compat against the scipy-based
originals, in one process, on the same 256^3 inputs (a benchmark, not a test).

    /usr/bin/python3 perf/bench_python_geometry.py [--n 256] [--threads 1,2]

1. segloss.ndimage.distance_transform_edt vs scipy.ndimage.distance_transform_edt
   (float64, spacing 2.0 x 0.8 x 0.8) on a smooth ellipsoid-like mask.
2. segloss.compat.medpy.hd95 vs MedPy's hd95, transcribed below (erosion
   borders, two whole-image scipy EDTs, numpy percentile of the pooled set).
3. segloss.compat.surface_distance (compute_surface_distances, then the
   robust Hausdorff, average distances and surface Dice) vs DeepMind's
   procedure, transcribed below (crop to the bounding box, neighbour codes
   by correlation, surfel sizes from a 256-entry table, two scipy EDTs on
   the crop, Python's sort of (distance, area) pairs, the same formulas).

The case: a target structure (20 % of the volume, its bounding box about 40 %)
and a prediction that is the same smooth field shifted and re-noised; then,
for 2. and 3., a small structure (a lesion about 16 mm across) in the same
volume, where MedPy still works on the whole image.
scipy is single-threaded; segloss runs with each --threads value (1 = the
same threads as scipy). The reference and segloss run in turn (--repeat
rounds; the best wall time of each is kept), so a change of load hits both.
Each comparison prints a detail row (wall and CPU time, CPU of all the
process's threads, both ratios, the largest relative difference of the
results) and a line
    RATIO <what>: <x>x (segloss <t> s, <peer> <t> s, threads T)
of best wall times. The load average is printed at the start and the end.
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (os.path.join(ROOT, "python"), os.path.join(ROOT, "tests", "ref")):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ.setdefault("SEGLOSS_LIB", os.path.join(ROOT, "build", "libsegloss.so"))

from surfelref import area_table_ref, codes_ref  # noqa: E402

import segloss.ndimage as sn  # noqa: E402
from segloss.compat import medpy as smedpy  # noqa: E402
from segloss.compat import surface_distance as ssd  # noqa: E402


# ---- MedPy's hd95, transcribed (medpy/metric/binary.py) ------------------------------
def medpy_surface_distances(result, reference, voxelspacing=None, connectivity=1):
    result = np.atleast_1d(result.astype(bool))
    reference = np.atleast_1d(reference.astype(bool))
    footprint = ndi.generate_binary_structure(result.ndim, connectivity)
    result_border = result ^ ndi.binary_erosion(result, structure=footprint, iterations=1)
    reference_border = reference ^ ndi.binary_erosion(reference, structure=footprint, iterations=1)
    dt = ndi.distance_transform_edt(~reference_border, sampling=voxelspacing)
    return dt[result_border]


def medpy_hd95(result, reference, voxelspacing=None, connectivity=1):
    hd1 = medpy_surface_distances(result, reference, voxelspacing, connectivity)
    hd2 = medpy_surface_distances(reference, result, voxelspacing, connectivity)
    return np.percentile(np.hstack((hd1, hd2)), 95)


# ---- DeepMind's compute_surface_distances and metrics, transcribed ----------------------
def dm_surface_distances(mask_gt, mask_pred, spacing_mm):
    nd = mask_gt.ndim
    table = area_table_ref(nd, spacing_mm)  # the project's surfel sizes; DeepMind indexes its own table
    full = 2 ** (2 ** nd) - 1
    idx = np.nonzero(mask_gt | mask_pred)
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    # neighbour codes on the corner grid of the crop (DeepMind: ndimage.correlate with its kernel)
    cg, cp = codes_ref(mask_gt[crop]), codes_ref(mask_pred[crop])
    bg, bp = (cg != 0) & (cg != full), (cp != 0) & (cp != full)
    dist_gt = ndi.distance_transform_edt(~bg, sampling=spacing_mm) if bg.any() else np.inf * np.ones(bg.shape)
    dist_pred = ndi.distance_transform_edt(~bp, sampling=spacing_mm) if bp.any() else np.inf * np.ones(bp.shape)
    d_gp, d_pg = dist_pred[bg], dist_gt[bp]
    a_g, a_p = table[cg[bg]], table[cp[bp]]
    s = np.array(sorted(zip(d_gp, a_g)))
    d_gp, a_g = s[:, 0], s[:, 1]
    s = np.array(sorted(zip(d_pg, a_p)))
    d_pg, a_p = s[:, 0], s[:, 1]
    return {"distances_gt_to_pred": d_gp, "distances_pred_to_gt": d_pg, "surfel_areas_gt": a_g,
            "surfel_areas_pred": a_p}


def dm_metrics(mod, s):
    """robust HD95, the two average distances and surface Dice at 1 mm, by module mod's formulas"""
    return np.array([mod.compute_robust_hausdorff(s, 95), *mod.compute_average_surface_distance(s),
                     mod.compute_surface_dice_at_tolerance(s, 1.0)])


class _DM:
    """DeepMind's metric formulas (the same as segloss.compat.surface_distance's pure-numpy ones)"""
    compute_robust_hausdorff = staticmethod(ssd.compute_robust_hausdorff)
    compute_average_surface_distance = staticmethod(ssd.compute_average_surface_distance)
    compute_surface_dice_at_tolerance = staticmethod(ssd.compute_surface_dice_at_tolerance)


# ---------------------------------------------------------------------------------------
def clock(fn):
    """(result, wall s, CPU s of all the process's threads) of one call"""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def interleaved(ref_fn, ours, repeat):
    """The reference and every segloss variant (ours: {threads: fn}) run in turn, `repeat` rounds, so that
    a change of load hits them alike; the best wall time of each (with its CPU time) is kept."""
    best = {}
    for _ in range(repeat):
        for key, fn in [("ref", ref_fn)] + sorted(ours.items()):
            r = clock(fn)
            if key not in best or r[1] < best[key][1]:
                best[key] = r
    return best


def relmax(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    fin = np.isfinite(b)
    return float(np.max(np.abs(a[fin] - b[fin]) / np.maximum(np.abs(b[fin]), 1e-300))) if fin.any() else 0.0


def report(what, peer, best):
    """a detail row per thread count, then the RATIO line the project's perf scripts print (best wall times)"""
    _, rw, rc = best["ref"]
    for t in sorted(k for k in best if k != "ref"):
        out, w, c = best[t]
        print("%-44s %s %7.2f s (CPU %7.2f)  segloss %6.3f s (CPU %6.3f)  ratio %6.1fx wall %6.1fx CPU  "
              "max rel diff %.1e" % ("%s, %d thr" % (what, t), peer, rw, rc, w, c, rw / w, rc / c,
                                     relmax(out, best["ref"][0])), flush=True)
        print("RATIO %s: %.1fx (segloss %.3f s, %s %.3f s, threads %d)" % (what, rw / w, w, peer, rw, t), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--threads", default="1,2", help="segloss thread counts to time (comma list)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds: scipy and segloss run in turn this many times, the best of each is kept")
    args = ap.parse_args()
    n = args.n
    sp = (2.0, 0.8, 0.8)
    rng = np.random.default_rng(1)
    z, y, x = np.ogrid[:n, :n, :n]
    c = (n - 1) / 2
    ell = ((z - c) / (0.38 * n)) ** 2 + ((y - c) / (0.42 * n)) ** 2 + ((x - c) / (0.30 * n)) ** 2
    noise = ndi.gaussian_filter(rng.standard_normal((n // 4,) * 3), 2.0)
    noise = ndi.zoom(noise, 4, order=1)[:n, :n, :n] / noise.std()
    gt = ell + 0.15 * noise < 1.0
    pred = np.roll(ell, 2, axis=2) + 0.15 * noise + 0.05 * ndi.zoom(
        ndi.gaussian_filter(rng.standard_normal((n // 8,) * 3), 1.0), 8, order=1)[:n, :n, :n] < 1.0
    threads = [int(t) for t in args.threads.split(",")]
    print("case: %d^3, spacing %s, target %.1f %% of the volume, prediction %.1f %%; segloss threads %s; "
          "os.cpu_count() = %d; load average %.2f" % (n, sp, 100 * gt.mean(), 100 * pred.mean(), threads,
                                                     os.cpu_count(), os.getloadavg()[0]), flush=True)
    R = args.repeat
    report("ndimage.distance_transform_edt", "scipy",
           interleaved(lambda: ndi.distance_transform_edt(gt, sampling=sp),
                       {t: (lambda t=t: sn.distance_transform_edt(gt, sampling=sp, threads=t)) for t in threads}, R))
    report("compat.medpy.hd95", "MedPy",
           interleaved(lambda: medpy_hd95(pred, gt, sp),
                       {t: (lambda t=t: smedpy.hd95(pred, gt, sp, threads=t)) for t in threads}, R))
    report("compat.surface_distance (HD95/ASD/NSD)", "DeepMind",
           interleaved(lambda: dm_metrics(_DM, dm_surface_distances(gt, pred, sp)),
                       {t: (lambda t=t: dm_metrics(ssd, ssd.compute_surface_distances(gt, pred, sp, threads=t)))
                        for t in threads}, R))

    # a small structure (a lesion of ~20 voxels across) in the same volume: MedPy works on the
    # whole image, DeepMind and segloss on the bounding box
    zz, yy, xx = n // 3, n // 2, (2 * n) // 3
    ball = ((z - zz) * sp[0]) ** 2 + ((y - yy) * sp[1]) ** 2 + ((x - xx) * sp[2]) ** 2
    gt_s = ball + 20.0 * noise < 8.0 ** 2
    pred_s = np.roll(ball, 1, axis=1) + 20.0 * noise < 8.5 ** 2
    print("small structure: target %d voxels, prediction %d" % (gt_s.sum(), pred_s.sum()), flush=True)
    report("compat.medpy.hd95 small", "MedPy",
           interleaved(lambda: medpy_hd95(pred_s, gt_s, sp),
                       {t: (lambda t=t: smedpy.hd95(pred_s, gt_s, sp, threads=t)) for t in threads}, R))
    report("compat.surface_distance small", "DeepMind",
           interleaved(lambda: dm_metrics(_DM, dm_surface_distances(gt_s, pred_s, sp)),
                       {t: (lambda t=t: dm_metrics(ssd, ssd.compute_surface_distances(gt_s, pred_s, sp, threads=t)))
                        for t in threads}, R))
    print("(surface_distance: surfel areas are the library's on both sides here; docs/metrics.md, "
          "\"Surfaces\", says how they compare with DeepMind's table)")
    print("load average at the end %.2f" % os.getloadavg()[0])


if __name__ == "__main__":
    main()
