"""Segmentation metrics with stated conventions: `segloss eval` on arrays and files.

    records = segloss.metrics.evaluate(pred, gt, labels=[1, 2], spacing=(2.5, 0.8, 0.8))
    records[0]["dice"], records[0]["hd95"], ...

    s = segloss.metrics.evaluate_cases("pred/", "gt/", regions="WT=1,2,4;TC=1,4;ET=4")
    s.summary()["WT"]["dice"]["mean"], s.rows(), s.write(csv="out.csv", json="out.json")

EvalSet / evaluate_cases run the library's evaluation engine (sl_evalset),
the one `segloss eval` runs, so their CSV and JSON are the command's,
byte for byte. calibration, auroc_ap, panoptic_quality and fuse bind the
probability, instance and rater families of include/segloss/metrics.h.

Every metric and convention of the `segloss eval` command (docs/eval.md,
docs/metrics.md), computed by sl_metrics_eval on one case: pred and gt are
label maps of one shape (1-D, 2-D or 3-D; numpy arrays or torch tensors of
any integer, bool or whole-valued float dtype; their dtypes may differ).
"""
import ctypes
import math
import os

import numpy as np

from . import _geom
from . import _lib
from . import errors

__all__ = ["evaluate", "COLUMNS", "DEFAULT_METRICS", "describe", "EvalSet", "evaluate_cases",
           "calibration", "auroc_ap", "panoptic_quality", "fuse", "evaluate_raters", "evaluate_probabilities"]

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
_INT_FIELDS = {"tp", "fp", "fn", "tn", "lesions_gt", "lesions_pred", "lesion_tp", "lesion_fp", "lesion_fn",
               "inst_tp", "inst_fp", "inst_fn"}


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


# =====================================================================================
# Evaluation sets: many cases on the library's engine (sl_evalset), as `segloss eval`
# =====================================================================================

class _EvalOpts(ctypes.Structure):
    """sl_eval_opts (include/segloss/metrics.h), field by field."""
    _fields_ = [("metric", _geom.MetricOpts), ("columns", ctypes.c_char_p), ("labels", _geom.c_i64p),
                ("nlabels", ctypes.c_int), ("empty_distance", ctypes.c_double),
                ("spacing", ctypes.c_double * _lib.MAX_SPATIAL), ("nspacing", ctypes.c_int),
                ("threads", ctypes.c_int), ("progress", ctypes.c_void_p), ("progress_ctx", ctypes.c_void_p),
                ("has_ignore", ctypes.c_int), ("ignore_label", ctypes.c_int64), ("empty", ctypes.c_int),
                ("regions", ctypes.c_char_p), ("label_mean", ctypes.c_int), ("beta", ctypes.c_double),
                ("shard_k", ctypes.c_int), ("shard_n", ctypes.c_int),
                ("instance_match", ctypes.c_int), ("instance_iou", ctypes.c_double),
                ("instances", ctypes.c_int)]


class _EvalStats(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int)] + [(k, ctypes.c_double) for k in ("mean", "std", "median", "min", "max")]


class _EvalCounts(ctypes.Structure):
    _fields_ = [(k, ctypes.c_int) for k in ("cases", "empty_pred", "empty_gt", "both_empty",
                                            "distance_substituted", "excluded")]


class _ProbOpts(ctypes.Structure):
    _fields_ = [("bins", ctypes.c_int), ("sum_tol", ctypes.c_double), ("has_ignore", ctypes.c_int),
                ("ignore_label", ctypes.c_int64), ("threads", ctypes.c_int)]


class _ProbResult(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64)] + [(k, ctypes.c_double) for k in
                                          ("accuracy", "ece", "mce", "classwise_ece", "brier", "nll")]


class _ProbClass(ctypes.Structure):
    _fields_ = [("positives", ctypes.c_int64)] + [(k, ctypes.c_double) for k in ("ece", "mce", "brier", "auroc", "ap")]


class _InstanceOpts(ctypes.Structure):
    _fields_ = [("match", ctypes.c_int), ("iou_threshold", ctypes.c_double), ("smooth", ctypes.c_double)]


class _InstanceResult(ctypes.Structure):
    _fields_ = [(k, ctypes.c_int64) for k in ("n_gt", "n_pred", "tp", "fp", "fn")] + \
        [(k, ctypes.c_double) for k in ("iou_sum", "pq", "sq", "rq")]


class _InstancePairs(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("gt_id", _geom.c_i64p), ("pred_id", _geom.c_i64p), ("iou", _geom.c_f64p)]


class _FuseOpts(ctypes.Structure):
    _fields_ = [("method", ctypes.c_int), ("mode", ctypes.c_int), ("max_iter", ctypes.c_int),
                ("tol", ctypes.c_double), ("init", ctypes.c_double), ("threads", ctypes.c_int)]


class _FuseResult(ctypes.Structure):
    _fields_ = [("nraters", ctypes.c_int), ("nlabels", ctypes.c_int), ("labels", _geom.c_i64p),
                ("sensitivity", _geom.c_f64p), ("specificity", _geom.c_f64p), ("prior", _geom.c_f64p),
                ("iterations", ctypes.c_int), ("converged", ctypes.c_int)]


