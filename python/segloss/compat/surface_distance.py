"""DeepMind surface-distance (surface_distance/metrics.py), computed by segloss.

    from segloss.compat import surface_distance   # instead of `import surface_distance`
    sd = surface_distance.compute_surface_distances(mask_gt, mask_pred, spacing_mm=(2.5, 0.8, 0.8))
    surface_distance.compute_surface_dice_at_tolerance(sd, 1.0)

Same functions, arguments, dictionary keys and empty-mask results as
DeepMind's library: surfaces are its surface elements on the voxel-corner
grid (which points are surfels: identical), weighted by their length (2-D)
or area (3-D); each distance list is sorted by (distance, area). Empty
masks: both empty -> four empty arrays, so the averages and overlaps are
NaN (0/0, with numpy's RuntimeWarning) and the robust Hausdorff is inf;
one empty -> that side's lists are empty and the other side's distances
are all inf. compute_dice_coefficient returns NaN when both are empty.

Surfel sizes are DeepMind's: 2-D marching-squares lengths, and in 3-D the
area of DeepMind's marching-cubes triangles for each of the 254 corner
configurations at the given spacing (its neighbour-code table), so the
lists, the averages, surface overlaps and Dice and every percentile equal
DeepMind's (to rounding; tests/python/test_compat_surface_distance.py
checks 3-D anisotropic cases to 1e-9).
"""
import numpy as np

from .. import _geom
from .. import _lib

__all__ = ["compute_surface_distances", "compute_average_surface_distance", "compute_robust_hausdorff",
           "compute_surface_overlap_at_tolerance", "compute_surface_dice_at_tolerance",
           "compute_dice_coefficient"]


def _check_bool(name, a):
    if not isinstance(a, np.ndarray):
        raise ValueError("The argument {!r} should be a numpy array, not a {}".format(name, type(a)))
    if a.dtype != bool:
        raise ValueError("The argument {!r} should be a numpy array of type bool, not {}".format(name, a.dtype))


def compute_surface_distances(mask_gt, mask_pred, spacing_mm, *, threads=None):
    """Distances from every surface element of one mask to the other surface.

    mask_gt, mask_pred: 2-D or 3-D numpy bool arrays of one shape.
    spacing_mm: one spacing per axis (array order).
    Returns {"distances_gt_to_pred", "distances_pred_to_gt", "surfel_areas_gt",
    "surfel_areas_pred"}: float64 arrays, each pair sorted by (distance, area).
    """
    _check_bool("mask_gt", mask_gt)
    _check_bool("mask_pred", mask_pred)
    if len(mask_gt.shape) != len(mask_pred.shape):
        raise ValueError("The arguments must be of compatible shape. Got mask_gt with {} dimensions ({}) and "
                         "mask_pred with {} dimensions ({})".format(len(mask_gt.shape), mask_gt.shape,
                                                                    len(mask_pred.shape), mask_pred.shape))
    if len(spacing_mm) != len(mask_gt.shape):
        raise ValueError("The arguments must be of compatible shape. Got spacing_mm with {} elements ({}) and "
                         "masks with {} dimensions".format(len(spacing_mm), spacing_mm, len(mask_gt.shape)))
    if mask_gt.ndim not in (2, 3):
        raise ValueError("Only 2D and 3D masks are supported, not {}D.".format(mask_gt.ndim))
    if mask_gt.shape != mask_pred.shape:
        raise ValueError("mask_gt and mask_pred differ in shape: {} vs {}".format(mask_gt.shape, mask_pred.shape))
    gt = _geom.as_mask(mask_gt, "mask_gt")
    pred = _geom.as_mask(mask_pred, "mask_pred")
    d_pg, w_p, d_gp, w_g = _geom.surface_distances(pred, gt, tuple(float(s) for s in spacing_mm), "surfels",
                                                   _lib.threads(threads))
    # DeepMind sorts (distance, area) pairs: by distance, then by area
    og = np.lexsort((w_g, d_gp))
    op = np.lexsort((w_p, d_pg))
    return {
        "distances_gt_to_pred": d_gp[og],
        "distances_pred_to_gt": d_pg[op],
        "surfel_areas_gt": w_g[og],
        "surfel_areas_pred": w_p[op],
    }


