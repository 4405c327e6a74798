"""segloss.compat.medpy against a transcription of medpy.metric.binary
(MedPy 0.4/0.5: scipy erosion borders, scipy EDT, numpy percentile),
written here, including its empty-mask behaviour."""
# sanitized: skip (loads libsegloss.so through ctypes)
import numpy as np
from scipy import ndimage as ndi

import pyref  # noqa: F401  (paths)
import slref

from segloss.compat import medpy as sm

chk = slref.Check("segloss.compat.medpy")
rng = np.random.default_rng(5)


# ---- MedPy, transcribed (medpy/metric/binary.py) -------------------------------
def ref_surface_distances(result, reference, voxelspacing=None, connectivity=1):
    result = np.atleast_1d(result.astype(bool))
    reference = np.atleast_1d(reference.astype(bool))
    if voxelspacing is not None:
        voxelspacing = np.asarray(ndi._ni_support._normalize_sequence(voxelspacing, result.ndim), np.float64)
    footprint = ndi.generate_binary_structure(result.ndim, connectivity)
    if 0 == np.count_nonzero(result):
        raise RuntimeError('The first supplied array does not contain any binary object.')
    if 0 == np.count_nonzero(reference):
        raise RuntimeError('The second supplied array does not contain any binary object.')
    result_border = result ^ ndi.binary_erosion(result, structure=footprint, iterations=1)
    reference_border = reference ^ ndi.binary_erosion(reference, structure=footprint, iterations=1)
    dt = ndi.distance_transform_edt(~reference_border, sampling=voxelspacing)
    return dt[result_border]


def ref_dc(r, f):
    r, f = np.atleast_1d(r.astype(bool)), np.atleast_1d(f.astype(bool))
    try:
        return 2. * np.count_nonzero(r & f) / float(np.count_nonzero(r) + np.count_nonzero(f))
    except ZeroDivisionError:
        return 0.0


def ref_jc(r, f):
    r, f = np.atleast_1d(r.astype(bool)), np.atleast_1d(f.astype(bool))
    return float(np.count_nonzero(r & f)) / float(np.count_nonzero(r | f))


def ref_precision(r, f):
    r, f = r.astype(bool), f.astype(bool)
    tp, fp = np.count_nonzero(r & f), np.count_nonzero(r & ~f)
    try:
        return tp / float(tp + fp)
    except ZeroDivisionError:
        return 0.0


def ref_recall(r, f):
    r, f = r.astype(bool), f.astype(bool)
    tp, fn = np.count_nonzero(r & f), np.count_nonzero(~r & f)
    try:
        return tp / float(tp + fn)
    except ZeroDivisionError:
        return 0.0


def ref_ravd(r, f):
    v1, v2 = np.count_nonzero(r), np.count_nonzero(f)
    if 0 == v2:
        raise RuntimeError('The second supplied array does not contain any binary object.')
    return (v1 - v2) / float(v2)


def ref_hd(r, f, sp=None, c=1):
    return max(ref_surface_distances(r, f, sp, c).max(), ref_surface_distances(f, r, sp, c).max())


def ref_hd95(r, f, sp=None, c=1):
    return np.percentile(np.hstack((ref_surface_distances(r, f, sp, c), ref_surface_distances(f, r, sp, c))), 95)


def ref_asd(r, f, sp=None, c=1):
    return ref_surface_distances(r, f, sp, c).mean()


def ref_assd(r, f, sp=None, c=1):
    return np.mean((ref_asd(r, f, sp, c), ref_asd(f, r, sp, c)))


# ---------------------------------------------------------------------------------
def pair(shape, sigma, frac):
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    g = f > np.quantile(f, 1 - frac)
    f2 = np.roll(f, 2, axis=0) + 0.4 * ndi.gaussian_filter(rng.standard_normal(shape), sigma / 2)
    p = f2 > np.quantile(f2, 1 - frac * 1.2)
    return p, g


def outcome(fn, *a, **k):
    """('ok', value) or (exception type, message)"""
    try:
        return ("ok", fn(*a, **k))
    except Exception as e:  # noqa: BLE001
        return (type(e), str(e))