EMPTY_MODES = {"score": 0, "nan": 1, "exclude": 2}
INSTANCE_MATCH = {"monai": 0, "greedy": 1, "hungarian": 2}
FUSE_METHODS = {"staple": 0, "majority": 1}
STAPLE_MODES = {"multiclass": 0, "binary": 1}

_edeclared = False


def _E():
    """The library with the evaluation-set and metric-family prototypes declared."""
    global _edeclared
    h = _geom.L()
    if not _edeclared:
        vp, P, sz, i, ch = ctypes.c_void_p, ctypes.POINTER, ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p
        i64, dbl = ctypes.c_int64, ctypes.c_double
        LM = P(_geom.LabelMap)
        proto = {
            "sl_evalset_create": (i, [P(_EvalOpts), P(vp), ch, sz]),
            "sl_evalset_free": (None, [vp]),
            "sl_evalset_add_paths": (i, [vp, ch, ch, ch, sz]),
            "sl_evalset_add_files": (i, [vp, ch, ch, ch, ch, sz]),
            "sl_evalset_add_maps": (i, [vp, ch, LM, LM, P(_geom.Grid), ch, sz]),
            "sl_evalset_score": (i, [vp, ch, sz]),
            "sl_evalset_warnings": (ch, [vp]),
            "sl_evalset_ncases": (i, [vp]),
            "sl_evalset_case_id": (ch, [vp, i]),
            "sl_evalset_nlabels": (i, [vp]),
            "sl_evalset_label": (i64, [vp, i]),
            "sl_evalset_ncolumns": (i, [vp]),
            "sl_evalset_column": (ch, [vp, i]),
            "sl_evalset_result": (P(_geom.MetricResult), [vp, i, i]),
            "sl_evalset_value": (dbl, [vp, i, i, i, P(i)]),
            "sl_evalset_summary": (i, [vp, i, i, P(_EvalStats), P(_EvalCounts)]),
            "sl_evalset_target_name": (ch, [vp, i]),
            "sl_evalset_pooled": (i, [vp, i, i, P(dbl)]),
            "sl_evalset_merge": (i, [P(ch), i, P(vp), ch, sz]),
            "sl_evalset_describe": (ch, [vp]),
            "sl_evalset_write": (i, [vp, ch, ch, ch, sz]),
            "sl_prob_eval": (i, [vp, i64, LM, i64, P(_ProbOpts), i, P(_ProbResult), P(_ProbClass), ch, sz]),
            "sl_auroc_ap": (i, [vp, vp, i64, P(dbl), P(dbl)]),
            "sl_instances_eval": (i, [LM, LM, i64, P(_InstanceOpts), P(_InstanceResult), P(_InstancePairs), ch, sz]),
            "sl_instances_eval_label": (i, [LM, LM, P(_geom.Grid), i64, i, P(_InstanceOpts), P(_InstanceResult),
                                            ch, sz]),
            "sl_instance_pairs_free": (None, [P(_InstancePairs)]),
            "sl_fuse": (i, [LM, i, i64, P(_FuseOpts), vp, P(_FuseResult), ch, sz]),
            "sl_fuse_result_free": (None, [P(_FuseResult)]),
        }
        for name, (res, args) in proto.items():
            f = getattr(h, name)
            f.restype = res
            f.argtypes = args
        _edeclared = True
    return h


def _path(p, what):
    """A file-system path as bytes (str, bytes or os.PathLike)."""
    try:
        return os.fsencode(p)
    except TypeError:
        raise errors.DTypeError("%s: expected a path (str or os.PathLike), got %s" % (what, type(p).__name__)) \
            from None


def _regions_text(regions):
    """regions as the engine's "NAME=l,l;NAME=l" text: a str is passed as is,
    a mapping {name: labels} is written out in its order."""
    if regions is None or isinstance(regions, str):
        return regions
    parts = []
    for name, labs in regions.items():
        labs = [int(x) for x in np.atleast_1d(np.asarray(labs)).ravel()]
        parts.append("%s=%s" % (name, ",".join(str(x) for x in labs)))
    return ";".join(parts)


def _shard(shard):
    if shard is None:
        return 0, 0
    if isinstance(shard, str):
        k, sep, n = shard.partition("/")
        try:
            return int(k), int(n)
        except ValueError:
            raise errors.InvalidArgumentError("shard expects 'K/N' or (K, N), got %r" % (shard,)) from None
    try:
        k, n = shard
        return int(k), int(n)
    except (TypeError, ValueError):
        raise errors.InvalidArgumentError("shard expects 'K/N' or (K, N), got %r" % (shard,)) from None


