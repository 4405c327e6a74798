"""MONAI's FocalLoss(use_softmax=True, include_background=False) in the
segloss.torch.monai drop-in: MONAI slices the background channel off the
logits and the one-hot target before its softmax (so the softmax runs over the
remaining channels) and ignores alpha with a warning. Value and gradient
against test_torch_monai.py's transcription of MONAI's FocalLoss (m_focal),
with gamma, per-channel weights, reduction mean and sum, label maps and
one-hot targets; two channels (one left: the loss is 0; for gamma < 1 MONAI's
gradient is NaN there (the derivative of 0^gamma), segloss's 0).
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import warnings

import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref
import test_torch_monai as TM

from segloss.torch import monai as M

torch.set_default_dtype(torch.float64)


def main():
    chk = slref.Check("segloss.torch.monai FocalLoss(use_softmax=True, include_background=False)")
    rng = np.random.default_rng(808)
    for N, C, sp in ((2, 4, (6, 5)), (1, 3, (4, 5, 3)), (2, 2, (5, 5))):
        x, lab, oh = TM.inputs(rng, N, C, sp)
        for kw in (dict(), dict(gamma=1.0), dict(gamma=2.5, reduction="sum"),
                   dict(weight=[0.5, 2.0, 1.0][:C - 1]) if C > 2 else dict(gamma=1.0, reduction="sum")):
            tag = "C=%d %dD %s" % (C, len(sp), kw)
            TM.compare(chk, "FocalLoss softmax no-bg labels %s" % tag,
                       M.FocalLoss(use_softmax=True, include_background=False, to_onehot_y=True, **kw),
                       lambda a, b: TM.m_focal(a, torch.nn.functional.one_hot(b[:, 0].long(), C).movedim(-1, 1)
                                               .to(a.dtype), include_background=False, use_softmax=True, **kw),
                       x, lab)
            TM.compare(chk, "FocalLoss softmax no-bg one-hot %s" % tag,
                       M.FocalLoss(use_softmax=True, include_background=False, **kw),
                       lambda a, b: TM.m_focal(a, b, include_background=False, use_softmax=True, **kw), x, oh)
    # alpha: MONAI ignores it here, with a warning
    x, lab, oh = TM.inputs(rng, 2, 3, (5, 6))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = float(M.FocalLoss(use_softmax=True, include_background=False, alpha=0.25)(torch.tensor(x), torch.tensor(oh)))
    want = float(TM.m_focal(torch.tensor(x.astype(np.float64)), torch.tensor(oh.astype(np.float64)),
                            include_background=False, use_softmax=True))
    chk.close("FocalLoss softmax no-bg alpha ignored", v, want, rtol=2e-5, atol=1e-7, group="alpha")
    chk.true("no warning that alpha is ignored", any("alpha" in str(w.message) for w in caught))
    chk.report()


if __name__ == "__main__":
    main()
