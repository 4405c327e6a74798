"""ce, wce, bce against PyTorch's own F.cross_entropy / F.binary_cross_entropy_with_logits
(the references docs/losses.md names), plus hand-written forms for activation=none."""
import numpy as np
import torch
import torch.nn.functional as F

import lossref as R
import slref


def class_weights(target, C, weight, ignore_index):
    if weight is None:
        return torch.ones(C)
    if isinstance(weight, (list, tuple)):
        return torch.tensor(weight, dtype=torch.float64)
    oh = R.onehot(target, C) * R.valid_mask(target, ignore_index, C)
    freq = oh.sum(dim=[0] + list(range(2, oh.dim())))
    total = float(R.valid_mask(target, ignore_index, C).sum())
    if weight == "inverse":
        return torch.where(freq > 0, total / (C * freq), torch.zeros_like(freq))
    present = freq[freq > 0]
    med = float(present.median()) if present.numel() % 2 else float(present.sort().values[present.numel() // 2 - 1:present.numel() // 2 + 1].mean())
    return torch.where(freq > 0, med / freq, torch.zeros_like(freq))


def ref_ce(x, target, C, activation="auto", weight=None, label_smoothing=0.0, ignore_index=None, pos_weight=1.0,
           binary=False):
    w = class_weights(target, C, weight, ignore_index)
    if activation == "auto":
        activation = "softmax" if C > 1 else "sigmoid"
    if binary or activation == "sigmoid" or (activation == "none" and C == 1):
        g = R.onehot(target, C)
        g = g * (1 - label_smoothing) + label_smoothing / 2
        m = R.valid_mask(target, ignore_index, C)
        wv = w.view((1, C) + (1,) * (x.dim() - 2))
        if activation == "none":
            l = -(pos_weight * g * torch.log(x) + (1 - g) * torch.log1p(-x))
        else:
            l = F.binary_cross_entropy_with_logits(x, g, reduction="none", pos_weight=torch.tensor(pos_weight))
        return (wv * l * m).sum() / (m.sum() * C)
    ii = -100 if ignore_index is None else int(ignore_index)
    if activation == "softmax":
        if target.dtype.is_floating_point:
            return F.cross_entropy(x, target, weight=w, label_smoothing=label_smoothing)
        return F.cross_entropy(x, target, weight=w, ignore_index=ii, label_smoothing=label_smoothing)
    # activation=none: probabilities in; PyTorch's formula on log p written out.
    logp = torch.log(x)
    if target.dtype.is_floating_point:
        g = target * (1 - label_smoothing) + label_smoothing / C
        wv = w.view((1, C) + (1,) * (x.dim() - 2))
        return -(wv * g * logp).sum() / (x.numel() / C)
    nll = F.nll_loss(logp, target, weight=w, ignore_index=ii)
    if label_smoothing == 0:
        return nll
    valid = (target != ii)
    tt = torch.where(valid, target, torch.zeros_like(target))
    wv = w.view((1, C) + (1,) * (x.dim() - 2))
    smooth = -(wv * logp).sum(1) * valid
    return (1 - label_smoothing) * nll + label_smoothing / C * smooth.sum() / w[tt][valid].sum()


def main():
    chk = slref.Check("ce/wce/bce vs PyTorch")
    spec = lambda name: (lambda p: R.spec_of(name, p))
    ce_variants = [
        {},
        {"weight": [0.2, 1.0, 3.0, 0.5], "_channels": (4,)},
        {"weight": [2.0, 0.5], "_channels": (2,)},
        {"weight": "inverse", "_channels": (2, 4), "_kinds": ("labels",)},
        {"weight": "median", "_channels": (4,), "_kinds": ("labels",)},
        {"label_smoothing": 0.1},
        {"ignore_index": 1, "_ignore": 1, "_kinds": ("labels",), "_channels": (2, 4)},
        {"ignore_index": 255, "_ignore": 255, "_kinds": ("labels",), "_channels": (1, 4)},
        {"_activation": "none"},
        {"_activation": "none", "label_smoothing": 0.2, "_channels": (4,)},
        {"_activation": "sigmoid", "_channels": (2, 4), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "ce", spec("ce"), ref_ce, ce_variants)
    R.run_matrix(chk, "wce", spec("wce"), lambda x, t, C, **p: ref_ce(x, t, C, **dict({"weight": "inverse"}, **p)),
                 [{"_channels": (2, 4), "_kinds": ("labels",)}, {"weight": [1.0, 4.0], "_channels": (2,)}])
    bce_ref = lambda x, t, C, **p: ref_ce(x, t, C, binary=True, **p)
    R.run_matrix(chk, "bce", spec("bce"), bce_ref,
                 [{}, {"pos_weight": 3.0}, {"weight": [1.0, 2.0, 0.5, 4.0], "_channels": (4,)},
                  {"label_smoothing": 0.1, "_channels": (1,)},
                  {"_activation": "none", "activation": "none", "_channels": (1, 2)}])

    # ce with gamma-free edge cases: all voxels one class, an empty class.
    rng = np.random.default_rng(3)
    with R.tmpdir() as tmp:
        for C in (2, 4):
            x = rng.normal(0, 3, (2, C, 6, 7)).astype(np.float32)
            y = np.zeros((2, 6, 7), np.int64)
            R.check_loss(chk, "ce all-background", "ce", ref_ce, {}, x, y, C, tmp)
            y = rng.integers(0, C - 1, (2, 6, 7))
            R.check_loss(chk, "ce empty-class", "ce(weight=inverse)", ref_ce, {"weight": "inverse"}, x, y, C, tmp)
        # Large logits: the logit gradient (p − g) must stay exact where p underflows.
        x = np.array([[[[80.0, -80.0]], [[-80.0, 80.0]]]], np.float32)
        y = np.array([[[1, 0]]], np.int64)
        R.check_loss(chk, "ce saturated", "ce", ref_ce, {}, x, y, 2, tmp, fd=False)
    chk.report()


if __name__ == "__main__":
    main()