class EvalSet:
    """An evaluation set on the library's engine: add cases, score, summarise,
    write the CSV / JSON of `segloss eval` (docs/eval.md).

        s = EvalSet(labels=[1, 2], metrics="dice,hd95,nsd", ignore_label=255)
        s.add_paths("pred/", "gt/")               # two folders, or two files
        s.add(pred_array, gt_array, spacing=(3, 1, 1), case_id="patient7")
        s.score(threads=8)
        s.summary()["1"]["dice"]["mean"]; s.rows(); s.write(csv="e.csv", json="e.json")

    Options (the `segloss eval` flag in brackets; defaults first):
      labels None = every non-zero label found in any case [--labels]
      metrics columns, aliases or "all", a list or a comma string [--metrics]
      spacing None = each image's own (NIfTI pixdim, 1 for .npy, the grid of
        add()); a number or one value per axis overrides it for every case
      hd_mode, percentile, assd_mode, surface ("border" | "surfels"),
        nsd_tolerance, biou_width, connectivity, lesion_iou,
        lesion_min_overlap: the conventions of evaluate()
      empty_distance "diagonal" (the case's image diagonal in mm) or a
        number: written for infinite distances [--empty-distance]
      ignore_label None or a value: voxels whose ground truth has it take
        part in no metric [--ignore-label]
      empty "score" | "nan" | "exclude": rows whose ground truth lacks the
        target [--empty]
      regions None, "WT=1,2,4;TC=1,4;ET=4" or {"WT": [1, 2, 4], ...} [--regions]
      label_mean False: add a target "mean" (per case, the mean over the
        foreground targets) [--label-mean]
      beta 1: F-beta's beta [--beta]
      shard None, (k, n) or "k/n": score only the k-th of n shares [--shard]
      instances False: the inputs are instance-id maps (every distinct
        non-zero id one instance); one target "instances", and the instance
        columns (pq sq rq inst_*) match the given ids [--instances]
      match "monai" | "greedy" | "hungarian", iou_threshold 0.5: the
        instance matching of the panoptic columns [--match, --iou-threshold]
      threads None = segloss's default (see segloss._lib.threads) [--threads]

    Summary convention (one for every caller): over the finite values of a
    column for one target, n, mean, population std (ddof = 0), median, min,
    max; plus the pooled ("micro") value of the count-based columns.

    Errors raise segloss.Error subclasses with the library's message: bad
    options at construction (ValueError), bad paths when added (OSError /
    ValueError), unreadable or mismatched images when scored.
    A set is scored once; it is not thread-safe.
    """

    def __init__(self, *, labels=None, metrics=None, spacing=None, hd_mode="max", percentile=95.0,
                 assd_mode="pooled", surface="border", nsd_tolerance=1.0, biou_width=2.0, connectivity=0,
                 lesion_iou=None, lesion_min_overlap=1, empty_distance="diagonal", ignore_label=None,
                 empty="score", regions=None, label_mean=False, beta=1.0, shard=None, threads=None,
                 instances=False, match="monai", iou_threshold=0.5):
        self._h = None
        self._scored = False
        self._merged = False
        self._adds = []          # what was added, replayed when the thread count changes
        self._keep = []          # arrays borrowed by the library until the set is freed
        self._threads_arg = threads
        o = _EvalOpts()
        o.metric = _opts(0, dict(hd_mode=hd_mode, percentile=percentile, assd_mode=assd_mode, surface=surface,
                                 nsd_tolerance=nsd_tolerance, biou_width=biou_width, connectivity=connectivity,
                                 lesion_iou=lesion_iou, lesion_min_overlap=lesion_min_overlap))
        if metrics is not None and not isinstance(metrics, str):
            metrics = ",".join(metrics)
        self._columns_b = metrics.encode() if metrics is not None else None
        o.columns = self._columns_b
        if labels is not None:
            labs = [int(x) for x in np.atleast_1d(np.asarray(labels)).ravel()]
            if not labs:
                raise errors.InvalidArgumentError("labels is empty")
            self._labels = (ctypes.c_int64 * len(labs))(*labs)
            o.labels = ctypes.cast(self._labels, _geom.c_i64p)
            o.nlabels = len(labs)
        if isinstance(empty_distance, str):
            if empty_distance != "diagonal":
                raise errors.InvalidArgumentError("empty_distance must be 'diagonal' or a number >= 0, got %r"
                                                  % (empty_distance,))
            o.empty_distance = -1.0
        else:
            o.empty_distance = float(empty_distance)
            if not o.empty_distance >= 0:
                raise errors.InvalidArgumentError("empty_distance must be 'diagonal' or a number >= 0, got %r"
                                                  % (empty_distance,))
        if spacing is not None:
            sp = [float(x) for x in np.atleast_1d(np.asarray(spacing, dtype=np.float64)).ravel()]
            if not 1 <= len(sp) <= _lib.MAX_SPATIAL:
                raise errors.InvalidArgumentError("spacing has %d values (1 to 3)" % len(sp))
            for a, v in enumerate(sp):
                o.spacing[a] = v
            o.nspacing = len(sp)
        if ignore_label is not None:
            o.has_ignore, o.ignore_label = 1, int(ignore_label)
        if empty not in EMPTY_MODES:
            raise errors.UnknownNameError("unknown empty %r (one of %s)" % (empty, ", ".join(EMPTY_MODES)))
        o.empty = EMPTY_MODES[empty]
        text = _regions_text(regions)
        self._regions_b = text.encode() if text is not None else None
        o.regions = self._regions_b
        o.label_mean = 1 if label_mean else 0
        o.beta = float(beta)
        o.shard_k, o.shard_n = _shard(shard)
        if match not in INSTANCE_MATCH:
            raise errors.UnknownNameError("unknown match %r (one of %s)" % (match, ", ".join(INSTANCE_MATCH)))
        o.instance_match = INSTANCE_MATCH[match]
        o.instance_iou = float(iou_threshold)
        o.instances = 1 if instances else 0
        self._o = o
        self._create(_lib.threads(threads))

    def _create(self, nthreads):
        """A new empty C set with the options and this thread count (0 = the OpenMP default)."""
        self._o.threads = int(nthreads)
        self._o.metric.threads = int(nthreads)
        h = ctypes.c_void_p()
        buf = _lib.msgbuf()
        _lib.check(_E().sl_evalset_create(ctypes.byref(self._o), ctypes.byref(h), buf, _lib.MSG_LEN), buf)
        self._free()
        self._h = h
        self._nthreads = int(nthreads)

    def _free(self):
        if getattr(self, "_h", None):
            _E().sl_evalset_free(self._h)
        self._h = None

    def __del__(self):
        try:
            self._free()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass

    def close(self):
        """Releases the library's set (and the arrays it borrowed)."""
        self._free()
        self._keep = []
        self._adds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if self._h is None:
            raise errors.BadStateError("eval: the set is closed")
        return self._h

    def _adding(self):
        self._live()
        if self._scored:
            raise errors.BadStateError("eval: the set is already scored; cases cannot be added")

    def _replay(self, kind, args):
        buf = _lib.msgbuf()
        L = _E()
        if kind == "paths":
            st = L.sl_evalset_add_paths(self._h, args[0], args[1], buf, _lib.MSG_LEN)
        elif kind == "files":
            st = L.sl_evalset_add_files(self._h, args[0], args[1], args[2], buf, _lib.MSG_LEN)
        else:
            cid, lp, lg, g = args
            st = L.sl_evalset_add_maps(self._h, cid, ctypes.byref(lp), ctypes.byref(lg), ctypes.byref(g),
                                       buf, _lib.MSG_LEN)
        _lib.check(st, buf)

    def _add(self, kind, args):
        self._adding()
        self._replay(kind, args)
        self._adds.append((kind, args))

    def add_paths(self, pred, gt, case_id=None):
        """Cases from files, as `segloss eval --pred P --gt G`: two image files
        (.nii, .nii.gz, .npy) make one case named after gt's file name
        without its extension (or case_id); two folders make one case per
        file name present in both. Images are read when the set is scored."""
        p, g = _path(pred, "pred"), _path(gt, "gt")
        if case_id is None:
            self._add("paths", (p, g))
        else:
            self._add("files", (str(case_id).encode(), p, g))

    def add(self, pred, gt, *, spacing=None, case_id=None):
        """One case from two label maps of one shape (1-D to 3-D numpy arrays or
        tensors, any integer, bool or whole-valued float dtypes). spacing: of
        this case (None = 1 mm), unless the set's spacing overrides it.
        case_id: default "case<N>" with N the number of cases added so far + 1.
        The arrays are borrowed (not copied) until the set is closed."""
        p = _geom.to_numpy(pred, "pred")
        g = _geom.to_numpy(gt, "gt")
        if p.shape != g.shape:
            raise errors.ShapeError("pred and gt differ in shape: %s vs %s" % (p.shape, g.shape))
        grid = _geom.grid(p.shape, spacing)
        lp = _geom.LabelMap(_geom.ptr(p), _geom.cdtype(p, "pred"))
        lg = _geom.LabelMap(_geom.ptr(g), _geom.cdtype(g, "gt"))
        cid = ("case%d" % (len(self._adds) + 1)) if case_id is None else str(case_id)
        self._add("maps", (cid.encode(), lp, lg, grid))
        self._keep += [p, g]

    def score(self, threads=None):
        """Scores every case (once). threads: as the constructor's; the count
        is resolved now (1 in a forked child or a DataLoader worker).
        Returns the set."""
        self._adding()
        n = _lib.threads(threads if threads is not None else self._threads_arg)
        if n != self._nthreads:
            self._create(n)
            for kind, args in self._adds:
                self._replay(kind, args)
        buf = _lib.msgbuf()
        _lib.check(_E().sl_evalset_score(self._h, buf, _lib.MSG_LEN), buf)
        self._scored = True
        return self

    @classmethod
    def merge(cls, json_paths):
        """The scored set of the JSON outputs of the shards of one run (every
        shard once): its outputs are byte-identical to the unsharded run's."""
        paths = [_path(p, "json_paths") for p in json_paths]
        arr = (ctypes.c_char_p * max(len(paths), 1))(*paths)
        h = ctypes.c_void_p()
        buf = _lib.msgbuf()
        _lib.check(_E().sl_evalset_merge(arr, len(paths), ctypes.byref(h), buf, _lib.MSG_LEN), buf)
        s = cls.__new__(cls)
        s._h, s._scored, s._merged, s._adds, s._keep = h, True, True, [], []
        s._threads_arg, s._nthreads = None, 0
        return s

    # ---- results --------------------------------------------------------------
    def _ready(self):
        h = self._live()
        if not self._scored:
            raise errors.BadStateError("eval: the set is not scored (call score())")
        return h

    @property
    def cases(self):
        """Case ids in case order."""
        h = self._ready()
        L = _E()
        return [L.sl_evalset_case_id(h, i).decode() for i in range(L.sl_evalset_ncases(h))]

    @property
    def targets(self):
        """Target names: the labels ("1"), then the regions, then "mean"."""
        h = self._ready()
        L = _E()
        return [L.sl_evalset_target_name(h, t).decode() for t in range(L.sl_evalset_nlabels(h))]

    @property
    def columns(self):
        h = self._ready()
        L = _E()
        return [L.sl_evalset_column(h, k).decode() for k in range(L.sl_evalset_ncolumns(h))]

    @property
    def warnings(self):
        """Warnings collected while reading (one line each), "" when none."""
        return _E().sl_evalset_warnings(self._live()).decode()

    def describe(self):
        """The conventions line, as `segloss eval` prints it."""
        return _E().sl_evalset_describe(self._ready()).decode()

    def _target(self, target):
        names = self.targets
        key = str(target)
        if key not in names:
            raise errors.UnknownNameError("unknown target %r (one of %s)" % (target, ", ".join(names)))
        return names.index(key)

    def _column(self, column):
        cols = self.columns
        if column not in cols:
            raise errors.UnknownNameError("unknown column %r (one of %s)" % (column, ", ".join(cols)))
        return cols.index(column)

    def values(self, column):
        """The output values of one column as a (cases, targets) float64 array:
        what the CSV holds (infinite distances replaced)."""
        h = self._ready()
        k = self._column(column)
        L = _E()
        nc, nt = L.sl_evalset_ncases(h), L.sl_evalset_nlabels(h)
        out = np.empty((nc, nt))
        for i in range(nc):
            for t in range(nt):
                out[i, t] = L.sl_evalset_value(h, i, t, k, None)
        return out

    def rows(self):
        """One dict per case and target, as the CSV rows: "case", "label" (an
        int for a label, the name for a region or "mean"), the columns,
        "empty_pred", "empty_gt", "distance_substituted". The two empty
        flags are None where the library keeps no per-case result (the
        "mean" target, a merged set)."""
        h = self._ready()
        L = _E()
        cols, names, cases = self.columns, self.targets, self.cases
        out = []
        for i, cid in enumerate(cases):
            for t, name in enumerate(names):
                lab = int(L.sl_evalset_label(h, t))
                row = {"case": cid, "label": lab if lab >= 0 and name == str(lab) else name}
                sub = ctypes.c_int(0)
                for k, c in enumerate(cols):
                    v = L.sl_evalset_value(h, i, t, k, ctypes.byref(sub))
                    row[c] = int(v) if c in _INT_FIELDS and math.isfinite(v) and v == int(v) else float(v)
                r = L.sl_evalset_result(h, i, t)
                row["empty_pred"] = bool(r.contents.empty_pred) if r else None
                row["empty_gt"] = bool(r.contents.empty_gt) if r else None
                row["distance_substituted"] = bool(sub.value)
                out.append(row)
        return out

    def pooled(self, target, column):
        """The pooled ("micro") value of a count-based column for a target:
        the metric of the confusion counts summed over the cases (global
        Dice). NotImplementedError for other columns and the mean target."""
        h = self._ready()
        v = ctypes.c_double()
        st = _E().sl_evalset_pooled(h, self._target(target), self._column(column), ctypes.byref(v))
        if st:
            _lib.check(st, None, "pooled %s of target %s" % (column, target))
        return v.value

    def summary(self):
        """{target: {"cases", "empty_pred", "empty_gt", "both_empty",
        "distance_substituted", "excluded", column: {"n", "mean", "std",
        "median", "min", "max"}, ..., "pooled": {column: value}}}, the
        "summary" object of the JSON output (std: population, ddof = 0)."""
        h = self._ready()
        L = _E()
        cols = self.columns
        out = {}
        for t, name in enumerate(self.targets):
            d = {}
            pooled = {}
            for k, c in enumerate(cols):
                st, cn = _EvalStats(), _EvalCounts()
                buf_st = L.sl_evalset_summary(h, t, k, ctypes.byref(st), ctypes.byref(cn))
                _lib.check(buf_st, None, "summary")
                if k == 0:
                    d.update({f: getattr(cn, f) for f, _ in _EvalCounts._fields_})
                d[c] = {"n": st.n, "mean": st.mean, "std": st.std, "median": st.median, "min": st.min,
                        "max": st.max}
                v = ctypes.c_double()
                if L.sl_evalset_pooled(h, t, k, ctypes.byref(v)) == 0:
                    pooled[c] = v.value
            if pooled:
                d["pooled"] = pooled
            out[name] = d
        return out

    def write(self, csv=None, json=None):
        """Writes the CSV and/or JSON of `segloss eval`: both completely, or
        neither (no partial output, existing files left as they were)."""
        h = self._ready()
        if csv is None and json is None:
            raise errors.InvalidArgumentError("write: give csv= or json= (or both)")
        buf = _lib.msgbuf()
        _lib.check(_E().sl_evalset_write(h, _path(csv, "csv") if csv is not None else None,
                                         _path(json, "json") if json is not None else None, buf, _lib.MSG_LEN), buf)


