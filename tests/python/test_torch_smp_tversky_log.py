"""smp's TverskyLoss(log_loss=True) in the segloss.torch.smp drop-in (each class's
score from its own segloss call, smp's −log(max(score, eps)), the mask of
absent classes, the mean over the chosen classes and the power gamma applied
in PyTorch), against test_torch_smp.py's transcription of smp (s_region):
multiclass, binary and multilabel, from logits and probabilities, classes,
ignore_index, smooth, alpha/beta/gamma, a class absent from the batch.
Value and gradient.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref
import test_torch_smp as TS

from segloss.torch import smp as S

torch.set_default_dtype(torch.float64)


def main():
    chk = slref.Check("segloss.torch.smp TverskyLoss(log_loss=True)")
    rng = np.random.default_rng(303)
    for N, C, sp in ((2, 4, (6, 7)), (1, 3, (4, 5, 3))):
        x = rng.normal(0, 1.5, (N, C) + sp).astype(np.float32)
        lab = rng.integers(0, C, (N,) + sp)
        lab[lab == C - 1] = 0                          # the last class absent from the batch
        lab_ign = lab.copy()
        lab_ign[rng.random(lab.shape) < 0.2] = 255
        tag = "%dD C=%d" % (len(sp), C)
        for kw in (dict(), dict(alpha=0.3, beta=0.7, gamma=1.5), dict(smooth=1.0), dict(classes=[0, 1]),
                   dict(ignore_index=255), dict(smooth=0.5, ignore_index=255, gamma=0.75)):
            y = lab_ign if "ignore_index" in kw else lab
            TS.compare(chk, "TverskyLoss multiclass log %s %s" % (kw, tag), S.TverskyLoss("multiclass", log_loss=True,
                                                                                         **kw),
                       lambda a, b: TS.s_region("tversky", "multiclass", a, b, log_loss=True, **kw), x, y)
        probs = np.exp(x) / np.exp(x).sum(1, keepdims=True)
        TS.compare(chk, "TverskyLoss multiclass log probabilities %s" % tag,
                   S.TverskyLoss("multiclass", log_loss=True, from_logits=False, smooth=0.1),
                   lambda a, b: TS.s_region("tversky", "multiclass", a, b, log_loss=True, from_logits=False,
                                            smooth=0.1), probs.astype(np.float32), lab)
        yb = (lab == 1).astype(np.float32)[:, None]
        TS.compare(chk, "TverskyLoss binary log %s" % tag, S.TverskyLoss("binary", log_loss=True, alpha=0.7, beta=0.3),
                   lambda a, b: TS.s_region("tversky", "binary", a, b, log_loss=True, alpha=0.7, beta=0.3),
                   x[:, :1].copy(), yb)
        yml = (rng.random((N, C) + sp) < 0.3).astype(np.float32)
        yml[:, 0] = 0                                  # channel 0 empty
        TS.compare(chk, "TverskyLoss multilabel log %s" % tag, S.TverskyLoss("multilabel", log_loss=True, gamma=2.0),
                   lambda a, b: TS.s_region("tversky", "multilabel", a, b, log_loss=True, gamma=2.0), x, yml)
    chk.report()


if __name__ == "__main__":
    main()
