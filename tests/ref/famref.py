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