def evaluate_cases(pred, gt, *, case_ids=None, threads=None, **options):
    """Scores many cases at once and returns the scored EvalSet.

    pred, gt: two folders or two image files (as `segloss eval --pred --gt`),
    or two sequences of equal length whose items are label-map arrays /
    tensors (each pair one case; their spacing is the set's `spacing=`, else
    1 mm) or image files. case_ids: names for the pairs of a sequence.
    options: those of EvalSet (labels, metrics, spacing, conventions,
    ignore_label, empty, regions, label_mean, beta, shard, ...).
    """
    s = EvalSet(threads=threads, **options)
    if isinstance(pred, (str, bytes, os.PathLike)) or isinstance(gt, (str, bytes, os.PathLike)):
        if case_ids is not None:
            raise errors.InvalidArgumentError("case_ids applies to sequences of cases, not to folders")
        s.add_paths(pred, gt)
    else:
        pred, gt = list(pred), list(gt)
        if len(pred) != len(gt):
            raise errors.InvalidArgumentError("pred has %d cases, gt %d" % (len(pred), len(gt)))
        if case_ids is not None and len(list(case_ids)) != len(pred):
            raise errors.InvalidArgumentError("case_ids has %d names for %d cases" % (len(list(case_ids)), len(pred)))
        ids = list(case_ids) if case_ids is not None else [None] * len(pred)
        for p, g, cid in zip(pred, gt, ids):
            if isinstance(p, (str, bytes, os.PathLike)):
                s.add_paths(p, g, case_id=cid)
            else:
                s.add(p, g, case_id=cid)
    return s.score()


