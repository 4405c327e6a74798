"""MONAI's HausdorffDTLoss(reduction="sum" | "none", batch=True) in the segloss.torch.monai
drop-in, against tests/ref/test_loss_hausdorff_dt.py's transcription of
MONAI's per-channel computation (ref_hd): "sum" is the sum of the
(sample, channel) means, "none" the (B, C', 1, ...) tensor of them, each
element the transcription on that sample and channel; with batch=True
MONAI's per-channel mean over the batch and the voxels. Values and the
gradient of a random weighting of the unreduced tensor.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import lossref as R
import slref
import test_loss_hausdorff_dt as THD
import test_torch_monai as TM

from segloss.torch import monai as M

torch.set_default_dtype(torch.float64)


def ref_none(x, target, C, act, include_background):
    p = R.probs(x, C, act)
    g = R.onehot(target, C)
    first = 1 if (not include_background and C > 1) else 0
    f = torch.stack([torch.stack([THD.ref_hd(p[b:b + 1, c:c + 1], g[b:b + 1, c:c + 1], 1, activation="none",
                                             include_background=True) for c in range(first, C)])
                     for b in range(x.shape[0])])
    return f.view(list(f.shape[0:2]) + [1] * (x.dim() - 2))


def main():
    chk = slref.Check("segloss.torch.monai HausdorffDTLoss reduction")
    rng = np.random.default_rng(17)
    for N, C, sp in ((2, 3, (9, 8)), (2, 1, (5, 6, 4))):
        act = "softmax" if C > 1 else "sigmoid"
        x, lab, oh = TM.inputs(rng, N, C, sp)
        x = THD.away_from_half(rng, x, C, act)
        kw = {"softmax": True} if C > 1 else {"sigmoid": True}
        y = oh
        for ib, bt in ((False, False), (True, False), (False, True), (True, True)):
            tag = "C=%d %dD bg=%s batch=%s" % (C, len(sp), ib, bt)
            kept = C - 1 if (not ib and C > 1) else C
            # MONAI with batch: per channel the mean over samples and voxels, i.e. the mean of the
            # per-sample means (equal voxel counts): written from ref_none's elements
            TM.compare(chk, "HausdorffDTLoss mean %s" % tag, M.HausdorffDTLoss(include_background=ib, batch=bt, **kw),
                       lambda a, b: ref_none(a, b.argmax(1) if C > 1 else b, C, act, ib).mean(), x, y)
            TM.compare(chk, "HausdorffDTLoss sum %s" % tag,
                       M.HausdorffDTLoss(include_background=ib, reduction="sum", batch=bt, **kw),
                       lambda a, b: (ref_none(a, b.argmax(1) if C > 1 else b, C, act, ib).mean(0) if bt else
                                     THD.ref_hd(a, b.argmax(1) if C > 1 else b, C, activation=act,
                                                include_background=ib) * (N * kept)).sum(), x, y)
            TM_none(chk, "HausdorffDTLoss none %s" % tag,
                    M.HausdorffDTLoss(include_background=ib, reduction="none", batch=bt, **kw),
                    lambda a, b: (lambda f: f.mean(0, keepdim=True) if bt else f)(
                        ref_none(a, b.argmax(1) if C > 1 else b, C, act, ib)), x, y, rng)
    chk.report()


def TM_none(chk, what, ours, ref, x, y, rng):
    xo = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    v = ours(xo, torch.tensor(y))
    xr = torch.tensor(x.astype(np.float64), requires_grad=True)
    rv = ref(xr, torch.tensor(y.astype(np.float64)))
    chk.true("%s: shape %s vs MONAI %s" % (what, tuple(v.shape), tuple(rv.shape)), tuple(v.shape) == tuple(rv.shape))
    if tuple(v.shape) != tuple(rv.shape):
        return
    w = rng.normal(0, 1, tuple(rv.shape))
    (v * torch.tensor(w, dtype=torch.float32)).sum().backward()
    (rv * torch.tensor(w)).sum().backward()
    chk.close("%s value" % what, v.detach().numpy(), rv.detach().numpy(), rtol=2e-5, atol=1e-6,
              group="none value")
    g = xr.grad.numpy()
    chk.close("%s grad" % what, xo.grad.numpy(), g, rtol=1e-4, atol=5e-5 * max(np.abs(g).max(), 1e-12),
              group="none grad")


if __name__ == "__main__":
    main()