def same(what, got, want, rtol=1e-12, atol=1e-12):
    if want[0] == "ok" and got[0] == "ok":
        chk.close(what, got[1], want[1], rtol=rtol, atol=atol, group=what.split(" ")[0])
        chk.true("%s: type %s vs %s" % (what, type(got[1]).__name__, type(want[1]).__name__),
                 isinstance(got[1], (float, np.floating)))
    else:
        chk.true("%s: %r vs MedPy %r" % (what, got, want), got == want)


def main():
    import torch
    cases = [((300,), None), ((80, 70), (0.7, 1.3)), ((80, 70), 2.0), ((30, 40, 36), (2.5, 0.8, 0.8)),
             ((30, 40, 36), None)]
    funcs = [("dc", sm.dc, ref_dc, False), ("jc", sm.jc, ref_jc, False),
             ("precision", sm.precision, ref_precision, False), ("recall", sm.recall, ref_recall, False),
             ("ravd", sm.ravd, ref_ravd, False), ("hd", sm.hd, ref_hd, True), ("hd95", sm.hd95, ref_hd95, True),
             ("asd", sm.asd, ref_asd, True), ("assd", sm.assd, ref_assd, True)]
    for shape, sp in cases:
        p, g = pair(shape, 2.5 if len(shape) > 1 else 6, 0.3)
        for name, fn, ref, dist in funcs:
            extra = (sp,) if dist else ()
            same("%s %s sp=%s" % (name, shape, sp), outcome(fn, p, g, *extra), outcome(ref, p, g, *extra))
            same("%s %s swapped" % (name, shape), outcome(fn, g, p, *extra), outcome(ref, g, p, *extra))
        # other dtypes (non-zero = object) and torch tensors
        same("hd95 int16/float32 inputs %s" % (shape,), outcome(sm.hd95, p.astype(np.int16) * 3, g.astype(np.float32), sp),
             outcome(ref_hd95, p, g, sp))
        same("dc torch %s" % (shape,), outcome(sm.dc, torch.from_numpy(p), torch.from_numpy(g)), outcome(ref_dc, p, g))
        same("assd threads=1 %s" % (shape,), outcome(sm.assd, p, g, sp, threads=1), outcome(ref_assd, p, g, sp))
    # connectivity: 1 everywhere, any value >= 1 in 1-D (the same cross)
    p, g = pair((200,), 5, 0.3)
    same("hd 1-D connectivity=3", outcome(sm.hd, p, g, None, 3), outcome(ref_hd, p, g, None, 3))

    # MedPy's empty-mask behaviour, for every function
    e = np.zeros((20, 30), bool)
    p, g = pair((20, 30), 2, 0.3)
    for name, fn, ref, dist in funcs:
        for what, a, b in (("both empty", e, e), ("result empty", e, g), ("reference empty", p, e)):
            same("%s %s" % (name, what), outcome(fn, a, b), outcome(ref, a, b))

    # what segloss refuses
    got = outcome(sm.hd, p, g, None, 2)
    chk.true("hd connectivity=2 -> NotImplementedError naming it: %r" % (got,),
             got[0] is NotImplementedError and "connectivity=2" in got[1])
    got = outcome(sm.hd95, p, g, (1.0, 2.0, 3.0))
    chk.true("hd95 voxelspacing length -> RuntimeError as scipy: %r" % (got,),
             got == outcome(ref_hd95, p, g, (1.0, 2.0, 3.0)))
    got = outcome(sm.hd, p, g, (-1.0, 1.0))
    chk.true("hd negative spacing -> ValueError with the C message: %r" % (got,),
             issubclass(got[0], ValueError) and "spacing" in got[1])
    got = outcome(sm.dc, p, g[:10])
    chk.true("dc shape mismatch -> ValueError: %r" % (got,), got[0] is ValueError and "shape" in got[1])
    got = outcome(sm.hd, np.ones((2, 2, 2, 2)), np.ones((2, 2, 2, 2)))
    chk.true("hd 4-D -> NotImplementedError: %r" % (got,), got[0] is NotImplementedError)
    a4, b4 = rng.random((3, 4, 5, 6)) > 0.5, rng.random((3, 4, 5, 6)) > 0.5
    same("dc 4-D (counts in numpy)", outcome(sm.dc, a4, b4), outcome(ref_dc, a4, b4))
    chk.report()


if __name__ == "__main__":
    main()
