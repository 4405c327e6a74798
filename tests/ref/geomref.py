"""ctypes bindings of include/segloss/geometry.h and metrics.h for the
reference tests and the geometry benchmark (Debian's /usr/bin/python3).

Only thin wrappers: every call checks the status and raises with the
library's message. The struct layouts mirror the headers field by field.
"""
import ctypes
import numpy as np

import slref

c_i64p = ctypes.POINTER(ctypes.c_int64)

DTYPES = {
    np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.bool_): 2,
    np.dtype(np.uint8): 3, np.dtype(np.int8): 4, np.dtype(np.uint16): 5,
    np.dtype(np.int16): 6, np.dtype(np.uint32): 7, np.dtype(np.int32): 8,
    np.dtype(np.uint64): 9, np.dtype(np.int64): 10,
}

EDT_MODES = {"plain": 0, "multilabel": 1, "signed": 2, "kervadec": 3}
HD_MODES = {"max": 0, "union": 1, "mean": 2}
ASSD_MODES = {"pooled": 0, "mean": 1}
SURFACES = {"border": 0, "surfels": 1}
LESION_MATCH = {"overlap": 0, "iou": 1}

MET_OVERLAP, MET_DISTANCE, MET_NSD, MET_BIOU, MET_LESION, MET_CLDICE = 1, 2, 4, 8, 16, 32
MET_ALL = 63


class Grid(ctypes.Structure):
    _fields_ = [("ndim", ctypes.c_int), ("shape", ctypes.c_int64 * 3), ("spacing", ctypes.c_double * 3)]


class EdtOpts(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_int), ("threads", ctypes.c_int)]


class Components(ctypes.Structure):
    _fields_ = [("count", ctypes.c_int64), ("ndim", ctypes.c_int),
                ("size", c_i64p), ("bbox", c_i64p)]


class LabelMap(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int)]


class MetricOpts(ctypes.Structure):
    _fields_ = [("metrics", ctypes.c_uint), ("hd_mode", ctypes.c_int), ("percentile", ctypes.c_double),
                ("assd_mode", ctypes.c_int), ("surface", ctypes.c_int), ("nsd_tolerance", ctypes.c_double),
                ("biou_width", ctypes.c_double), ("connectivity", ctypes.c_int),
                ("lesion_match", ctypes.c_int), ("lesion_min_overlap", ctypes.c_int64),
                ("lesion_iou", ctypes.c_double), ("threads", ctypes.c_int)]


_RESULT_FIELDS = [
    ("label", ctypes.c_int64), ("computed", ctypes.c_uint), ("empty_pred", ctypes.c_int), ("empty_gt", ctypes.c_int),
    ("tp", ctypes.c_int64), ("fp", ctypes.c_int64), ("fn", ctypes.c_int64), ("tn", ctypes.c_int64),
    ("vol_pred", ctypes.c_double), ("vol_gt", ctypes.c_double),
    ("dice", ctypes.c_double), ("iou", ctypes.c_double), ("precision", ctypes.c_double),
    ("recall", ctypes.c_double), ("specificity", ctypes.c_double), ("voe", ctypes.c_double),
    ("rvd", ctypes.c_double), ("volume_similarity", ctypes.c_double), ("mcc", ctypes.c_double),
    ("kappa", ctypes.c_double),
    ("n_surf_pred", ctypes.c_int64), ("n_surf_gt", ctypes.c_int64),
    ("surf_pred", ctypes.c_double), ("surf_gt", ctypes.c_double),
    ("hd", ctypes.c_double), ("hd_perc", ctypes.c_double),
    ("hd_perc_pred_to_gt", ctypes.c_double), ("hd_perc_gt_to_pred", ctypes.c_double),
    ("assd", ctypes.c_double), ("asd_pred_to_gt", ctypes.c_double), ("asd_gt_to_pred", ctypes.c_double),
    ("msd_pred_to_gt", ctypes.c_double), ("msd_gt_to_pred", ctypes.c_double), ("nsd", ctypes.c_double),
    ("biou", ctypes.c_double),
    ("lesions_gt", ctypes.c_int64), ("lesions_pred", ctypes.c_int64), ("lesion_tp", ctypes.c_int64),
    ("lesion_fn", ctypes.c_int64), ("lesion_fp", ctypes.c_int64),
    ("lesion_precision", ctypes.c_double), ("lesion_recall", ctypes.c_double),
    ("lesion_f1", ctypes.c_double), ("lesion_dice", ctypes.c_double),
    ("cldice", ctypes.c_double), ("topo_precision", ctypes.c_double), ("topo_sensitivity", ctypes.c_double),
]


