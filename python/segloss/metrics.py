"""Segmentation metrics with stated conventions: `segloss eval` on arrays.

    records = segloss.metrics.evaluate(pred, gt, labels=[1, 2], spacing=(2.5, 0.8, 0.8))
    records[0]["dice"], records[0]["hd95"], ...

Every metric and convention of the `segloss eval` command (docs/eval.md,
docs/metrics.md), computed by sl_metrics_eval on one case: pred and gt are
label maps of one shape (1-D, 2-D or 3-D; numpy arrays or torch tensors of
any integer, bool or whole-valued float dtype; their dtypes may differ).
"""
import ctypes
import math

import numpy as np

from . import _geom
from . import _lib
from . import errors

__all__ = ["evaluate", "COLUMNS", "DEFAULT_METRICS", "describe"]

# column -> (field of sl_metric_result, group, is a distance)
COLUMNS = {
    "dice": ("dice", _geom.MET_OVERLAP, False), "iou": ("iou", _geom.MET_OVERLAP, False),
    "precision": ("precision", _geom.MET_OVERLAP, False), "recall": ("recall", _geom.MET_OVERLAP, False),
    "specificity": ("specificity", _geom.MET_OVERLAP, False), "voe": ("voe", _geom.MET_OVERLAP, False),
    "rvd": ("rvd", _geom.MET_OVERLAP, False),
    "volume_similarity": ("volume_similarity", _geom.MET_OVERLAP, False),
    "mcc": ("mcc", _geom.MET_OVERLAP, False), "kappa": ("kappa", _geom.MET_OVERLAP, False),
    "tp": ("tp", _geom.MET_OVERLAP, False), "fp": ("fp", _geom.MET_OVERLAP, False),
    "fn": ("fn", _geom.MET_OVERLAP, False), "tn": ("tn", _geom.MET_OVERLAP, False),
    "vol_pred": ("vol_pred", _geom.MET_OVERLAP, False), "vol_gt": ("vol_gt", _geom.MET_OVERLAP, False),
    "hd": ("hd", _geom.MET_DISTANCE, True), "hd95": ("hd_perc", _geom.MET_DISTANCE, True),
    "assd": ("assd", _geom.MET_DISTANCE, True),
    "asd_pred_to_gt": ("asd_pred_to_gt", _geom.MET_DISTANCE, True),
    "asd_gt_to_pred": ("asd_gt_to_pred", _geom.MET_DISTANCE, True),
    "msd_pred_to_gt": ("msd_pred_to_gt", _geom.MET_DISTANCE, True),
    "msd_gt_to_pred": ("msd_gt_to_pred", _geom.MET_DISTANCE, True),
    "nsd": ("nsd", _geom.MET_NSD, False), "biou": ("biou", _geom.MET_BIOU, False),
    "lesions_gt": ("lesions_gt", _geom.MET_LESION, False), "lesions_pred": ("lesions_pred", _geom.MET_LESION, False),
    "lesion_tp": ("lesion_tp", _geom.MET_LESION, False), "lesion_fp": ("lesion_fp", _geom.MET_LESION, False),
    "lesion_fn": ("lesion_fn", _geom.MET_LESION, False),
    "lesion_precision": ("lesion_precision", _geom.MET_LESION, False),
    "lesion_recall": ("lesion_recall", _geom.MET_LESION, False),
    "lesion_f1": ("lesion_f1", _geom.MET_LESION, False), "lesion_dice": ("lesion_dice", _geom.MET_LESION, False),
    "cldice": ("cldice", _geom.MET_CLDICE, False), "topo_precision": ("topo_precision", _geom.MET_CLDICE, False),
    "topo_sensitivity": ("topo_sensitivity", _geom.MET_CLDICE, False),
}
# names that stand for several columns (as `segloss eval --metrics`)
ALIASES = {
    "vs": ["volume_similarity"], "counts": ["tp", "fp", "fn", "tn"], "volume": ["vol_pred", "vol_gt"],
    "asd": ["asd_pred_to_gt", "asd_gt_to_pred"], "msd": ["msd_pred_to_gt", "msd_gt_to_pred"],
    "lesion": ["lesions_gt", "lesions_pred", "lesion_tp", "lesion_fp", "lesion_fn", "lesion_precision",
               "lesion_recall", "lesion_f1", "lesion_dice"],
    "cldice": ["cldice", "topo_precision", "topo_sensitivity"],
}
DEFAULT_METRICS = ("dice", "iou", "precision", "recall", "specificity", "hd", "hd95", "assd", "nsd")
_INT_FIELDS = {"tp", "fp", "fn", "tn", "lesions_gt", "lesions_pred", "lesion_tp", "lesion_fp", "lesion_fn"}


