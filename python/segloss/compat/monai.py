"""monai.metrics' functional metrics, computed by segloss.

    from segloss.compat.monai import compute_dice, compute_hausdorff_distance

Same arguments, defaults, conventions and empty-mask results as MONAI
(>= 1.2, the versions with `spacing`): inputs are one-hot (B, C, spatial...)
tensors (numpy arrays are accepted too), the result is a (B, C) torch
tensor on y_pred's device. Per (batch item, class):

  compute_dice / compute_iou: ignore_empty=True -> NaN where y is empty;
      ignore_empty=False -> 1.0 where y and y_pred are both empty (0.0 where
      only y is). compute_dice also takes single-channel label maps with
      num_classes, as MONAI's DiceHelper does.
  compute_hausdorff_distance, compute_average_surface_distance,
  compute_surface_dice: surfaces are MONAI's edges (mask XOR its erosion by
      the cross, the image edge counting as background), a voxel is
      foreground when its value equals 1 (MONAI's label_idx rule after its
      float conversion); both empty -> NaN; one empty -> inf (distances) or
      0.0 (surface Dice), except a Hausdorff percentile of a class empty on
      one side: NaN, because torch.quantile interpolates between infinite
      distances (inf - inf; checked with torch 1.13). Percentiles are linear
      (torch.quantile's rule); `percentile` None or 0 gives the maximum, as
      in MONAI.

Results are computed in float64 and returned as float32 (MONAI's
torch.float), so they agree with MONAI to float32 rounding.
Not reproduced (NotImplementedError): distance_metric "chessboard" /
"taxicab", use_subvoxels=True, and non-binary values in compute_dice /
compute_iou (MONAI would form a soft score from them).
"""
from collections.abc import Sequence

import numpy as np

from .. import _geom
from .. import _lib

__all__ = ["compute_dice", "compute_iou", "compute_hausdorff_distance", "compute_average_surface_distance",
           "compute_surface_dice"]


def _torch():
    import torch
    return torch


def _np(a):
    return _geom.to_numpy(a)


def _out(values, like, dtype=None):
    torch = _torch()
    t = torch.from_numpy(np.asarray(values, np.float64)).to(dtype or torch.float32)
    if isinstance(like, torch.Tensor):
        t = t.to(like.device)
    return t


def _ignore_background(y_pred, y):
    y = y[:, 1:] if y.shape[1] > 1 else y
    y_pred = y_pred[:, 1:] if y_pred.shape[1] > 1 else y_pred
    return y_pred, y


def _binary_values(a, what):
    if a.dtype != np.bool_ and a.size and not np.all((a == 0) | (a == 1)):
        raise NotImplementedError("%s holds values other than 0 and 1; MONAI would form a soft score from them, "
                                  "segloss scores binarized inputs only" % what)


def _counts(p, g, nthreads):
    """(tp, |p|, |g|) of two masks."""
    p = _geom.as_mask(p)
    g = _geom.as_mask(g)
    if 1 <= p.ndim <= 3:
        r = _geom.eval_mask(p, g, None, _geom.metric_opts(metrics=_geom.MET_OVERLAP, threads=nthreads))
        return int(r.tp), int(r.tp + r.fp), int(r.tp + r.fn)
    pb, gb = p.view(bool), g.view(bool)
    return int(np.count_nonzero(pb & gb)), int(np.count_nonzero(pb)), int(np.count_nonzero(gb))


def compute_dice(y_pred, y, include_background=True, ignore_empty=True, num_classes=None, *, threads=None):
    """Dice per (batch item, class) of binarized one-hot tensors, or of
    single-channel label maps with num_classes. Empty y: NaN
    (ignore_empty=True), else 1.0 if y_pred is empty too, 0.0 otherwise."""
    like = y_pred
    yp, yt = _np(y_pred), _np(y)
    nthreads = _lib.threads(threads)
    n_pred_ch = yp.shape[1] if num_classes is None else int(num_classes)
    first_ch = 0 if include_background else 1
    channels = range(first_ch, n_pred_ch) if n_pred_ch > 1 else [1]
    if yp.shape[1] != 1:
        _binary_values(yp, "y_pred")
    if yt.shape[1] != 1:
        _binary_values(yt, "y")
    data = []
    for b in range(yp.shape[0]):
        row = []
        for c in channels:
            xp = (yp[b, 0] == c) if yp.shape[1] == 1 else (yp[b, c] != 0)
            xt = (yt[b, 0] == c) if yt.shape[1] == 1 else (yt[b, c] != 0)
            tp, np_, ng = _counts(xp, xt, nthreads)
            if ng > 0:
                row.append(2.0 * tp / (ng + np_))
            elif ignore_empty:
                row.append(np.nan)
            else:
                row.append(1.0 if ng + np_ <= 0 else 0.0)
        data.append(row)
    torch = _torch()
    dt = torch.float64 if yt.dtype == np.float64 else torch.float32
    return _out(data, like, dt)