class MetricResult(ctypes.Structure):
    _fields_ = _RESULT_FIELDS

    def as_dict(self):
        return {k: getattr(self, k) for k, _ in _RESULT_FIELDS}


class SurfaceDistances(ctypes.Structure):
    _fields_ = [("n_pred", ctypes.c_int64), ("n_gt", ctypes.c_int64),
                ("d_pred_to_gt", ctypes.POINTER(ctypes.c_double)), ("w_pred", ctypes.POINTER(ctypes.c_double)),
                ("d_gt_to_pred", ctypes.POINTER(ctypes.c_double)), ("w_gt", ctypes.POINTER(ctypes.c_double))]


class LesionReport(ctypes.Structure):
    _fields_ = [("n_gt", ctypes.c_int64), ("n_pred", ctypes.c_int64),
                ("gt_size", c_i64p), ("gt_detected", ctypes.POINTER(ctypes.c_uint8)),
                ("gt_dice", ctypes.POINTER(ctypes.c_double)), ("pred_size", c_i64p),
                ("pred_matched", ctypes.POINTER(ctypes.c_uint8)),
                ("tp", ctypes.c_int64), ("fp", ctypes.c_int64), ("fn", ctypes.c_int64),
                ("precision", ctypes.c_double), ("recall", ctypes.c_double), ("f1", ctypes.c_double),
                ("mean_dice", ctypes.c_double)]


class SlError(RuntimeError):
    def __init__(self, code, msg):
        super().__init__("status %d: %s" % (code, msg))
        self.code = code


def L():
    lib = slref.lib()
    if not getattr(lib, "_geom_typed", False):
        lib.sl_grid_voxels.restype = ctypes.c_int64
        lib._geom_typed = True
    return lib


def grid(shape, spacing=None):
    spacing = spacing if spacing is not None else (1.0,) * len(shape)
    g = Grid()
    g.ndim = len(shape)
    for i, s in enumerate(shape):
        g.shape[i] = s
        g.spacing[i] = spacing[i]
    return g


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def _check(st, msg=None):
    if st != 0:
        raise SlError(st, msg.value.decode() if msg is not None else "")


def edt(a, spacing=None, mode="plain", out=np.float64, threads=0):
    a = np.ascontiguousarray(a)
    g = grid(a.shape, spacing)
    o = np.empty(a.shape, out)
    msg = ctypes.create_string_buffer(256)
    _check(L().sl_edt(_ptr(a), DTYPES[a.dtype], ctypes.byref(g), ctypes.byref(EdtOpts(EDT_MODES[mode], threads)),
                      _ptr(o), DTYPES[np.dtype(out)], msg, 256), msg)
    return o


def border(m, threads=0):
    m = np.ascontiguousarray(m, dtype=np.uint8)
    o = np.empty(m.shape, np.uint8)
    _check(L().sl_surface_border(_ptr(m), ctypes.byref(grid(m.shape)), _ptr(o), threads))
    return o.astype(bool)


def surface_elements(m, spacing=None, threads=0):
    m = np.ascontiguousarray(m, dtype=np.uint8)
    o = np.empty(tuple(s + 1 for s in m.shape), np.float64)
    _check(L().sl_surface_elements(_ptr(m), ctypes.byref(grid(m.shape, spacing)), _ptr(o), threads))
    return o


def components(m, connectivity=0):
    m = np.ascontiguousarray(m, dtype=np.uint8)
    lab = np.empty(m.shape, np.int32)
    c = Components()
    msg = ctypes.create_string_buffer(256)
    _check(L().sl_components_label(_ptr(m), ctypes.byref(grid(m.shape)), connectivity, _ptr(lab),
                                   ctypes.byref(c), msg, 256), msg)
    n = c.count
    sizes = np.array([c.size[i] for i in range(n)], np.int64)
    bbox = np.array([[c.bbox[i * 6 + k] for k in range(6)] for i in range(n)], np.int64).reshape(n, 6)
    L().sl_components_free(ctypes.byref(c))
    return lab, n, sizes, bbox


def skeletonize(m):
    m = np.ascontiguousarray(m, dtype=np.uint8)
    o = np.empty(m.shape, np.uint8)
    msg = ctypes.create_string_buffer(256)
    _check(L().sl_skeletonize(_ptr(m), ctypes.byref(grid(m.shape)), _ptr(o), msg, 256), msg)
    return o.astype(bool)


