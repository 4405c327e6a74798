"""MONAI's reduction="none" in the segloss.torch.monai drop-ins DiceLoss,
TverskyLoss and GeneralizedDiceLoss, against transcriptions of MONAI's
forward with that branch (monai/losses/dice.py: f viewed as f.shape[0:2]
followed by ones, class weights applied first; tversky.py: the (N, C) scores
as they are; GeneralizedDiceLoss: (N, 1) or (1,) viewed the same way),
written here on top of test_torch_monai.py's m_prep. Values and the
gradient of a random weighting of the unreduced tensor (every element's
gradient is exercised), labels and one-hot targets, batch, include_background,
jaccard, class weights.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref
import test_torch_monai as TM

from segloss.torch import monai as M

torch.set_default_dtype(torch.float64)


def none_view(f, input):
    return f.view(list(f.shape[0:2]) + [1] * (len(input.shape) - 2))


def m_dice_none(input, target, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False,
                jaccard=False, smooth_nr=1e-5, smooth_dr=1e-5, batch=False, weight=None):
    x, t = TM.m_prep(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    inter = (t * x).sum(axes)
    den = t.sum(axes) + x.sum(axes)
    if jaccard:
        den = 2.0 * (den - inter)
    f = 1.0 - (2.0 * inter + smooth_nr) / (den + smooth_dr)
    if weight is not None and t.shape[1] != 1:
        f = f * torch.as_tensor(weight, dtype=f.dtype)
    return none_view(f, input)


def m_tversky_none(input, target, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False,
                   alpha=0.5, beta=0.5, smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    p0, g0 = TM.m_prep(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, p0.dim()))
    if batch:
        axes = [0] + axes
    tp = (p0 * g0).sum(axes)
    fp = alpha * (p0 * (1 - g0)).sum(axes)
    fn = beta * ((1 - p0) * g0).sum(axes)
    return 1.0 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr)


def m_gdl_none(input, target, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False,
               w_type="square", smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    x, t = TM.m_prep(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    inter = (t * x).sum(axes)
    ground_o = t.sum(axes)
    den = ground_o + x.sum(axes)
    w = {"square": lambda v: torch.reciprocal(v * v), "simple": torch.reciprocal,
         "uniform": lambda v: torch.ones_like(v)}[w_type](ground_o)
    infs = torch.isinf(w)
    if batch:
        w[infs] = 0.0
        w = w + infs * torch.max(w)
    else:
        w[infs] = 0.0
        w = w + infs * torch.max(w, dim=1)[0].unsqueeze(dim=1)
    d = 0 if batch else 1
    f = 1.0 - (2.0 * (inter * w).sum(d, keepdim=True) + smooth_nr) / ((den * w).sum(d, keepdim=True) + smooth_dr)
    return none_view(f, input)


def compare_none(chk, what, ours, ref, x, y, rng):
    xo = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    v = ours(xo, torch.tensor(y))
    xr = torch.tensor(x.astype(np.float64), requires_grad=True)
    rv = ref(xr, torch.tensor(y.astype(np.float64) if y.dtype.kind == "f" else y))
    chk.true("%s: shape %s vs MONAI %s" % (what, tuple(v.shape), tuple(rv.shape)), tuple(v.shape) == tuple(rv.shape))
    if tuple(v.shape) != tuple(rv.shape):
        return
    w = rng.normal(0, 1, tuple(rv.shape))
    (v * torch.tensor(w, dtype=torch.float32)).sum().backward()
    (rv * torch.tensor(w)).sum().backward()
    chk.close("%s value" % what, v.detach().numpy(), rv.detach().numpy(), rtol=2e-5, atol=1e-6,
              group=what.split(" ")[0] + " value")
    g = xr.grad.numpy()
    chk.close("%s grad" % what, xo.grad.numpy(), g, rtol=1e-4, atol=5e-5 * max(np.abs(g).max(), 1e-12),
              group=what.split(" ")[0] + " grad")


def main():
    chk = slref.Check("segloss.torch.monai reduction='none'")
    rng = np.random.default_rng(404)
    for N, C, sp in ((2, 3, (6, 7)), (3, 2, (3, 4, 5)), (2, 1, (8, 6))):
        x, lab, oh = TM.inputs(rng, N, C, sp, empty=(2 if C == 3 else None))
        y = lab if C > 1 else oh
        act = {"softmax": True} if C > 1 else {"sigmoid": True}   # MONAI ignores softmax for one channel
        for batch in (False, True):
            for ib in (True, False):
                kw = dict(include_background=ib, to_onehot_y=C > 1, batch=batch)
                tag = "C=%d %dD batch=%s bg=%s" % (C, len(sp), batch, ib)
                compare_none(chk, "DiceLoss %s" % tag, M.DiceLoss(reduction="none", **act, **kw),
                             lambda a, b: m_dice_none(a, b, **act, **kw), x, y, rng)
                compare_none(chk, "DiceLoss sigmoid jaccard %s" % tag,
                             M.DiceLoss(sigmoid=True, jaccard=True, reduction="none", **kw),
                             lambda a, b: m_dice_none(a, b, sigmoid=True, jaccard=True, **kw), x, y, rng)
                compare_none(chk, "TverskyLoss %s" % tag,
                             M.TverskyLoss(alpha=0.3, beta=0.7, reduction="none", **act, **kw),
                             lambda a, b: m_tversky_none(a, b, alpha=0.3, beta=0.7, **act, **kw), x, y, rng)
                compare_none(chk, "GeneralizedDiceLoss %s" % tag,
                             M.GeneralizedDiceLoss(reduction="none", **act, **kw),
                             lambda a, b: m_gdl_none(a, b, **act, **kw), x, y, rng)
        if C == 3:
            for ib, wt in ((True, [0.5, 2.0, 0.0]), (False, [3.0, 0.25])):
                compare_none(chk, "DiceLoss weight %s bg=%s" % (wt, ib),
                             M.DiceLoss(softmax=True, to_onehot_y=True, include_background=ib, weight=wt,
                                        reduction="none"),
                             lambda a, b: m_dice_none(a, b, softmax=True, to_onehot_y=True, include_background=ib,
                                                      weight=wt), x, lab, rng)
    chk.true("reduction 'none' still refused by DiceCELoss",
             _raises(lambda: M.DiceCELoss(reduction="none"), NotImplementedError))
    chk.report()


def _raises(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


if __name__ == "__main__":
    main()