def compute_iou(y_pred, y, include_background=True, ignore_empty=True, *, threads=None):
    """IoU per (batch item, class) of binarized one-hot tensors. Empty y: NaN
    (ignore_empty=True), else 1.0 if the union is empty, 0.0 otherwise."""
    like = y_pred
    yp, yt = _np(y_pred), _np(y)
    if not include_background:
        yp, yt = _ignore_background(yp, yt)
    if yt.shape != yp.shape:
        raise ValueError("y_pred and y should have same shapes, got %s and %s." % (tuple(yp.shape), tuple(yt.shape)))
    _binary_values(yp, "y_pred")
    _binary_values(yt, "y")
    nthreads = _lib.threads(threads)
    data = []
    for b in range(yp.shape[0]):
        row = []
        for c in range(yp.shape[1]):
            tp, np_, ng = _counts(yp[b, c] != 0, yt[b, c] != 0, nthreads)
            union = ng + np_ - tp
            if ignore_empty:
                row.append(tp / union if ng > 0 else np.nan)
            else:
                row.append(tp / union if union > 0 else 1.0)
        data.append(row)
    torch = _torch()
    dt = torch.float64 if yt.dtype == np.float64 else torch.float32
    return _out(data, like, dt)


def _prepare_spacing(spacing, batch_size, img_dim):
    """MONAI's prepare_spacing: one spacing (None, a number or img_dim numbers) per batch item."""
    if spacing is None or isinstance(spacing, (int, float)):
        return [spacing] * batch_size
    if isinstance(spacing, (Sequence, np.ndarray)):
        if any(not isinstance(s, type(spacing[0])) for s in list(spacing)):
            raise ValueError(f"if `spacing` is a sequence, its elements should be of the same type, got {spacing}.")
        if isinstance(spacing[0], (Sequence, np.ndarray)):
            if len(spacing) != batch_size:
                raise ValueError("if `spacing` is a sequence of sequences, the outer sequence should have same "
                                 f"length as batch size ({batch_size}), got {spacing}.")
            if any(len(s) != img_dim for s in list(spacing)):
                raise ValueError("each element of `spacing` list should either have same length as image dim "
                                 f"({img_dim}), got {spacing}.")
            if not all(isinstance(i, (int, float)) for s in list(spacing) for i in list(s)):
                raise ValueError(f"if `spacing` is a sequence of sequences, the inner sequences should contain "
                                 f"only int or float, got {spacing}.")
            return list(spacing)
        if isinstance(spacing[0], (int, float)):
            if len(spacing) != img_dim:
                raise ValueError(f"if `spacing` is a sequence of numbers, it should have same length as image dim "
                                 f"({img_dim}), got {spacing}.")
            return [spacing] * batch_size
        raise ValueError(f"`spacing` is a sequence of elements with unsupported type: {type(spacing[0])}")
    raise ValueError(f"`spacing` should either be a number, a sequence of numbers or a sequence of sequences, "
                     f"got {spacing}.")


def _edge_distances(y_pred, y, include_background, distance_metric, spacing, threads):
    """For every (b, c): (d(pred -> gt), d(gt -> pred)) over MONAI's edges, or
    None when both masks are empty; one empty side gives all-inf distances."""
    if distance_metric != "euclidean":
        raise NotImplementedError("distance_metric=%r: segloss computes exact Euclidean distances only; MONAI's "
                                  "chamfer metrics are not reproduced" % (distance_metric,))
    yp, yt = _np(y_pred), _np(y)
    if not include_background:
        yp, yt = _ignore_background(yp, yt)
    if yt.shape != yp.shape:
        raise ValueError("y_pred and y should have same shapes, got %s and %s." % (tuple(yp.shape), tuple(yt.shape)))
    batch_size, n_class = yp.shape[:2]
    spacings = _prepare_spacing(spacing, batch_size, yp.ndim - 2)
    nthreads = _lib.threads(threads)
    out = []
    for b in range(batch_size):
        row = []
        for c in range(n_class):
            pm = (yp[b, c] == 1).view(np.uint8)
            gm = (yt[b, c] == 1).view(np.uint8)
            has_p, has_g = bool(pm.any()), bool(gm.any())
            if not has_p and not has_g:
                row.append(None)
                continue
            d_pg, _, d_gp, _ = _geom.surface_distances(pm, gm, spacings[b], "border", nthreads)
            if not (has_p and has_g):
                # MONAI: every distance from or to an empty side is inf
                n = max(len(d_pg), len(d_gp))
                d_pg = d_gp = np.full(n, np.inf)
            row.append((d_pg, d_gp))
        out.append(row)
    return out, y_pred