def metric_opts(**kw):
    o = MetricOpts(MET_ALL, 0, 95.0, 0, 0, 1.0, 2.0, 0, 0, 1, 0.5, 0)
    for k, v in kw.items():
        if k == "hd_mode":
            v = HD_MODES[v]
        elif k == "assd_mode":
            v = ASSD_MODES[v]
        elif k == "surface":
            v = SURFACES[v]
        elif k == "lesion_match":
            v = LESION_MATCH[v]
        setattr(o, k, v)
    return o


def evaluate(pred, gt, labels, spacing=None, **kw):
    """sl_metrics_eval on two label maps; returns a list of dicts."""
    pred = np.ascontiguousarray(pred)
    gt = np.ascontiguousarray(gt)
    assert pred.shape == gt.shape
    g = grid(pred.shape, spacing)
    lp = LabelMap(_ptr(pred), DTYPES[pred.dtype])
    lg = LabelMap(_ptr(gt), DTYPES[gt.dtype])
    labs = (ctypes.c_int64 * len(labels))(*labels)
    res = (MetricResult * len(labels))()
    o = metric_opts(**kw)
    msg = ctypes.create_string_buffer(256)
    _check(L().sl_metrics_eval(ctypes.byref(lp), ctypes.byref(lg), ctypes.byref(g), labs, len(labels),
                               ctypes.byref(o), res, msg, 256), msg)
    return [r.as_dict() for r in res]


def evaluate_mask(pred, gt, spacing=None, **kw):
    pred = np.ascontiguousarray(pred, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.uint8)
    g = grid(pred.shape, spacing)
    r = MetricResult()
    o = metric_opts(**kw)
    msg = ctypes.create_string_buffer(256)
    _check(L().sl_metrics_eval_mask(_ptr(pred), _ptr(gt), ctypes.byref(g), ctypes.byref(o), ctypes.byref(r),
                                    msg, 256), msg)
    return r.as_dict()


def surface_distances(pred, gt, spacing=None, surface="border", threads=0):
    pred = np.ascontiguousarray(pred, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.uint8)
    d = SurfaceDistances()
    msg = ctypes.create_string_buffer(256)
    _check(L().sl_surface_distances_compute(_ptr(pred), _ptr(gt), ctypes.byref(grid(pred.shape, spacing)),
                                            SURFACES[surface], threads, ctypes.byref(d), msg, 256), msg)
    out = {
        "d_pred_to_gt": np.ctypeslib.as_array(d.d_pred_to_gt, (d.n_pred,)).copy() if d.n_pred else np.zeros(0),
        "w_pred": np.ctypeslib.as_array(d.w_pred, (d.n_pred,)).copy() if d.n_pred else np.zeros(0),
        "d_gt_to_pred": np.ctypeslib.as_array(d.d_gt_to_pred, (d.n_gt,)).copy() if d.n_gt else np.zeros(0),
        "w_gt": np.ctypeslib.as_array(d.w_gt, (d.n_gt,)).copy() if d.n_gt else np.zeros(0),
    }
    L().sl_surface_distances_free(ctypes.byref(d))
    return out


def lesions(pred, gt, **kw):
    pred = np.ascontiguousarray(pred, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.uint8)
    r = LesionReport()
    o = metric_opts(**kw)
    msg = ctypes.create_string_buffer(256)
    _check(L().sl_lesions_eval(_ptr(pred), _ptr(gt), ctypes.byref(grid(pred.shape)), ctypes.byref(o),
                               ctypes.byref(r), msg, 256), msg)
    out = {
        "gt_size": [r.gt_size[i] for i in range(r.n_gt)],
        "gt_detected": [r.gt_detected[i] for i in range(r.n_gt)],
        "gt_dice": [r.gt_dice[i] for i in range(r.n_gt)],
        "pred_size": [r.pred_size[i] for i in range(r.n_pred)],
        "pred_matched": [r.pred_matched[i] for i in range(r.n_pred)],
        "tp": r.tp, "fp": r.fp, "fn": r.fn, "precision": r.precision, "recall": r.recall, "f1": r.f1,
        "mean_dice": r.mean_dice,
    }
    L().sl_lesion_report_free(ctypes.byref(r))
    return out


def percentile(v, q):
    v = np.ascontiguousarray(v, dtype=np.float64)
    out = ctypes.c_double()
    _check(L().sl_percentile(_ptr(v), ctypes.c_int64(v.size), ctypes.c_double(q), ctypes.byref(out)))
    return out.value


def describe(ndim=3, **kw):
    o = metric_opts(**kw)
    buf = ctypes.create_string_buffer(512)
    L().sl_metric_opts_describe(ctypes.byref(o), ndim, buf, 512)
    return buf.value.decode()