def _columns(metrics):
    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = [m for m in metrics.split(",") if m]
    cols = []
    for m in metrics:
        if m == "all":
            names = list(COLUMNS)
        elif m in ALIASES:
            names = ALIASES[m]
        elif m in COLUMNS:
            names = [m]
        else:
            raise errors.UnknownNameError("unknown metric %r (a column of segloss eval, a group (%s) or 'all')"
                                          % (m, ", ".join(ALIASES)))
        cols += [c for c in names if c not in cols]
    if not cols:
        raise errors.InvalidArgumentError("metrics: no metric requested")
    return cols


def describe(ndim=3, **conventions):
    """The conventions line of sl_metric_opts_describe for these conventions
    (the keyword arguments of evaluate), as `segloss eval` prints it."""
    o = _opts(_geom.MET_ALL, conventions)
    buf = ctypes.create_string_buffer(512)
    _geom.L().sl_metric_opts_describe(ctypes.byref(o), int(ndim), buf, 512)
    return buf.value.decode()


def _opts(groups, kw, nthreads=0):
    surface = kw.get("surface", "border")
    if surface == "surfel":        # the CLI's spelling
        surface = "surfels"
    lesion_iou = kw.get("lesion_iou")
    return _geom.metric_opts(
        metrics=groups, hd_mode=kw.get("hd_mode", "max"), percentile=kw.get("percentile", 95.0),
        assd_mode=kw.get("assd_mode", "pooled"), surface=surface, nsd_tolerance=kw.get("nsd_tolerance", 1.0),
        biou_width=kw.get("biou_width", 2.0), connectivity=kw.get("connectivity", 0),
        lesion_match="iou" if lesion_iou is not None else "overlap",
        lesion_min_overlap=kw.get("lesion_min_overlap", 1),
        lesion_iou=lesion_iou if lesion_iou is not None else 0.5, threads=nthreads)


