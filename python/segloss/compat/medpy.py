"""medpy.metric.binary's overlap and surface-distance functions, computed by segloss.

    from segloss.compat.medpy import dc, hd95, assd   # instead of medpy.metric.binary

Same arguments (result = the prediction, reference = the ground truth),
same definitions, same empty-mask behaviour as MedPy (>= 0.4; the
functions have not changed since):
  dc, precision, recall:  0.0 when the denominator is 0
  jc:                     ZeroDivisionError when both masks are empty
  hd, hd95, asd, assd:    RuntimeError('The first supplied array does not
                          contain any binary object.') when result is empty,
                          '... second ...' when reference is empty
  ravd:                   RuntimeError('The second ...') when reference is empty
Surfaces are MedPy's: mask XOR its erosion by the cross (connectivity=1),
the image edge counting as background; distances from scipy-exact EDTs;
hd95 is numpy's percentile of both directed sets pooled. Arrays of any
dtype (non-zero = object), numpy or torch. `connectivity` other than 1
(a surface by another structuring element) raises NotImplementedError.
The keyword-only `threads` sets the library's thread count.
"""
import numpy as np

from .. import _geom
from .. import _lib

__all__ = ["dc", "jc", "precision", "recall", "hd", "hd95", "asd", "assd", "ravd"]


def _masks(result, reference):
    r = _geom.as_mask(result, "result")
    f = _geom.as_mask(reference, "reference")
    r = r.reshape(1) if r.ndim == 0 else r   # numpy.atleast_1d, as MedPy
    f = f.reshape(1) if f.ndim == 0 else f
    if r.shape != f.shape:
        raise ValueError("result and reference differ in shape: %s vs %s" % (r.shape, f.shape))
    return r, f


def _counts(result, reference, threads=None):
    """(tp, fp, fn) as python ints."""
    r, f = _masks(result, reference)
    if r.ndim > 3:  # beyond the library's grids: plain numpy counts (the same integers)
        rb, fb = r.view(bool), f.view(bool)
        return (int(np.count_nonzero(rb & fb)), int(np.count_nonzero(rb & ~fb)), int(np.count_nonzero(~rb & fb)))
    res = _geom.eval_mask(r, f, None, _geom.metric_opts(metrics=_geom.MET_OVERLAP, threads=_lib.threads(threads)))
    return int(res.tp), int(res.fp), int(res.fn)


def dc(result, reference, *, threads=None):
    """Dice coefficient 2|A∩B| / (|A| + |B|); 0.0 when both are empty (MedPy)."""
    tp, fp, fn = _counts(result, reference, threads)
    try:
        return 2. * tp / float((tp + fp) + (tp + fn))
    except ZeroDivisionError:
        return 0.0


def jc(result, reference, *, threads=None):
    """Jaccard coefficient |A∩B| / |A∪B|; ZeroDivisionError when both are empty (MedPy)."""
    tp, fp, fn = _counts(result, reference, threads)
    return float(tp) / float(tp + fp + fn)


def precision(result, reference, *, threads=None):
    """TP / (TP + FP); 0.0 when result is empty (MedPy)."""
    tp, fp, fn = _counts(result, reference, threads)
    try:
        return tp / float(tp + fp)
    except ZeroDivisionError:
        return 0.0


def recall(result, reference, *, threads=None):
    """TP / (TP + FN); 0.0 when reference is empty (MedPy)."""
    tp, fp, fn = _counts(result, reference, threads)
    try:
        return tp / float(tp + fn)
    except ZeroDivisionError:
        return 0.0


def ravd(result, reference, *, threads=None):
    """Relative (signed) volume difference (|A| - |B|) / |B|; RuntimeError when reference is empty (MedPy)."""
    tp, fp, fn = _counts(result, reference, threads)
    vol1, vol2 = tp + fp, tp + fn
    if vol2 == 0:
        raise RuntimeError('The second supplied array does not contain any binary object.')
    return (vol1 - vol2) / float(vol2)


def _distances(result, reference, voxelspacing, connectivity, threads):
    """MedPy's surface distances in both directions: (d(result->reference), d(reference->result))."""
    r, f = _masks(result, reference)
    nd = r.ndim
    if voxelspacing is not None and np.ndim(voxelspacing) != 0 and np.size(voxelspacing) != nd:
        raise RuntimeError("sequence argument must have length equal to input rank")
    # generate_binary_structure(nd, c) is the cross only for c == 1 (and any c >= 1 in 1-D)
    if not (connectivity == 1 or (nd == 1 and connectivity >= 1)):
        raise NotImplementedError("connectivity=%r: segloss's surfaces are MedPy's connectivity=1 (erosion by "
                                  "the cross); other structuring elements are not supported" % (connectivity,))
    if nd > 3:
        raise NotImplementedError("segloss computes surface distances on 1-D, 2-D and 3-D arrays, got %d-D" % nd)
    if not r.any():
        raise RuntimeError('The first supplied array does not contain any binary object.')
    if not f.any():
        raise RuntimeError('The second supplied array does not contain any binary object.')
    d_rf, _, d_fr, _ = _geom.surface_distances(r, f, voxelspacing, "border", _lib.threads(threads))
    return d_rf, d_fr


def hd(result, reference, voxelspacing=None, connectivity=1, *, threads=None):
    """Hausdorff distance: max of both directed maxima."""
    d1, d2 = _distances(result, reference, voxelspacing, connectivity, threads)
    return max(d1.max(), d2.max())


def hd95(result, reference, voxelspacing=None, connectivity=1, *, threads=None):
    """95th percentile (numpy's linear rule) of both directed distance sets pooled (MedPy's hd95)."""
    d1, d2 = _distances(result, reference, voxelspacing, connectivity, threads)
    return np.percentile(np.hstack((d1, d2)), 95)


def asd(result, reference, voxelspacing=None, connectivity=1, *, threads=None):
    """Average surface distance: mean distance from result's surface to reference's (directed)."""
    d1, _ = _distances(result, reference, voxelspacing, connectivity, threads)
    return d1.mean()


def assd(result, reference, voxelspacing=None, connectivity=1, *, threads=None):
    """Average symmetric surface distance: mean of asd(result, reference) and asd(reference, result)."""
    d1, d2 = _distances(result, reference, voxelspacing, connectivity, threads)
    return np.mean((d1.mean(), d2.mean()))
