"""gdice(normalize=false) against MONAI's GeneralizedDiceLoss transcribed here in float64
PyTorch from monai/losses/dice.py (MONAI 1.x; the same in 1.3 to 1.5): per sample (per
class over the pooled batch with batch=True)

    w = 1/ground_o² (square) | 1/ground_o (simple) | 1 (uniform)
    infinite weights → 0, then + the largest weight of the sample (of the batch: batch=True)
    numer = 2 Σ_c intersection·w + smooth_nr,   denom = Σ_c (ground_o + pred_o)·w + smooth_dr
    f = 1 − numer/denom,  the mean over samples

with MONAI's default smoothing 1e-5 (which normalize=true would weigh differently), value,
gradient and finite differences; an absent class; a sample without any included class."""
import numpy as np
import torch

import lossref as R
import slref


def ref_monai_gdl_smooth(x, target, C, w_type="square", batch=False, include_background=True, smooth_nr=1e-5,
                         smooth_dr=1e-5, normalize=False):
    assert normalize is False
    p = R.probs(x, C)
    g = R.onehot(target, C)
    if not include_background and C > 1:
        p, g = p[:, 1:], g[:, 1:]
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    intersection = (g * p).sum(axes)
    ground_o = g.sum(axes)
    denominator = ground_o + p.sum(axes)
    w = {"square": lambda v: 1.0 / (v * v), "simple": lambda v: 1.0 / v,
         "uniform": torch.ones_like}[w_type](ground_o)
    infs = torch.isinf(w)
    w = torch.where(infs, torch.zeros_like(w), w)
    if batch:
        w = w + infs * w.max()
    else:
        w = w + infs * w.max(1, keepdim=True).values
    d = 0 if batch else 1
    numer = 2.0 * (intersection * w).sum(d, keepdim=True) + smooth_nr
    denom = (denominator * w).sum(d, keepdim=True) + smooth_dr
    return (1.0 - numer / denom).mean()


def main():
    chk = slref.Check("gdice(normalize=false) vs MONAI GeneralizedDiceLoss with smoothing")
    rng = np.random.default_rng(21)
    with R.tmpdir() as tmp:
        for w_type in ("square", "simple", "uniform"):
            for batch in (False, True):
                for C, incl in ((1, True), (4, True), (4, False), (3, False)):
                    for smooth in ((1e-5, 1e-5), (0.5, 2.0)):
                        x, y = R.make_inputs(rng, 3, C, (6, 7), "labels")
                        if C == 4:
                            y[0][y[0] == 2] = 1          # class 2 absent from sample 0
                        if C == 3:
                            y[1][:] = 0                  # sample 1: background only (no included class)
                        params = {"w_type": w_type, "batch": batch, "include_background": incl,
                                  "smooth_nr": smooth[0], "smooth_dr": smooth[1], "normalize": False}
                        R.check_loss(chk, "gdice raw=MONAI", R.spec_of("gdice", params), ref_monai_gdl_smooth,
                                     params, x, y, C, tmp, fd=(w_type == "square" and not batch))
        # soft targets (MONAI takes them as they are)
        x, y = R.make_inputs(rng, 2, 4, (5, 6), "soft")
        params = {"normalize": False}
        R.check_loss(chk, "gdice raw=MONAI", R.spec_of("gdice", params), ref_monai_gdl_smooth, params, x, y, 4, tmp)
    chk.report()


if __name__ == "__main__":
    main()
