"""SegLoss(reduction="none") and the MONAI drop-ins' reduction="none" (DiceLoss, TverskyLoss) against float64
PyTorch: MONAI's reduction="none" transcribed (the (B, C', 1, ...) matrix of 1 − score, class weights applied,
the background channel dropped by include_background=False), and the per-sample references of
tests/ref/test_loss_reduction_none.py. The backward of a random upstream gradient must be the gradient of Σ u·M.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref
import test_loss_reduction_none as T
from test_torch_monai import inputs, m_prep

from segloss import errors
from segloss.torch import SegLoss
from segloss.torch import monai as M


def monai_none(kind, input, target, include_background=True, to_onehot_y=False, softmax=False, sigmoid=False,
               smooth_nr=1e-5, smooth_dr=1e-5, weight=None, alpha=0.5, beta=0.5):
    """MONAI DiceLoss / TverskyLoss forward with reduction="none": DiceLoss views f (B, C') as (B, C', 1, ...);
    TverskyLoss returns its (B, C') scores as they are (MONAI's tversky.py has no view)."""
    x, t = m_prep(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, x.dim()))
    inter = (x * t).sum(axes)
    if kind == "dice":
        f = 1.0 - (2.0 * inter + smooth_nr) / (t.sum(axes) + x.sum(axes) + smooth_dr)
        if weight is not None and t.shape[1] != 1:
            f = f * torch.as_tensor(weight, dtype=f.dtype)
    else:
        fp, fn = alpha * (x * (1 - t)).sum(axes), beta * ((1 - x) * t).sum(axes)
        f = 1.0 - (inter + smooth_nr) / (inter + fp + fn + smooth_dr)
        return f
    return f.view(list(f.shape[:2]) + [1] * (x.dim() - 2))


def check(chk, what, ours, ref, x, y):
    """Values, and the gradient of a random upstream u through backward, against autograd of Σ u·ref."""
    xo = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    v = ours(xo, torch.tensor(y))
    xr = torch.tensor(x.astype(np.float64), requires_grad=True)
    r = ref(xr, torch.tensor(y.astype(np.float64) if y.dtype.kind == "f" else y))
    if not chk.true("%s: shape %s == reference %s" % (what, tuple(v.shape), tuple(r.shape)), v.shape == r.shape):
        return
    u = torch.tensor(np.random.default_rng(3).normal(0, 1, tuple(v.shape)))
    (v * u.to(v.dtype)).sum().backward()
    (r * u).sum().backward()
    chk.close("%s values" % what, v.detach().numpy(), r.detach().numpy(), rtol=2e-5, atol=1e-7, group="values")
    g = xr.grad.numpy()
    chk.close("%s grad of Σ u·M" % what, xo.grad.numpy(), g, rtol=1e-4, atol=5e-5 * max(np.abs(g).max(), 1e-12),
              group="grad")


def raises(chk, what, fn, exc, words=()):
    try:
        fn()
    except exc as e:
        chk.true("%s -> %s: %s" % (what, type(e).__name__, e), all(w in str(e) for w in words))
        return
    except Exception as e:  # noqa: BLE001
        chk.true("%s: raised %s(%s)" % (what, type(e).__name__, e), False)
        return
    chk.true("%s: raised nothing" % what, False)


def main():
    chk = slref.Check("SegLoss(reduction='none') and MONAI reduction='none' vs PyTorch")
    rng = np.random.default_rng(16)
    for N, C, spatial in ((2, 3, (6, 7)), (3, 1, (5, 6)), (2, 4, (4, 5, 6))):
        x, lab, oh = inputs(rng, N, C, spatial)
        y = lab[:, 0]
        # SegLoss: the library's matrix, against the float64 references
        check(chk, "SegLoss dice C=%d" % C, SegLoss("dice", reduction="none", threads=2),
              lambda a, b, c=C: T.m_dice(a, b, c), x, y)
        check(chk, "SegLoss 0.5*iou+2*tversky C=%d" % C, SegLoss("0.5*iou+2*tversky", reduction="none", threads=2),
              lambda a, b, c=C: 0.5 * T.m_iou(a, b, c) + 2 * T.m_tversky(a, b, c), x, y)
        check(chk, "SegLoss dice+ce C=%d (per sample)" % C, SegLoss("dice+ce", reduction="none", threads=2),
              lambda a, b, c=C: T.per_sample(lambda p, q, k: T.dice_scalar(p, q, k) + T.ce(p, q, k))(a, b, c), x, y)
        # MONAI drop-ins
        act = dict(softmax=True) if C > 1 else dict(sigmoid=True)
        kws = [dict(act, to_onehot_y=True), dict(act, to_onehot_y=True, include_background=False)]
        if C > 1:
            kws.append(dict(act, to_onehot_y=True, weight=[0.5, 2.0, 1.0, 3.0][:C]))
        for kw in kws:
            tgt = lab if C > 1 else oh
            check(chk, "MONAI DiceLoss(reduction=none, %s) C=%d" % (kw, C), M.DiceLoss(reduction="none", **kw),
                  lambda a, b, kw=kw: monai_none("dice", a, b, **kw), x, tgt)
            kt = {k: v for k, v in kw.items() if k != "weight"}
            check(chk, "MONAI TverskyLoss(reduction=none, %s) C=%d" % (kt, C),
                  M.TverskyLoss(reduction="none", alpha=0.3, beta=0.7, **kt),
                  lambda a, b, kt=kt: monai_none("tversky", a, b, alpha=0.3, beta=0.7, **kt), x, tgt)

    x, lab, oh = inputs(rng, 2, 3, (6, 7))
    raises(chk, "SegLoss(reduction='sum')", lambda: SegLoss("dice", reduction="sum"), ValueError, ["mean", "none"])
    # backend="torch" computes reduction="none" too (tests/python/test_backend_torch_more.py); a process group does not
    raises(chk, "SegLoss(reduction='none', process_group=...)",
           lambda: SegLoss("dice", reduction="none", process_group=object()), errors.UnsupportedError, ["process_group"])
    raises(chk, "SegLoss('dice(batch=true)', reduction='none')",
           lambda: SegLoss("dice(batch=true)", reduction="none")(torch.tensor(x), torch.tensor(lab[:, 0])),
           errors.InvalidArgumentError, ["batch=true"])
    # MONAI DiceLoss(batch=True, reduction='none') is reproduced: tests/python/test_torch_monai_none.py
    chk.report()


if __name__ == "__main__":
    main()
