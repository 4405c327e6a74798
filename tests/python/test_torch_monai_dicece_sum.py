"""MONAI's DiceCELoss(reduction="sum") and DiceFocalLoss(reduction="sum") in the
segloss.torch.monai drop-in. DiceCELoss:
lambda_dice · DiceLoss(reduction="sum") + lambda_ce · PyTorch's
CrossEntropyLoss(weight, label_smoothing, reduction="sum") (BCEWithLogitsLoss for
one channel), against test_torch_monai.py's m_dice with reduction="sum" and
PyTorch's own functional losses with reduction="sum" (class indices with and
without weights, label smoothing, one-hot targets, one channel). Value and
gradient.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch
import torch.nn.functional as F

import pyref  # noqa: F401  (paths)
import slref
import test_torch_monai as TM

from segloss.torch import monai as M

torch.set_default_dtype(torch.float64)


def ce_sum(input, target, weight=None, label_smoothing=0.0):
    w = None if weight is None else torch.as_tensor(weight, dtype=input.dtype)
    if input.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(input, target, pos_weight=w, reduction="sum")
    if target.shape[1] == 1:
        return F.cross_entropy(input, target[:, 0].long(), weight=w, label_smoothing=label_smoothing,
                               reduction="sum")
    return F.cross_entropy(input, target, weight=w, label_smoothing=label_smoothing, reduction="sum")


def main():
    chk = slref.Check("segloss.torch.monai DiceCELoss(reduction='sum')")
    rng = np.random.default_rng(515)
    for N, C, sp in ((2, 3, (6, 5)), (1, 4, (4, 3, 5)), (2, 1, (5, 6))):
        x, lab, oh = TM.inputs(rng, N, C, sp)
        cases = [(dict(), "labels"), (dict(lambda_ce=0.3, lambda_dice=1.5), "labels"),
                 (dict(include_background=False, batch=True), "labels"), (dict(), "one-hot")]
        if C > 1:
            w = [0.5, 2.0, 1.0, 3.0][:C]
            cases += [(dict(weight=w), "labels"), (dict(weight=w, label_smoothing=0.1), "labels"),
                      (dict(label_smoothing=0.2, include_background=False), "labels"), (dict(weight=w), "one-hot")]
        else:
            cases += [(dict(weight=[2.5]), "one-hot")]
        for kw, form in cases:
            if C == 1 and form == "labels":
                continue
            onehot = form == "one-hot"
            y = oh if onehot else lab
            lam_d, lam_c = kw.get("lambda_dice", 1.0), kw.get("lambda_ce", 1.0)
            dkw = dict(include_background=kw.get("include_background", True), batch=kw.get("batch", False),
                       to_onehot_y=not onehot and C > 1, softmax=C > 1, sigmoid=C == 1)
            wt = kw.get("weight")
            dw = None if (wt is None or C == 1) else (wt if dkw["include_background"] else wt[1:])

            def ref(a, b, kw=kw, dkw=dkw, dw=dw, lam_d=lam_d, lam_c=lam_c, wt=wt):
                return (lam_d * TM.m_dice(a, b, reduction="sum", weight=dw, **dkw)
                        + lam_c * ce_sum(a, b, wt, kw.get("label_smoothing", 0.0)))
            TM.compare(chk, "DiceCELoss sum C=%d %s %s" % (C, form, kw),
                       M.DiceCELoss(reduction="sum", to_onehot_y=not onehot and C > 1, softmax=C > 1,
                                    sigmoid=C == 1, **kw), ref, x, y if onehot else lab)
    # DiceFocalLoss(reduction="sum"): both of MONAI's terms with reduction="sum" (its focal term:
    # the sum over (B, channels) of spatial means)
    for N, C, sp in ((2, 3, (6, 5)), (1, 1, (4, 3, 5))):
        x, lab, oh = TM.inputs(rng, N, C, sp)
        for kw in (dict(), dict(gamma=1.5, lambda_focal=0.5, include_background=False),
                   dict(weight=[0.5, 2.0, 1.0], alpha=0.25) if C == 3 else dict(alpha=0.3)):
            def ref(a, b, kw=kw, C=C):
                ib = kw.get("include_background", True)
                d = TM.m_dice(a, b, reduction="sum", include_background=ib, softmax=C > 1, sigmoid=C == 1,
                              weight=kw.get("weight") if C > 1 else None)
                fo = TM.m_focal(a, b, include_background=ib, gamma=kw.get("gamma", 2.0), alpha=kw.get("alpha"),
                                weight=kw.get("weight"), reduction="sum")
                return d + kw.get("lambda_focal", 1.0) * fo
            if not kw.get("include_background", True) and kw.get("weight"):
                continue
            TM.compare(chk, "DiceFocalLoss sum C=%d %s" % (C, kw),
                       M.DiceFocalLoss(reduction="sum", softmax=C > 1, sigmoid=C == 1, **kw), ref, x, oh)
    chk.report()


if __name__ == "__main__":
    main()
