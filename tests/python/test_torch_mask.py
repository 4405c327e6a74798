"""SegLoss(...)(logits, target, mask=w): per-voxel weight maps through the C path
(sl_target.mask) against the float64 masked references of tests/ref/test_loss_mask.py
and tests/ref/test_loss_exp_log.py (a mean becomes sum(w*l)/sum(w), a region sum
sum(p*g) becomes sum(w*p*g); docs/losses.md#masks), value and the gradient that
backward() delivers (scaled by a grad_output of 0.7). Also: (N, spatial...) and
bool/int masks equal the float (N, 1, spatial...) one; bad masks raise the C
library's errors; the native backend (backend="torch") equals the C path with masks.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import lossref as R
import slref
import test_loss_exp_log as E
import test_loss_mask as M

from segloss import errors
from segloss.torch import SegLoss

# (spec, reference, reference params, channel counts, target kinds)
CASES = [
    ("dice", M.ref_dice, {}, (1, 3), ("labels", "soft")),
    ("dice(batch=true,include_background=false)", M.ref_dice, {"batch": True, "include_background": False}, (3,),
     ("labels",)),
    ("iou", M.ref_iou, {}, (1, 3), ("labels",)),
    ("tversky(alpha=0.3,beta=0.7)", M.ref_tversky, {"alpha": 0.3, "beta": 0.7}, (3,), ("labels", "soft")),
    ("ce", M.ref_ce, {}, (1, 3), ("labels", "soft")),
    ("ce(weight=[0.5,1.0,2.0])", M.ref_ce, {"weight": [0.5, 1.0, 2.0]}, (3,), ("labels",)),
    ("focal", M.ref_focal, {}, (1, 3), ("labels",)),
    ("sensspec", M.ref_sensspec, {}, (1, 3), ("labels", "soft")),
    ("exp_log", E.ref_exp_log, {}, (3,), ("labels",)),
    ("dice+ce", lambda x, t, C, mask: M.ref_dice(x, t, C, mask) + M.ref_ce(x, t, C, mask), {}, (3,), ("labels",)),
]


# native == C with masks: (spec, channel counts, target kinds)
NATIVE = [
    ("dice", (1, 3), ("labels", "soft")),
    ("dice(squared=true,batch=true)", (3,), ("labels",)),
    ("iou(ignore_index=2)", (3,), ("labels",)),
    ("logcosh_dice", (3,), ("labels",)),
    ("tversky(alpha=0.3,beta=0.7)", (3,), ("soft",)),
    ("focal_tversky", (1, 3), ("labels",)),
    ("ce", (1, 3), ("labels", "soft")),
    ("ce(weight=inverse,label_smoothing=0.1)", (3,), ("labels",)),
    ("wce", (3,), ("labels",)),
    ("bce(pos_weight=2)", (1, 3), ("labels",)),
    ("exp_log", (3,), ("labels", "soft")),
    ("dice+ce", (3,), ("labels",)),
    ("gdice", (1, 3), ("labels", "soft")),
    ("pgdice(normalize=false,batch=true)", (3,), ("labels",)),
    ("focal", (1, 3), ("labels",)),
    ("focal(activation=sigmoid,normalized=true,alpha=0.25)", (3,), ("labels",)),
    ("sensspec", (1, 3), ("labels", "soft")),
    ("mcc", (1, 3), ("labels",)),
    ("boundary", (1, 3), ("labels",)),
    ("hausdorff_dt", (1, 3), ("labels",)),
    ("log_hausdorff_dt(include_background=true)", (3,), ("labels",)),
]


def run(spec, x, y, mask, backend="c"):
    loss = SegLoss(spec, threads=2, backend=backend)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    v = loss(xt, torch.from_numpy(y), mask=None if mask is None else torch.as_tensor(mask))
    (0.7 * v).backward()
    return float(v), xt.grad.numpy()


def raises(fn, exc):
    try:
        fn()
    except exc as e:
        return str(e)
    except Exception as e:  # the wrong exception type: report it
        return "WRONG %s: %s" % (type(e).__name__, e)
    return None


def main():
    chk = slref.Check("SegLoss masks vs the masked PyTorch references")
    rng = np.random.default_rng(21)
    shapes = [(2, (7, 8)), (1, (5, 6, 4))] if not slref.QUICK else [(2, (7, 8))]
    for spec, ref, params, channels, kinds in CASES:
        for C in channels:
            for kind in kinds:
                for N, spatial in shapes:
                    for mkind in ("binary", "weights"):
                        x, y = R.make_inputs(rng, N, C, spatial, kind)
                        m = M.draw_mask(rng, N, spatial, mkind)
                        v, g = run(spec, x, y, m)
                        rv, rg = R.reference(ref, x, y, C, params, m)
                        label = "%s C=%d %s %s %s" % (spec, C, x.shape, kind, mkind)
                        chk.close("%s value" % label, v, rv, rtol=2e-5, atol=1e-6, group=spec + " value")
                        scale = max(float(np.abs(rg).max()), 1e-12)
                        chk.close("%s grad" % label, g, 0.7 * rg, rtol=1e-4, atol=5e-5 * scale,
                                  group=spec + " grad")
    # Mask layouts and dtypes: (N, spatial...) and bool / uint8 / int64 / float64 masks equal the float32 one.
    x, y = R.make_inputs(rng, 2, 3, (6, 7), "labels")
    mb = M.draw_mask(rng, 2, (6, 7), "binary")
    v0, g0 = run("dice+ce", x, y, mb)
    for label, alt in (("(N, spatial...)", mb[:, 0]), ("bool", mb > 0), ("uint8", mb.astype(np.uint8)),
                       ("int64", mb.astype(np.int64)), ("float64", mb.astype(np.float64))):
        v1, g1 = run("dice+ce", x, y, alt)
        chk.close("%s mask == float32 (N, 1, ...) mask value" % label, v1, v0, rtol=0, atol=0, group="layouts")
        chk.close("%s mask == float32 (N, 1, ...) mask grad" % label, g1, g0, rtol=0, atol=0, group="layouts")
    # mask=None is every voxel weighing 1.
    vn, gn = run("dice+ce", x, y, None)
    v1, g1 = run("dice+ce", x, y, np.ones((2, 1, 6, 7), np.float32))
    chk.close("mask of ones == no mask value", v1, vn, rtol=2e-6, atol=1e-7, group="ones")
    chk.close("mask of ones == no mask grad", g1, gn, rtol=1e-4, atol=1e-7, group="ones")
    # Bad masks: the C library's errors (type and message), no gradient.
    bad = mb.copy()
    bad[1, 0, 2, 3] = -0.5
    e = raises(lambda: run("dice", x, y, bad), errors.RangeError)
    chk.true("negative weight -> RangeError naming it (%s)" % e, e is not None and "negative" in e and "WRONG" not in e)
    bad[1, 0, 2, 3] = np.nan
    e = raises(lambda: run("ce", x, y, bad), errors.NonFiniteError)
    chk.true("NaN weight -> NonFiniteError (%s)" % e, e is not None and "mask" in e and "WRONG" not in e)
    # every loss takes a mask since issue 16's second round: lovasz through SegLoss equals the library
    vl, gl = run("dice+lovasz", x, y, mb)
    vr, gr, er = R.run_lib("dice+lovasz", x, y, mask=mb)
    chk.true("dice+lovasz with a mask runs in the library (%s)" % er, er is None)
    if er is None:
        chk.close("SegLoss dice+lovasz masked == library value", vl, vr, rtol=1e-6, atol=1e-8, group="lovasz")
        chk.close("SegLoss dice+lovasz masked == library grad (x 0.7)", gl, 0.7 * gr, rtol=1e-5, atol=1e-8, group="lovasz")
    for shp in ((2, 1, 7, 6), (1, 1, 6, 7), (2, 3, 6, 7), (2, 6)):
        e = raises(lambda: run("dice", x, y, np.ones(shp, np.float32)), errors.ShapeError)
        chk.true("mask of shape %s -> ShapeError (%s)" % (shp, e), e is not None and "mask" in e and "WRONG" not in e)
    e = raises(lambda: SegLoss("dice")(torch.tensor(x), torch.from_numpy(y), mask=[[1.0]]), TypeError)
    chk.true("a list as mask -> TypeError (%s)" % e, e is not None and "WRONG" not in e)
    # The native backend: native == C with masks for the terms it weights (native.MASKED), float64 logits
    # (the tolerances of test_backend_torch.py); the other terms refuse a mask, naming the term and the C backend.
    for spec, channels, kinds in NATIVE:
        for C in channels:
            for kind in kinds:
                for N, spatial in shapes:
                    for mkind in ("binary", "weights"):
                        x, y = R.make_inputs(rng, N, C, spatial, kind)
                        m = M.draw_mask(rng, N, spatial, mkind)
                        vc, gc = run(spec, x, y, m)
                        loss = SegLoss(spec, backend="torch")
                        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
                        vn = loss(xt, torch.from_numpy(y), mask=torch.from_numpy(m))
                        (0.7 * vn).backward()
                        label = "native %s C=%d %s %s %s" % (spec, C, x.shape, kind, mkind)
                        chk.close("%s value" % label, float(vn), vc, rtol=2e-5, atol=1e-7, group="native value")
                        scale = max(float(np.abs(gc).max()), 1e-12)
                        chk.close("%s grad" % label, xt.grad.numpy(), gc, rtol=0, atol=1e-4 * scale,
                                  group="native grad")
    x, y = R.make_inputs(rng, 2, 3, (6, 7), "labels")
    # every native term weights voxels now (tests/python/test_backend_torch_more.py): dice+topk equals the C path
    vn, gn = run("dice+topk", x, y, mb, backend="torch")
    vc, gc = run("dice+topk", x, y, mb)
    chk.close("backend='torch' mask= dice+topk value == C", vn, vc, rtol=2e-5, atol=1e-7, group="native value")
    chk.close("backend='torch' mask= dice+topk grad == C", gn, gc, rtol=0, atol=1e-4 * float(np.abs(gc).max()),
              group="native grad")
    for label, w, exc in (("negative", -1.0, errors.RangeError), ("NaN", float("nan"), errors.NonFiniteError)):
        bad = mb.copy()
        bad[0, 0, 1, 1] = w
        e = raises(lambda: run("dice", x, y, bad, backend="torch"), exc)
        chk.true("native: %s weight -> %s (%s)" % (label, exc.__name__, e), e is not None and "WRONG" not in e)
    e = raises(lambda: run("dice", x, y, np.ones((2, 1, 7, 6), np.float32), backend="torch"), errors.ShapeError)
    chk.true("native: mask of the wrong shape -> ShapeError (%s)" % e, e is not None and "WRONG" not in e)
    chk.report()


if __name__ == "__main__":
    main()