def evaluate_raters(pred, gt, *, case_ids=None, threads=None, **options):
    """Scores predictions against several raters, as `segloss eval --pred P
    --gt R1,R2,...`: against each rater, and against the raters' STAPLE
    fusion (multi-class, fuse()'s defaults), per case.

    pred: a sequence of label maps (one per case); gt: a sequence of the
    same length whose items are sequences of >= 2 label maps (the raters of
    that case, every case the same number, each of pred's shape). case_ids:
    names of the cases (default "case1", ...). options: those of EvalSet
    (labels, metrics, spacing, conventions, ...; not instances).

    Returns {"raters": [EvalSet per rater], "fused": EvalSet, "labels":
    {label: {column: {"per_rater": [the rater's mean over cases, ...],
    "mean", "min", "max" (over the raters' finite means), "fused"}}}}: the
    "labels" object of the CLI's JSON, value for value.
    """
    pred = list(pred)
    gt = [list(g) for g in gt]
    if len(pred) != len(gt):
        raise errors.InvalidArgumentError("pred has %d cases, gt %d" % (len(pred), len(gt)))
    if not pred:
        raise errors.InvalidArgumentError("no case given")
    nr = len(gt[0])
    if nr < 2 or any(len(g) != nr for g in gt):
        raise errors.InvalidArgumentError("every case needs the same number (>= 2) of raters, got %s"
                                          % [len(g) for g in gt])
    if options.get("instances"):
        raise errors.InvalidArgumentError("instances takes one ground truth, not several raters")
    ids = list(case_ids) if case_ids is not None else ["case%d" % (i + 1) for i in range(len(pred))]
    if len(ids) != len(pred):
        raise errors.InvalidArgumentError("case_ids has %d names for %d cases" % (len(ids), len(pred)))
    preds = [_geom.to_numpy(p, "pred[%d]" % i) for i, p in enumerate(pred)]
    sets = [evaluate_cases(preds, [g[j] for g in gt], case_ids=ids, threads=threads, **options) for j in range(nr)]
    fused = [fuse(g, threads=threads) for g in gt]
    fset = evaluate_cases(preds, fused, case_ids=ids, threads=threads, **options)
    labels = {}
    cols = sets[0].columns
    summ = [s.summary() for s in sets]
    fsum = fset.summary()
    for name in sets[0].targets:
        d = {}
        for c in cols:
            per = [sm[name][c]["mean"] if name in sm else math.nan for sm in summ]
            fin = [v for v in per if math.isfinite(v)]
            d[c] = {"per_rater": per, "mean": sum(fin) / len(fin) if fin else math.nan,
                    "min": min(fin) if fin else math.nan, "max": max(fin) if fin else math.nan,
                    "fused": fsum[name][c]["mean"] if name in fsum else math.nan}
        labels[name] = d
    return {"raters": sets, "fused": fset, "labels": labels}