def compute_average_surface_distance(surface_distances):
    """(mean distance gt -> pred, mean distance pred -> gt), weighted by surfel area."""
    distances_gt_to_pred = surface_distances["distances_gt_to_pred"]
    distances_pred_to_gt = surface_distances["distances_pred_to_gt"]
    surfel_areas_gt = surface_distances["surfel_areas_gt"]
    surfel_areas_pred = surface_distances["surfel_areas_pred"]
    average_distance_gt_to_pred = np.sum(distances_gt_to_pred * surfel_areas_gt) / np.sum(surfel_areas_gt)
    average_distance_pred_to_gt = np.sum(distances_pred_to_gt * surfel_areas_pred) / np.sum(surfel_areas_pred)
    return (average_distance_gt_to_pred, average_distance_pred_to_gt)


def _directed_percentile(distances, areas, percent):
    """the smallest distance whose cumulative area fraction reaches percent/100; inf for no surfel"""
    if len(distances) == 0:
        return np.inf
    cum = np.cumsum(areas) / np.sum(areas)
    idx = np.searchsorted(cum, percent / 100.0)
    return distances[min(idx, len(distances) - 1)]


def compute_robust_hausdorff(surface_distances, percent):
    """max of the two directed area-weighted percentiles (percent = 100: the Hausdorff distance)."""
    return max(_directed_percentile(surface_distances["distances_gt_to_pred"],
                                    surface_distances["surfel_areas_gt"], percent),
               _directed_percentile(surface_distances["distances_pred_to_gt"],
                                    surface_distances["surfel_areas_pred"], percent))


def compute_surface_overlap_at_tolerance(surface_distances, tolerance_mm):
    """(fraction of the gt surface within tolerance of pred, fraction of the pred surface within tolerance of gt)."""
    distances_gt_to_pred = surface_distances["distances_gt_to_pred"]
    distances_pred_to_gt = surface_distances["distances_pred_to_gt"]
    surfel_areas_gt = surface_distances["surfel_areas_gt"]
    surfel_areas_pred = surface_distances["surfel_areas_pred"]
    rel_overlap_gt = np.sum(surfel_areas_gt[distances_gt_to_pred <= tolerance_mm]) / np.sum(surfel_areas_gt)
    rel_overlap_pred = np.sum(surfel_areas_pred[distances_pred_to_gt <= tolerance_mm]) / np.sum(surfel_areas_pred)
    return (rel_overlap_gt, rel_overlap_pred)


def compute_surface_dice_at_tolerance(surface_distances, tolerance_mm):
    """Surface Dice (NSD): area of both surfaces within tolerance over the total area."""
    distances_gt_to_pred = surface_distances["distances_gt_to_pred"]
    distances_pred_to_gt = surface_distances["distances_pred_to_gt"]
    surfel_areas_gt = surface_distances["surfel_areas_gt"]
    surfel_areas_pred = surface_distances["surfel_areas_pred"]
    overlap_gt = np.sum(surfel_areas_gt[distances_gt_to_pred <= tolerance_mm])
    overlap_pred = np.sum(surfel_areas_pred[distances_pred_to_gt <= tolerance_mm])
    return (overlap_gt + overlap_pred) / (np.sum(surfel_areas_gt) + np.sum(surfel_areas_pred))


def compute_dice_coefficient(mask_gt, mask_pred, *, threads=None):
    """Volumetric Dice 2|gt ∩ pred| / (|gt| + |pred|); NaN when both masks are empty."""
    g = _geom.as_mask(mask_gt, "mask_gt")
    p = _geom.as_mask(mask_pred, "mask_pred")
    if g.shape != p.shape:
        raise ValueError("mask_gt and mask_pred differ in shape: {} vs {}".format(g.shape, p.shape))
    if 1 <= g.ndim <= 3:
        r = _geom.eval_mask(p, g, None, _geom.metric_opts(metrics=_geom.MET_OVERLAP, threads=_lib.threads(threads)))
        tp, fp, fn = int(r.tp), int(r.fp), int(r.fn)
    else:
        gb, pb = g.view(bool), p.view(bool)
        tp, fp, fn = (int(np.count_nonzero(gb & pb)), int(np.count_nonzero(pb & ~gb)),
                      int(np.count_nonzero(gb & ~pb)))
    volume_sum = (tp + fn) + (tp + fp)
    if volume_sum == 0:
        return np.nan
    return np.float64(2 * tp) / np.float64(volume_sum)
