"""ctypes bindings of the issue-15 metric families of
include/segloss/metrics.h (probabilities, instances and panoptic quality,
FROC, STAPLE) for the reference tests. Thin wrappers: every call checks
the status and raises geomref.SlError with the library's message.
"""
import ctypes

import numpy as np

import geomref as G


class ProbOpts(ctypes.Structure):
    _fields_ = [("bins", ctypes.c_int), ("sum_tol", ctypes.c_double), ("has_ignore", ctypes.c_int),
                ("ignore_label", ctypes.c_int64), ("threads", ctypes.c_int)]


class ProbResult(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64)] + [(k, ctypes.c_double) for k in
                                          ("accuracy", "ece", "mce", "classwise_ece", "brier", "nll")]


class ProbClass(ctypes.Structure):
    _fields_ = [("positives", ctypes.c_int64)] + [(k, ctypes.c_double) for k in
                                                  ("ece", "mce", "brier", "auroc", "ap")]


def _d(s):
    return {k: getattr(s, k) for k, _ in s._fields_}


def prob_eval(prob, labels, bins=15, sum_tol=1e-4, ignore=None, threads=0, ranking=True):
    """prob: (C, spatial...) float32; labels: (spatial...). Returns (summary, [per class])."""
    prob = np.ascontiguousarray(prob, dtype=np.float32)
    labels = np.ascontiguousarray(labels)
    C = prob.shape[0]
    n = int(np.prod(prob.shape[1:]))
    assert labels.size == n
    lm = G.LabelMap(G._ptr(labels), G.DTYPES[labels.dtype])
    o = ProbOpts(bins, sum_tol, 0 if ignore is None else 1, 0 if ignore is None else ignore, threads)
    r = ProbResult()
    pc = (ProbClass * C)()
    msg = ctypes.create_string_buffer(256)
    G._check(G.L().sl_prob_eval(G._ptr(prob), ctypes.c_int64(C), ctypes.byref(lm), ctypes.c_int64(n),
                                ctypes.byref(o), int(ranking), ctypes.byref(r), pc, msg, 256), msg)
    return _d(r), [_d(x) for x in pc]


def auroc_ap(score, y):
    score = np.ascontiguousarray(score, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.uint8)
    a, p = ctypes.c_double(), ctypes.c_double()
    G._check(G.L().sl_auroc_ap(G._ptr(score), G._ptr(y), ctypes.c_int64(score.size), ctypes.byref(a),
                               ctypes.byref(p)))
    return a.value, p.value


class InstanceOpts(ctypes.Structure):
    _fields_ = [("match", ctypes.c_int), ("iou_threshold", ctypes.c_double), ("smooth", ctypes.c_double)]


class InstanceResult(ctypes.Structure):
    _fields_ = [(k, ctypes.c_int64) for k in ("n_gt", "n_pred", "tp", "fp", "fn")] + \
        [(k, ctypes.c_double) for k in ("iou_sum", "pq", "sq", "rq")]


class InstancePairs(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("gt_id", ctypes.POINTER(ctypes.c_int64)),
                ("pred_id", ctypes.POINTER(ctypes.c_int64)), ("iou", ctypes.POINTER(ctypes.c_double))]


MATCH = {"monai": 0, "greedy": 1, "hungarian": 2}


def instances(pred, gt, match="monai", threshold=0.5, smooth=1e-6):
    """sl_instances_eval: (result dict, [(gt_id, pred_id, iou)])"""
    pred = np.ascontiguousarray(pred)
    gt = np.ascontiguousarray(gt)
    assert pred.size == gt.size
    lp = G.LabelMap(G._ptr(pred), G.DTYPES[pred.dtype])
    lg = G.LabelMap(G._ptr(gt), G.DTYPES[gt.dtype])
    o = InstanceOpts(MATCH[match], threshold, smooth)
    r = InstanceResult()
    pr = InstancePairs()
    msg = ctypes.create_string_buffer(256)
    G._check(G.L().sl_instances_eval(ctypes.byref(lp), ctypes.byref(lg), ctypes.c_int64(pred.size), ctypes.byref(o),
                                     ctypes.byref(r), ctypes.byref(pr), msg, 256), msg)
    pairs = [(pr.gt_id[k], pr.pred_id[k], pr.iou[k]) for k in range(pr.n)]
    G.L().sl_instance_pairs_free(ctypes.byref(pr))
    return _d(r), pairs


def instances_label(pred, gt, label, spacing=None, connectivity=0, match="monai", threshold=0.5, smooth=1e-6):
    pred = np.ascontiguousarray(pred)
    gt = np.ascontiguousarray(gt)
    lp = G.LabelMap(G._ptr(pred), G.DTYPES[pred.dtype])
    lg = G.LabelMap(G._ptr(gt), G.DTYPES[gt.dtype])
    o = InstanceOpts(MATCH[match], threshold, smooth)
    r = InstanceResult()
    msg = ctypes.create_string_buffer(256)
    G._check(G.L().sl_instances_eval_label(ctypes.byref(lp), ctypes.byref(lg), ctypes.byref(G.grid(pred.shape, spacing)),
                                           ctypes.c_int64(label), connectivity, ctypes.byref(o), ctypes.byref(r),
                                           msg, 256), msg)
    return _d(r)


