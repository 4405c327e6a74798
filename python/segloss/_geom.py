"""ctypes declarations of include/segloss/geometry.h and metrics.h, shared by
segloss.ndimage, segloss.metrics and segloss.compat.

The structures mirror the headers field by field; every prototype is
declared once (declare()), the first time the library is used here.
"""
import ctypes

import numpy as np

from . import _lib
from . import errors

c_i64p = ctypes.POINTER(ctypes.c_int64)
c_f64p = ctypes.POINTER(ctypes.c_double)

# sl_dtype of include/segloss/io.h
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
    _fields_ = [("count", ctypes.c_int64), ("ndim", ctypes.c_int), ("size", c_i64p), ("bbox", c_i64p)]


class LabelMap(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int)]


class MetricOpts(ctypes.Structure):
    _fields_ = [("metrics", ctypes.c_uint), ("hd_mode", ctypes.c_int), ("percentile", ctypes.c_double),
                ("assd_mode", ctypes.c_int), ("surface", ctypes.c_int), ("nsd_tolerance", ctypes.c_double),
                ("biou_width", ctypes.c_double), ("connectivity", ctypes.c_int),
                ("lesion_match", ctypes.c_int), ("lesion_min_overlap", ctypes.c_int64),
                ("lesion_iou", ctypes.c_double), ("threads", ctypes.c_int)]


RESULT_FIELDS = [
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
    _fields_ = RESULT_FIELDS


class SurfaceDistances(ctypes.Structure):
    _fields_ = [("n_pred", ctypes.c_int64), ("n_gt", ctypes.c_int64),
                ("d_pred_to_gt", c_f64p), ("w_pred", c_f64p), ("d_gt_to_pred", c_f64p), ("w_gt", c_f64p)]


_declared = False


def L():
    """The library with the geometry / metrics prototypes declared."""
    global _declared
    h = _lib.lib()
    if not _declared:
        vp, P, sz, i = ctypes.c_void_p, ctypes.POINTER, ctypes.c_size_t, ctypes.c_int
        ch = ctypes.c_char_p
        proto = {
            "sl_edt": (i, [vp, i, P(Grid), P(EdtOpts), vp, i, ch, sz]),
            "sl_components_label": (i, [vp, P(Grid), i, vp, P(Components), ch, sz]),
            "sl_components_free": (None, [P(Components)]),
            "sl_metrics_eval": (i, [P(LabelMap), P(LabelMap), P(Grid), c_i64p, i, P(MetricOpts),
                                    P(MetricResult), ch, sz]),
            "sl_metrics_eval_mask": (i, [vp, vp, P(Grid), P(MetricOpts), P(MetricResult), ch, sz]),
            "sl_surface_distances_compute": (i, [vp, vp, P(Grid), i, i, P(SurfaceDistances), ch, sz]),
            "sl_surface_distances_free": (None, [P(SurfaceDistances)]),
            "sl_labels_unique": (i, [P(LabelMap), ctypes.c_int64, c_i64p, ctypes.c_int64, c_i64p, ch, sz]),
            "sl_metric_opts_describe": (i, [P(MetricOpts), i, ch, sz]),
        }
        for name, (res, args) in proto.items():
            f = getattr(h, name)
            f.restype = res
            f.argtypes = args
        _declared = True
    return h


def spacing_tuple(spacing, ndim, what="spacing"):
    """spacing as a tuple of ndim floats: None -> 1, a number -> that number
    on every axis (scipy's and MedPy's rule), a sequence -> its ndim entries."""
    if spacing is None:
        return (1.0,) * ndim
    if np.ndim(spacing) == 0:
        return (float(spacing),) * ndim
    sp = tuple(float(s) for s in np.asarray(spacing, dtype=np.float64).ravel())
    if len(sp) != ndim:
        raise errors.InvalidArgumentError("%s has %d values for a %d-D array" % (what, len(sp), ndim))
    return sp


def grid(shape, spacing=None):
    """An sl_grid; NotImplementedError for arrays with more than 3 axes."""
    shape = tuple(int(s) for s in shape)
    if not 1 <= len(shape) <= 3:
        raise errors.UnsupportedError("segloss handles 1-D, 2-D and 3-D arrays, got %d-D" % len(shape))
    sp = spacing_tuple(spacing, len(shape))
    g = Grid()
    g.ndim = len(shape)
    for a, (s, d) in enumerate(zip(shape, sp)):
        g.shape[a] = s
        g.spacing[a] = d
    return g


def cdtype(a, what="array"):
    """The sl_dtype of a numpy array (TypeError for dtypes the library does not read)."""
    try:
        return DTYPES[a.dtype]
    except KeyError:
        raise errors.DTypeError("%s: dtype %s is not supported (bool, integer, float32 or float64)"
                                % (what, a.dtype)) from None


def to_numpy(a, what="array"):
    """A numpy array for a numpy array, a torch tensor (moved to the CPU) or a
    nested sequence. Native byte order, C-contiguous; a copy only when needed."""
    if type(a).__module__.startswith("torch"):
        a = a.detach().cpu()
        if str(a.dtype) == "torch.bfloat16":   # numpy has no bfloat16; float32 holds every value
            a = a.float()
        a = a.numpy()
    a = np.asarray(a)
    if a.dtype.kind == "c" or a.dtype.kind not in "biuf":
        raise errors.DTypeError("%s: dtype %s is not supported (bool, integer or float)" % (what, a.dtype))
    if a.dtype.kind == "f" and a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)   # float16 / longdouble: exact in float64 for label values
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def as_mask(a, what="mask"):
    """uint8 0/1 view or copy of any array (non-zero = foreground, NaN included as numpy's bool())."""
    a = to_numpy(a, what)
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    if a.dtype == np.uint8:
        return a
    return (a != 0).view(np.uint8)


def ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


def surface_distances(pred, gt, spacing, surface, nthreads):
    """sl_surface_distances_compute on two uint8 masks of one shape:
    (d_pred_to_gt, w_pred, d_gt_to_pred, w_gt) as numpy float64 arrays."""
    g = grid(pred.shape, spacing)
    d = SurfaceDistances()
    buf = _lib.msgbuf()
    _lib.check(L().sl_surface_distances_compute(ptr(pred), ptr(gt), ctypes.byref(g), SURFACES[surface],
                                                nthreads, ctypes.byref(d), buf, _lib.MSG_LEN), buf)
    try:
        def take(p, n):
            return np.ctypeslib.as_array(p, (n,)).copy() if n else np.zeros(0)
        return (take(d.d_pred_to_gt, d.n_pred), take(d.w_pred, d.n_pred),
                take(d.d_gt_to_pred, d.n_gt), take(d.w_gt, d.n_gt))
    finally:
        L().sl_surface_distances_free(ctypes.byref(d))


def metric_opts(metrics=MET_ALL, hd_mode="max", percentile=95.0, assd_mode="pooled", surface="border",
                nsd_tolerance=1.0, biou_width=2.0, connectivity=0, lesion_match="overlap",
                lesion_min_overlap=1, lesion_iou=0.5, threads=0):
    def pick(table, v, what):
        if v not in table:
            raise errors.UnknownNameError("unknown %s %r (one of %s)" % (what, v, ", ".join(table)))
        return table[v]
    return MetricOpts(metrics, pick(HD_MODES, hd_mode, "hd_mode"), float(percentile),
                      pick(ASSD_MODES, assd_mode, "assd_mode"), pick(SURFACES, surface, "surface"),
                      float(nsd_tolerance), float(biou_width), int(connectivity),
                      pick(LESION_MATCH, lesion_match, "lesion_match"), int(lesion_min_overlap),
                      float(lesion_iou), int(threads))


def eval_mask(pred, gt, spacing, opts):
    """sl_metrics_eval_mask on two uint8 masks: the MetricResult."""
    g = grid(pred.shape, spacing)
    r = MetricResult()
    buf = _lib.msgbuf()
    _lib.check(L().sl_metrics_eval_mask(ptr(pred), ptr(gt), ctypes.byref(g), ctypes.byref(opts),
                                        ctypes.byref(r), buf, _lib.MSG_LEN), buf)
    return r
