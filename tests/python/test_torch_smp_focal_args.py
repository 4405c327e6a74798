"""smp's FocalLoss(normalized=True, reduced_threshold=r, reduction="sum" |
"batchwise_mean") in the segloss.torch.smp
drop-in, binary, multiclass and multilabel mode, with alpha, gamma and
ignore_index, value and gradient, against a transcription of smp's code
written here (segmentation_models_pytorch/losses/focal.py FocalLoss.forward and
_functional.py focal_loss_with_logits, smp 0.3): multiclass sums one-vs-rest
terms, each normalised by its own class's sum of focal factors; binary and
multilabel flatten every (channel, voxel) entry into one term.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch
import torch.nn.functional as F

import pyref  # noqa: F401  (paths)
import slref
from smpref import focal_loss_with_logits
import test_torch_smp as TS

from segloss.torch import smp as S

torch.set_default_dtype(torch.float64)


def smp_focal(mode, y_pred, y_true, alpha=None, gamma=2.0, ignore_index=None, normalized=False,
              reduced_threshold=None, reduction="mean"):
    """smp's FocalLoss.forward."""
    fn = lambda p, t: focal_loss_with_logits(p, t, gamma, alpha, normalized, reduced_threshold,  # noqa: E731
                                             reduction=reduction)
    if mode in ("binary", "multilabel"):
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        if ignore_index is not None:
            keep = y_true != ignore_index
            y_pred, y_true = y_pred[keep], y_true[keep]
        return fn(y_pred, y_true)
    loss = 0
    keep = y_true != ignore_index if ignore_index is not None else None
    for c in range(y_pred.shape[1]):
        ct, cp = (y_true == c).long(), y_pred[:, c]
        if keep is not None:
            ct, cp = ct[keep], cp[keep]
        loss = loss + fn(cp, ct)
    return loss


def main():
    chk = slref.Check("segloss.torch.smp FocalLoss normalized / reduced_threshold")
    rng = np.random.default_rng(77)
    for N, C, sp in ((2, 3, (7, 6)), (1, 4, (4, 5, 3))):
        x = rng.normal(0, 2, (N, C) + sp).astype(np.float32)
        lab = rng.integers(0, C, (N,) + sp)
        lab_ign = lab.copy()
        lab_ign[rng.random(lab.shape) < 0.2] = 255
        yml = (rng.random((N, C) + sp) < 0.3).astype(np.float32)
        ymi = yml.copy()
        ymi[rng.random(ymi.shape) < 0.15] = 255
        for kw in (dict(normalized=True), dict(reduced_threshold=0.5), dict(reduced_threshold=0.3, gamma=1.5),
                   dict(normalized=True, reduced_threshold=0.6, alpha=0.25),
                   dict(normalized=True, ignore_index=255), dict(reduced_threshold=0.4, ignore_index=255),
                   dict(reduction="sum"), dict(reduction="batchwise_mean", ignore_index=255, alpha=0.3),
                   dict(reduction="sum", normalized=True, ignore_index=255)):
            tag = "%s %dD C=%d" % (kw, len(sp), C)
            ign = "ignore_index" in kw
            TS.compare(chk, "FocalLoss multiclass %s" % tag, S.FocalLoss("multiclass", **kw),
                       lambda a, b: smp_focal("multiclass", a, b, **kw), x, lab_ign if ign else lab)
            yb = (lab == 1).astype(np.float32)[:, None]
            if ign:
                yb[lab_ign[:, None] == 255] = 255
            TS.compare(chk, "FocalLoss binary %s" % tag, S.FocalLoss("binary", **kw),
                       lambda a, b: smp_focal("binary", a, b, **kw), x[:, :1].copy(), yb)
            TS.compare(chk, "FocalLoss multilabel %s" % tag, S.FocalLoss("multilabel", **kw),
                       lambda a, b: smp_focal("multilabel", a, b, **kw), x, ymi if ign else yml)
    # per-class normalisation differs from one global normalisation: the test tells them apart
    x = torch.tensor(rng.normal(0, 2, (2, 3, 6, 6)))
    y = torch.tensor(rng.integers(0, 3, (2, 6, 6)))
    per = float(smp_focal("multiclass", x, y, normalized=True))
    glob = float(3 * focal_loss_with_logits(x.movedim(1, -1).reshape(-1),
                                            F.one_hot(y, 3).reshape(-1), alpha=None, normalized=True))
    chk.true("multiclass normalisation: per class %.6g vs global %.6g are not distinct" % (per, glob),
             abs(per - glob) > 1e-3 * abs(per))
    TS.raises(chk, "reduced_threshold 1.5", lambda: S.FocalLoss("binary", reduced_threshold=1.5), ValueError,
              ["reduced_threshold"])
    chk.report()


if __name__ == "__main__":
    main()