class FuseOpts(ctypes.Structure):
    _fields_ = [("method", ctypes.c_int), ("mode", ctypes.c_int), ("max_iter", ctypes.c_int),
                ("tol", ctypes.c_double), ("init", ctypes.c_double), ("threads", ctypes.c_int)]


class FuseResult(ctypes.Structure):
    _fields_ = [("nraters", ctypes.c_int), ("nlabels", ctypes.c_int), ("labels", ctypes.POINTER(ctypes.c_int64)),
                ("sensitivity", ctypes.POINTER(ctypes.c_double)), ("specificity", ctypes.POINTER(ctypes.c_double)),
                ("prior", ctypes.POINTER(ctypes.c_double)), ("iterations", ctypes.c_int), ("converged", ctypes.c_int)]


def fuse(raters, method="staple", mode="multiclass", max_iter=200, tol=1e-8, init=0.99, threads=0):
    """sl_fuse: (fused, dict with labels, sensitivity [R, K], specificity, prior, iterations, converged)"""
    rs = [np.ascontiguousarray(r) for r in raters]
    n = rs[0].size
    maps = (G.LabelMap * len(rs))(*[G.LabelMap(G._ptr(r), G.DTYPES[r.dtype]) for r in rs])
    o = FuseOpts({"staple": 0, "majority": 1}[method], {"multiclass": 0, "binary": 1}[mode], max_iter, tol, init,
                 threads)
    out = np.zeros(rs[0].shape, np.int64)
    res = FuseResult()
    msg = ctypes.create_string_buffer(256)
    G._check(G.L().sl_fuse(maps, len(rs), ctypes.c_int64(n), ctypes.byref(o), G._ptr(out), ctypes.byref(res),
                           msg, 256), msg)
    R, K = res.nraters, res.nlabels
    d = {"labels": [res.labels[k] for k in range(K)],
         "sensitivity": np.array([res.sensitivity[q] for q in range(R * K)]).reshape(R, K),
         "specificity": np.array([res.specificity[q] for q in range(R * K)]).reshape(R, K),
         "prior": np.array([res.prior[k] for k in range(K)]), "iterations": res.iterations,
         "converged": res.converged}
    G.L().sl_fuse_result_free(ctypes.byref(res))
    return out, d


class FrocCurve(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("fp_per_case", ctypes.POINTER(ctypes.c_double)),
                ("sensitivity", ctypes.POINTER(ctypes.c_double)), ("threshold", ctypes.POINTER(ctypes.c_double))]


def froc(fp_scores, lesion_scores, ncases, rates):
    fp = np.ascontiguousarray(fp_scores, dtype=np.float64)
    ls = np.ascontiguousarray(lesion_scores, dtype=np.float64)
    r = np.ascontiguousarray(rates, dtype=np.float64)
    out = np.zeros(len(r))
    cv = FrocCurve()
    G._check(G.L().sl_froc(G._ptr(fp), ctypes.c_int64(fp.size), G._ptr(ls), ctypes.c_int64(ls.size),
                           ctypes.c_int64(ncases), G._ptr(r), len(r), G._ptr(out), ctypes.byref(cv)))
    curve = (np.array([cv.fp_per_case[k] for k in range(cv.n)]), np.array([cv.sensitivity[k] for k in range(cv.n)]))
    G.L().sl_froc_curve_free(ctypes.byref(cv))
    return out, curve


def froc_case(prob, gt, threshold=0.5, connectivity=0, spacing=None):
    prob = np.ascontiguousarray(prob, dtype=np.float32)
    gt = np.ascontiguousarray(gt, dtype=np.uint8)
    fp = ctypes.POINTER(ctypes.c_double)()
    ls = ctypes.POINTER(ctypes.c_double)()
    nfp, cfp, nls, cls = ctypes.c_int64(0), ctypes.c_int64(0), ctypes.c_int64(0), ctypes.c_int64(0)
    msg = ctypes.create_string_buffer(256)
    G._check(G.L().sl_froc_case(G._ptr(prob), G._ptr(gt), ctypes.byref(G.grid(prob.shape, spacing)),
                                ctypes.c_double(threshold), connectivity, ctypes.byref(fp), ctypes.byref(nfp),
                                ctypes.byref(cfp), ctypes.byref(ls), ctypes.byref(nls), ctypes.byref(cls), msg, 256),
             msg)
    a = [fp[k] for k in range(nfp.value)]
    b = [ls[k] for k in range(nls.value)]
    libc = ctypes.CDLL(None)
    libc.free(fp)
    libc.free(ls)
    return a, b
