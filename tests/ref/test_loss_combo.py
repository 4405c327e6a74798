"""combo against a PyTorch reference written from Taghanaki et al. 2019 / docs/losses-region.md:
α·WCE + (1 − α)·dice loss. Binary (sigmoid channels, or one channel of probabilities):
WCE = −mean over voxels and channels of β g log p + (1 − β)(1 − g) log(1 − p). Multi-class
(softmax, or probabilities with C > 1): WCE = −mean over voxels of Σ_c w_c g_c log p_c with
w_0 = 1 − β and w_c = β for the foreground classes. The dice loss is `dice` (per sample and
class, MONAI's mean, include_background, batch, smoothing)."""
import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def is_binary(C, activation):
    return activation == "sigmoid" or (activation in ("auto", "none") and C == 1)


def ref_combo(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
              smooth_dr=1e-5, ignore_index=None, alpha=0.5, beta=0.5):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    if is_binary(C, activation):
        ce = -(beta * g * torch.log(p) + (1 - beta) * (1 - g) * torch.log(1 - p)) * m
        wce = ce.sum() / (m.sum() * C)
    else:
        w = torch.tensor([1 - beta] + [beta] * (C - 1)).view(1, C, *([1] * (x.dim() - 2)))
        ce = -(w * g * torch.log(p)).sum(1, keepdim=True) * m
        wce = ce.sum() / m.sum()
    s = RR.sums(x, target, C, activation, ignore_index, batch)
    dice = RR.mean_groups(1 - RR.dice_score(s, smooth_nr, smooth_dr), C, None, include_background)
    return alpha * wce + (1 - alpha) * dice


def main():
    chk = slref.Check("combo vs PyTorch")
    spec = lambda p: R.spec_of("combo", p)
    variants = [
        {},
        {"alpha": 0.8, "beta": 0.7, "include_background": False, "_channels": (4,)},
        {"alpha": 0.3, "beta": 0.2, "batch": True, "_channels": (1, 2), "_kinds": ("soft",)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"ignore_index": 5, "_ignore": 5, "_kinds": ("labels",), "_channels": (1,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "beta": 0.9, "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "combo", spec, ref_combo, variants)
    RR.edge_cases(chk, "combo", "combo", ref_combo)
    # special cases: α = 0 is the dice loss; α = 1, β = 0.5 is half the cross-entropy
    RR.same_value(chk, "combo(alpha=0)=dice", "combo(alpha=0)", "dice")
    RR.same_value(chk, "combo(alpha=1)=ce/2", "combo(alpha=1)", "0.5*ce")
    RR.bad_spec(chk, "combo(alpha=1.5)", ["combo", "alpha"])
    RR.bad_spec(chk, "combo(beta=-0.1)", ["combo", "beta"])
    RR.bad_spec(chk, "combo(weight=[1,2])", ["combo", "weight"])
    RR.threads_identical(chk, "combo")
    RR.threads_identical(chk, "combo(activation=sigmoid)")
    chk.report()


if __name__ == "__main__":
    main()