_PROB_FIELDS = ("accuracy", "ece", "mce", "classwise_ece", "brier", "nll")


def evaluate_probabilities(prob, gt, *, case_ids=None, bins=15, sum_tol=1e-4, ignore_label=None, ranking=True,
                           threads=None):
    """Scores the probabilities of many cases, as `segloss eval --prob P --gt G`.

    prob: a sequence of (C, spatial...) probability arrays (a softmax,
    channels first); gt: a sequence of label maps of the same length, each
    of its prob's spatial shape. case_ids: names (default "case1", ...).
    bins, sum_tol, ignore_label, ranking: as calibration().

    Returns {"cases": [{"case", "n", "accuracy", "ece", "mce",
    "classwise_ece", "brier", "nll", "classes": [...]}], "summary": {field:
    {"n", "mean", "std"}}}, the CLI's JSON without its conventions line: the
    summary over the cases' finite values, std the population one (ddof 0).
    """
    prob, gt = list(prob), list(gt)
    if len(prob) != len(gt):
        raise errors.InvalidArgumentError("prob has %d cases, gt %d" % (len(prob), len(gt)))
    ids = list(case_ids) if case_ids is not None else ["case%d" % (i + 1) for i in range(len(prob))]
    if len(ids) != len(prob):
        raise errors.InvalidArgumentError("case_ids has %d names for %d cases" % (len(ids), len(prob)))
    cases = []
    for cid, p, g in zip(ids, prob, gt):
        r = calibration(p, g, bins=bins, sum_tol=sum_tol, ignore_label=ignore_label, ranking=ranking,
                        threads=threads)
        if not ranking:
            for c in r["classes"]:
                c["auroc"] = c["ap"] = math.nan
        cases.append(dict({"case": str(cid)}, **r))
    summary = {}
    for f in _PROB_FIELDS:
        v = [c[f] for c in cases if math.isfinite(c[f])]
        m = sum(v) / len(v) if v else math.nan
        summary[f] = {"n": len(v), "mean": m,
                      "std": math.sqrt(sum((x - m) * (x - m) for x in v) / len(v)) if v else math.nan}
    return {"cases": cases, "summary": summary}