def evaluate(pred, gt, *, labels=None, spacing=None, metrics=None, hd_mode="max", percentile=95.0,
             assd_mode="pooled", surface="border", nsd_tolerance=1.0, biou_width=2.0, connectivity=0,
             lesion_iou=None, lesion_min_overlap=1, empty_distance=None, threads=None):
    """Per-label metrics of one case, as `segloss eval` computes them.

    labels: None = every non-zero label present in pred or gt (`--labels
      all`), or a sequence of labels (0 allowed: background as a class).
    spacing: None (1 mm), a number, or one value per axis (array order).
    metrics: column names or groups of `segloss eval --metrics`, a list or a
      comma string, or "all"; default dice, iou, precision, recall,
      specificity, hd, hd95, assd, nsd. "hd95" holds the `percentile` value.
    Conventions (docs/metrics.md; defaults first):
      hd_mode "max" | "union" | "mean"; percentile 95; assd_mode "pooled" |
      "mean"; surface "border" | "surfels"; nsd_tolerance 1 mm; biou_width 2
      mm; connectivity 0 (full) | 4 | 8 | 6 | 18 | 26 (lesion components);
      lesion_iou None (a lesion is detected by >= lesion_min_overlap voxels)
      or t (by IoU >= t).
    empty_distance: what a distance is when one side is empty. None keeps
      the library's +inf; "diagonal" substitutes the image diagonal in mm
      (the CLI's default), a number substitutes that number; rows where it
      happened have distance_substituted = True.

    Returns a list with one dict per label: "label", the requested columns
    in order, "empty_pred", "empty_gt", "distance_substituted". Empty masks:
    both empty -> scores 1, distances 0; one empty -> scores 0, distances
    +inf (or the substitute), as in docs/metrics.md.
    """
    cols = _columns(metrics)
    groups = 0
    for c in cols:
        groups |= COLUMNS[c][1]
    p = _geom.to_numpy(pred, "pred")
    g = _geom.to_numpy(gt, "gt")
    if p.shape != g.shape:
        raise errors.ShapeError("pred and gt differ in shape: %s vs %s" % (p.shape, g.shape))
    grid = _geom.grid(p.shape, spacing)
    lp = _geom.LabelMap(_geom.ptr(p), _geom.cdtype(p, "pred"))
    lg = _geom.LabelMap(_geom.ptr(g), _geom.cdtype(g, "gt"))
    L = _geom.L()
    buf = _lib.msgbuf()
    if labels is None:
        found = set()
        for lm, n in ((lp, p.size), (lg, g.size)):
            count = ctypes.c_int64()
            _lib.check(L.sl_labels_unique(ctypes.byref(lm), n, None, 0, ctypes.byref(count), buf, _lib.MSG_LEN), buf)
            vals = np.empty(count.value, np.int64)
            _lib.check(L.sl_labels_unique(ctypes.byref(lm), n, vals.ctypes.data_as(_geom.c_i64p), count.value,
                                          ctypes.byref(count), buf, _lib.MSG_LEN), buf)
            found.update(int(v) for v in vals if v != 0)
        labels = sorted(found)
        if not labels:
            raise errors.EmptyError("no label to score: pred and gt hold no non-zero label (pass labels=)")
    else:
        labels = [int(x) for x in np.atleast_1d(np.asarray(labels)).ravel()]
        if not labels:
            raise errors.InvalidArgumentError("labels is empty")
    if empty_distance is None:
        subst = None
    elif isinstance(empty_distance, str):
        if empty_distance != "diagonal":
            raise errors.InvalidArgumentError("empty_distance must be None, 'diagonal' or a number, got %r"
                                              % (empty_distance,))
        subst = math.sqrt(sum((grid.shape[a] * grid.spacing[a]) ** 2 for a in range(grid.ndim)))
    else:
        subst = float(empty_distance)
        if not subst >= 0:
            raise errors.InvalidArgumentError("empty_distance must be >= 0, got %r" % (empty_distance,))
    kw = dict(hd_mode=hd_mode, percentile=percentile, assd_mode=assd_mode, surface=surface,
              nsd_tolerance=nsd_tolerance, biou_width=biou_width, connectivity=connectivity,
              lesion_iou=lesion_iou, lesion_min_overlap=lesion_min_overlap)
    o = _opts(groups, kw, _lib.threads(threads))
    labs = (ctypes.c_int64 * len(labels))(*labels)
    res = (_geom.MetricResult * len(labels))()
    _lib.check(L.sl_metrics_eval(ctypes.byref(lp), ctypes.byref(lg), ctypes.byref(grid), labs, len(labels),
                                 ctypes.byref(o), res, buf, _lib.MSG_LEN), buf)
    out = []
    for r in res:
        rec = {"label": int(r.label)}
        substituted = False
        for c in cols:
            field, _, is_dist = COLUMNS[c]
            v = getattr(r, field)
            if is_dist and subst is not None and math.isinf(v):
                v, substituted = subst, True
            rec[c] = int(v) if field in _INT_FIELDS else float(v)
        rec["empty_pred"] = bool(r.empty_pred)
        rec["empty_gt"] = bool(r.empty_gt)
        rec["distance_substituted"] = substituted
        out.append(rec)
    return out
