"""exp_log (Wong et al. 2018) and log_hausdorff_dt (MONAI LogHausdorffDTLoss) against float64 PyTorch references.
# sanitized: skip

exp_log, written from the paper: w_dice · mean over (sample, class) of (−ln Dice)^γ_dice, Dice = (2tp + ε)/(Σp + Σg + ε),
plus w_ce · mean over voxels of Σ_c w_c g_c (−ln p_c)^γ_ce with w_c = (Σ_k f_k / f_c)^0.5, f the batch's label
counts; defaults 0.8, 0.2, 0.3, 0.3, ε = 1. log_hausdorff_dt: MONAI's LogHausdorffDTLoss.forward transcribed,
torch.log(HausdorffDTLoss(input, target) + 1), on the hausdorff_dt reference of test_loss_hausdorff_dt.py."""
import numpy as np
import torch

import boundaryref as B
import lossref as R
import slref
from test_loss_hausdorff_dt import away_from_half, ref_hd


def ref_exp_log(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1.0,
                smooth_dr=1.0, ignore_index=None, gamma_dice=0.3, gamma_ce=0.3, w_dice=0.8, w_ce=0.2, mask=None):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    if mask is not None:
        m = m * mask
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    tp = (m * p * g).sum(axes)
    D = (2 * tp + smooth_nr) / ((m * p).sum(axes) + (m * g).sum(axes) + smooth_dr)
    ld = (-torch.log(D)) ** gamma_dice
    if not include_background and C > 1:
        ld = ld[..., 1:]
    f = (m * g).sum([0] + list(range(2, x.dim())))
    w = torch.where(f > 0, (f.sum() / torch.where(f > 0, f, torch.ones_like(f))) ** 0.5, torch.zeros_like(f))
    logp = torch.log_softmax(x, 1) if activation != "none" else torch.log(x)
    u = (-logp).clamp(min=0)
    wv = w.view((1, C) + (1,) * (x.dim() - 2))
    lc = (m * (wv * g * u ** gamma_ce).sum(1, keepdim=True)).sum() / m.sum()
    return w_dice * ld.mean() + w_ce * lc


def ref_log_hd(x, target, C, **kw):
    return torch.log(ref_hd(x, target, C, **kw) + 1)


def main():
    chk = slref.Check("exp_log, log_hausdorff_dt vs PyTorch")
    variants = [
        {},
        {"gamma_dice": 1.0, "gamma_ce": 1.0, "w_dice": 1.0, "w_ce": 1.0},
        {"gamma_dice": 2.0, "gamma_ce": 0.5, "batch": True, "include_background": False},
        {"smooth_nr": 0.5, "smooth_dr": 1.0, "_kinds": ("soft",)},
        {"ignore_index": 7, "_ignore": 7, "_kinds": ("labels",)},
        {"_activation": "none"},
    ]
    R.run_matrix(chk, "exp_log", lambda p: R.spec_of("exp_log", p), ref_exp_log, variants, channels=(2, 4), seed=11)
    rng = np.random.default_rng(12)
    with R.tmpdir() as tmp:
        x, y = R.make_inputs(rng, 2, 3, (6, 7), "labels")
        m = rng.uniform(0, 2, (2, 1, 6, 7)).astype(np.float32)
        R.check_loss(chk, "exp_log masked", "exp_log", ref_exp_log, {}, x, y, 3, tmp, mask=m)
        # γ = 1, w_dice = 1, w_ce = 0 is −log Dice: dice(log=true, smooth 1) exactly.
        a, ga, _ = R.run_lib("exp_log(gamma_dice=1,w_dice=1,w_ce=0)", x, y)
        b, gb, _ = R.run_lib("dice(log=true,smooth_nr=1,smooth_dr=1)", x, y)
        chk.close("exp_log(γ=1, dice only) == dice(log=true)", a, b, rtol=1e-6, group="identities")
        chk.close("exp_log(γ=1, dice only) == dice(log=true) grad", ga, gb, rtol=1e-4, atol=1e-7, group="identities")
        v, _, err = R.run_lib("exp_log", x[:, :1], (y > 0).astype(np.int64))
        chk.true("exp_log on one sigmoid channel is refused (%s)" % err, v is None and "C > 1" in err)
        for N, spatial in B.shapes(slref.QUICK):
            for C in (1, 3):
                y = B.targets(rng, N, C, spatial, "labels")
                x = away_from_half(rng, B.logits(rng, N, C, spatial), C, "auto")
                for params in ({}, {"alpha": 1.0, "include_background": True}):
                    R.check_loss(chk, "log_hausdorff_dt", R.spec_of("log_hausdorff_dt", params), ref_log_hd, params,
                                 x, y, C, tmp, **B.FD)
    chk.report()


if __name__ == "__main__":
    main()