# =====================================================================================
# Metric families: probabilities, instances, raters
# =====================================================================================

def calibration(prob, labels, *, bins=15, sum_tol=1e-4, ignore_label=None, ranking=True, threads=None):
    """Calibration and ranking of one case's class probabilities (sl_prob_eval).

    prob: (C, spatial...) probabilities, channels first (a softmax output;
      C >= 2); converted to float32 (a copy unless already C-contiguous
      float32). labels: (spatial...) integer label map with values in [0, C)
      or ignore_label. Every voxel's probabilities must be finite, in [0, 1],
      summing to 1 within sum_tol (ValueError naming the voxel otherwise).
    bins: equal-width bins on [0, 1] for ECE / MCE (a value v in bin b when
      b/B < v <= (b+1)/B). ranking: also per-class AUROC and AP.

    Returns {"n", "accuracy", "ece", "mce", "classwise_ece", "brier", "nll",
    "classes": [{"positives", "ece", "mce", "brier", "auroc", "ap"}, ...]}:
    top-label ECE/MCE (Guo et al. 2017), class-wise ECE (Kull et al. 2019,
    the mean over classes), Brier (the sum over classes of scikit-learn's
    brier_score_loss per class), NLL (-log max(p_y, 1e-15)), AUROC/AP as
    scikit-learn's roc_auc_score / average_precision_score (NaN where
    scikit-learn raises or warns). docs/metrics.md has every definition.
    """
    p = _geom.to_numpy(prob, "prob")
    if p.ndim < 2:
        raise errors.ShapeError("prob: expected (C, spatial...), got shape %s" % (p.shape,))
    p = np.ascontiguousarray(p, dtype=np.float32)
    y = _geom.to_numpy(labels, "labels")
    if y.shape != p.shape[1:]:
        raise errors.ShapeError("labels have shape %s; prob (C, spatial...) %s needs %s"
                                % (y.shape, p.shape, p.shape[1:]))
    C, n = p.shape[0], int(y.size)
    lm = _geom.LabelMap(_geom.ptr(y), _geom.cdtype(y, "labels"))
    o = _ProbOpts(int(bins), float(sum_tol), 0 if ignore_label is None else 1,
                  0 if ignore_label is None else int(ignore_label), _lib.threads(threads))
    r = _ProbResult()
    pc = (_ProbClass * max(C, 1))()
    buf = _lib.msgbuf()
    _lib.check(_E().sl_prob_eval(_geom.ptr(p), C, ctypes.byref(lm), n, ctypes.byref(o), 1 if ranking else 0,
                                 ctypes.byref(r), pc, buf, _lib.MSG_LEN), buf)
    out = {k: (int(getattr(r, k)) if k == "n" else float(getattr(r, k))) for k, _ in _ProbResult._fields_}
    out["classes"] = [{k: (int(getattr(c, k)) if k == "positives" else float(getattr(c, k)))
                       for k, _ in _ProbClass._fields_} for c in pc[:C]]
    return out


def auroc_ap(score, target):
    """(AUROC, average precision) of scores for binary targets, as
    scikit-learn's roc_auc_score and average_precision_score (NaN where
    undefined: no positive, or for AUROC no negative). score: finite
    values, used as float32 (float64 scores are rounded to float32, which
    can merge close scores into ties). target: 0 / non-zero, same size."""
    s = np.ascontiguousarray(_geom.to_numpy(score, "score"), dtype=np.float32).ravel()
    y = _geom.as_mask(target, "target").ravel()
    if s.size != y.size:
        raise errors.ShapeError("score has %d values, target %d" % (s.size, y.size))
    a, ap = ctypes.c_double(), ctypes.c_double()
    st = _E().sl_auroc_ap(_geom.ptr(s), _geom.ptr(y), s.size, ctypes.byref(a), ctypes.byref(ap))
    _lib.check(st, None, "auroc_ap")
    return a.value, ap.value