def _percentile_distance(d, percentile):
    if not percentile:
        return d.max()
    if 0 <= percentile <= 100:
        # torch.quantile's linear rule; on all-inf distances (one side empty) its
        # interpolation gives NaN (inf - inf), and so does numpy's: same result
        with np.errstate(invalid="ignore"):
            return np.percentile(d, percentile)
    raise ValueError(f"percentile should be a value between 0 and 100, get {percentile}.")


def compute_hausdorff_distance(y_pred, y, include_background=False, distance_metric="euclidean", percentile=None,
                               directed=False, spacing=None, *, threads=None):
    """Hausdorff distance (or its `percentile`) per (batch item, class):
    max over both directions (only pred -> gt when directed)."""
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile should be a value between 0 and 100, get {percentile}.")
    dists, like = _edge_distances(y_pred, y, include_background, distance_metric, spacing, threads)
    data = []
    for row in dists:
        vals = []
        for pair in row:
            if pair is None:
                vals.append(np.nan)
                continue
            d_pg, d_gp = pair
            v = _percentile_distance(d_pg, percentile)
            if not directed:
                v = max(v, _percentile_distance(d_gp, percentile))
            vals.append(v)
        data.append(vals)
    return _out(data, like)


def compute_average_surface_distance(y_pred, y, include_background=False, symmetric=False,
                                     distance_metric="euclidean", spacing=None, *, threads=None):
    """Average surface distance per (batch item, class): the mean of
    d(pred -> gt), or with symmetric=True the mean of both directed sets pooled."""
    dists, like = _edge_distances(y_pred, y, include_background, distance_metric, spacing, threads)
    data = []
    for row in dists:
        vals = []
        for pair in row:
            if pair is None:
                vals.append(np.nan)
                continue
            d_pg, d_gp = pair
            d = np.concatenate([d_pg, d_gp]) if symmetric else d_pg
            vals.append(d.mean() if d.size else np.nan)
        data.append(vals)
    return _out(data, like)


def compute_surface_dice(y_pred, y, class_thresholds, include_background=False, distance_metric="euclidean",
                         spacing=None, use_subvoxels=False, *, threads=None):
    """Normalised surface distance (surface Dice) per (batch item, class) at
    class_thresholds[c] mm: edge voxels within tolerance over all edge voxels.
    NaN when both masks are empty, 0.0 when one is."""
    if use_subvoxels:
        raise NotImplementedError("use_subvoxels=True: MONAI's sub-voxel surface areas are not reproduced; use "
                                  "segloss.compat.surface_distance for DeepMind's surfels")
    yp, yt = _np(y_pred), _np(y)
    if not include_background:
        yp, yt = _ignore_background(yp, yt)
    if yp.ndim not in (4, 5) or yt.ndim not in (4, 5):
        raise ValueError("y_pred and y should be one-hot encoded: [B,C,H,W] or [B,C,H,W,D].")
    if yp.shape != yt.shape:
        raise ValueError(f"y_pred and y should have same shape, but instead, shapes are {yp.shape} (y_pred) and "
                         f"{yt.shape} (y).")
    n_class = yp.shape[1]
    if n_class != len(class_thresholds):
        raise ValueError(f"number of classes ({n_class}) does not match number of class thresholds "
                         f"({len(class_thresholds)}).")
    thr = np.asarray(class_thresholds, dtype=np.float64)
    if np.any(~np.isfinite(thr)):
        raise ValueError("All class thresholds need to be finite.")
    if np.any(thr < 0):
        raise ValueError("All class thresholds need to be >= 0.")
    dists, _ = _edge_distances(yp, yt, True, distance_metric, spacing, threads)
    data = []
    for row in dists:
        vals = []
        for c, pair in enumerate(row):
            if pair is None:
                vals.append(np.nan)
                continue
            d_pg, d_gp = pair
            complete = len(d_pg) + len(d_gp)
            correct = int(np.sum(d_pg <= thr[c])) + int(np.sum(d_gp <= thr[c]))
            vals.append(correct / complete if complete else np.nan)
        data.append(vals)
    return _out(data, y_pred)
