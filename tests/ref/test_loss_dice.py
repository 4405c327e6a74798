"""dice against a PyTorch reference written from Milletari et al. / MONAI's DiceLoss
conventions (per sample and class, mean over groups, smooth 1e-5)."""
import numpy as np
import torch

import lossref as R
import slref


def ref_dice(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
             smooth_dr=1e-5, weight=None, ignore_index=None, squared=False, log=False):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    p, g = p * m, g * m
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    tp = (p * g).sum(axes)
    den = (p * p).sum(axes) + (g * g).sum(axes) if squared else p.sum(axes) + g.sum(axes)
    D = (2 * tp + smooth_nr) / (den + smooth_dr)
    l = -torch.log(D) if log else 1 - D
    if weight is not None:
        l = l * torch.tensor(weight)
    if not include_background and C > 1:
        l = l[..., 1:]
    return l.mean()


def main():
    chk = slref.Check("dice vs PyTorch")
    spec = lambda p: R.spec_of("dice", p)
    variants = [
        {},
        {"include_background": False, "_channels": (2, 4)},
        {"batch": True},
        {"squared": True},
        {"log": True},
        {"smooth_nr": 0.0, "smooth_dr": 1.0},
        {"weight": [0.5, 1.0, 2.0, 4.0], "_channels": (4,)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none"},
        {"_activation": "sigmoid", "_channels": (2, 4), "_kinds": ("soft",)},
        {"_empty": 1, "_channels": (4,), "_kinds": ("labels",)},
        {"batch": True, "include_background": False, "_channels": (4,), "_empty": 2, "_kinds": ("labels",)},
    ]
    R.run_matrix(chk, "dice", spec, ref_dice, variants)
    # Prediction and target both empty for a class: the loss is 0 for it.
    with R.tmpdir() as tmp:
        x = np.full((1, 2, 5, 5), -8.0, np.float32)
        x[:, 0] = 8.0
        y = np.zeros((1, 5, 5), np.int64)
        R.check_loss(chk, "dice both-empty", "dice", ref_dice, {}, x, y, 2, tmp)
    chk.report()


if __name__ == "__main__":
    main()