def panoptic_quality(pred, gt, *, label=None, connectivity=0, match="monai", iou_threshold=0.5, smooth=1e-6,
                     return_pairs=False):
    """Instance matching and panoptic quality, as MONAI's compute_panoptic_quality.

    label None: pred and gt are instance maps (0 background, every other
      integer id one instance, wherever its voxels are).
    label L: the instances are the connected components of (map == L) in
      two semantic label maps (1-D to 3-D; connectivity 0 = full, or 4/8,
      6/18/26).
    match: "monai" (pairs with IoU > threshold; below 0.5 the Hungarian
      method), "greedy" (by decreasing IoU) or "hungarian" (maximal total
      IoU, then pairs above the threshold). A pair needs IoU >
      iou_threshold strictly.
    Returns {"n_gt", "n_pred", "tp", "fp", "fn", "iou_sum", "pq", "sq", "rq"}
    with SQ = iou_sum / (TP + smooth), RQ = TP / (TP + FP/2 + FN/2 + smooth),
    PQ = iou_sum / (TP + FP/2 + FN/2 + smooth); with return_pairs (instance
    maps only) also "pairs": [(gt_id, pred_id, iou), ...] by ascending gt id.
    """
    p = _geom.to_numpy(pred, "pred")
    g = _geom.to_numpy(gt, "gt")
    if p.shape != g.shape:
        raise errors.ShapeError("pred and gt differ in shape: %s vs %s" % (p.shape, g.shape))
    if match not in INSTANCE_MATCH:
        raise errors.UnknownNameError("unknown match %r (one of %s)" % (match, ", ".join(INSTANCE_MATCH)))
    lp = _geom.LabelMap(_geom.ptr(p), _geom.cdtype(p, "pred"))
    lg = _geom.LabelMap(_geom.ptr(g), _geom.cdtype(g, "gt"))
    o = _InstanceOpts(INSTANCE_MATCH[match], float(iou_threshold), float(smooth))
    r = _InstanceResult()
    buf = _lib.msgbuf()
    L = _E()
    pairs = None
    if label is None:
        pr = _InstancePairs()
        _lib.check(L.sl_instances_eval(ctypes.byref(lp), ctypes.byref(lg), p.size, ctypes.byref(o), ctypes.byref(r),
                                       ctypes.byref(pr) if return_pairs else None, buf, _lib.MSG_LEN), buf)
        if return_pairs:
            try:
                pairs = [(int(pr.gt_id[k]), int(pr.pred_id[k]), float(pr.iou[k])) for k in range(pr.n)]
            finally:
                L.sl_instance_pairs_free(ctypes.byref(pr))
    else:
        if return_pairs:
            raise errors.InvalidArgumentError("return_pairs is available for instance maps (label=None) only")
        grid = _geom.grid(p.shape, None)
        _lib.check(L.sl_instances_eval_label(ctypes.byref(lp), ctypes.byref(lg), ctypes.byref(grid), int(label),
                                             int(connectivity), ctypes.byref(o), ctypes.byref(r), buf, _lib.MSG_LEN),
                   buf)
    out = {k: (int(getattr(r, k)) if t is ctypes.c_int64 else float(getattr(r, k)))
           for k, t in _InstanceResult._fields_}
    if pairs is not None:
        out["pairs"] = pairs
    return out


def fuse(raters, *, method="staple", mode="multiclass", max_iter=200, tol=1e-8, init=0.99, threads=None,
         return_details=False):
    """Fuses the label maps of several raters (>= 2, one shape, dtypes may
    differ) into one int64 label map of that shape.

    method "staple" (Warfield et al. 2004, EM; mode "multiclass": one
      confusion matrix per rater, or "binary": binary STAPLE per label) or
      "majority" (the label most raters give; the smallest on ties).
    max_iter, tol, init: the EM's iteration cap, stopping tolerance and
      initial sensitivity/specificity.
    return_details: also return {"labels", "sensitivity" (raters x labels),
      "specificity", "prior", "iterations", "converged"} (sensitivity and
      specificity NaN for majority voting).
    """
    rs = [_geom.to_numpy(r, "raters[%d]" % i) for i, r in enumerate(raters)]
    if len(rs) < 2:
        raise errors.InvalidArgumentError("fuse needs at least 2 raters, got %d" % len(rs))
    for i, r in enumerate(rs[1:], 1):
        if r.shape != rs[0].shape:
            raise errors.ShapeError("raters[%d] has shape %s, raters[0] %s" % (i, r.shape, rs[0].shape))
    if method not in FUSE_METHODS:
        raise errors.UnknownNameError("unknown method %r (one of %s)" % (method, ", ".join(FUSE_METHODS)))
    if mode not in STAPLE_MODES:
        raise errors.UnknownNameError("unknown mode %r (one of %s)" % (mode, ", ".join(STAPLE_MODES)))
    maps = (_geom.LabelMap * len(rs))(*[_geom.LabelMap(_geom.ptr(r), _geom.cdtype(r, "raters[%d]" % i))
                                        for i, r in enumerate(rs)])
    o = _FuseOpts(FUSE_METHODS[method], STAPLE_MODES[mode], int(max_iter), float(tol), float(init),
                  _lib.threads(threads))
    fused = np.empty(rs[0].shape, np.int64)
    res = _FuseResult()
    buf = _lib.msgbuf()
    L = _E()
    _lib.check(L.sl_fuse(maps, len(rs), rs[0].size, ctypes.byref(o), _geom.ptr(fused), ctypes.byref(res), buf,
                         _lib.MSG_LEN), buf)
    try:
        R, K = res.nraters, res.nlabels
        details = {"labels": [int(res.labels[k]) for k in range(K)],
                   "sensitivity": np.ctypeslib.as_array(res.sensitivity, (R * K,)).reshape(R, K).copy(),
                   "specificity": np.ctypeslib.as_array(res.specificity, (R * K,)).reshape(R, K).copy(),
                   "prior": np.ctypeslib.as_array(res.prior, (K,)).copy(),
                   "iterations": int(res.iterations), "converged": bool(res.converged)}
    finally:
        L.sl_fuse_result_free(ctypes.byref(res))
    return (fused, details) if return_details else fused
