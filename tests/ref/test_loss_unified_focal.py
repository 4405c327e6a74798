"""unified_focal against a PyTorch reference written from Yeung et al. 2022 and the
authors' reference code (facts: the formulas), docs/losses-region.md:
λ·L_focal + (1 − λ)·L_focal_tversky,
L_focal = mean over voxels of (1 − δ)(1 − p_0)^γ CE_0 + Σ_{c ≥ 1} δ (1 − p_c)^{γ or 0} CE_c,
L_focal_tversky = mean over (sample, class) of (1 − mTI_c)^{ε_c},
mTI = (tp + s_nr)/(tp + δ fn + (1 − δ) fp + s_dr), ε_0 = 1 − γ (symmetric) or 1
(asymmetric), ε_c = 1 − γ for the foreground. A sigmoid channel is the binary problem
(1 − p, p); with several channels the mean runs over them too.

Also a literal transcription of the reference code's binary functions (two softmax
channels, clipping to [1e-7, 1 − 1e-7], ε = 1e-7, `weight` on the focal Tversky term),
which must agree with unified_focal(smooth_nr=1e-7, smooth_dr=1e-7) at λ = 0.5."""
import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def views(x, target, C, activation, ignore_index):
    """(q, h, m): q and h (N, C', K, ...) class views, m (N, 1, 1, ...) mask."""
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C).unsqueeze(1)
    if activation == "sigmoid" or (activation in ("auto", "none") and C == 1):
        return torch.stack([1 - p, p], 2), torch.stack([1 - g, g], 2), m
    return p.unsqueeze(1), g.unsqueeze(1), m


def ref_unified(x, target, C, activation="auto", batch=False, smooth_nr=1e-5, smooth_dr=1e-5, ignore_index=None,
                variant="asymmetric", lambda_=None, delta=0.6, gamma=0.5, **kw):
    lam = kw.get("lambda", 0.5) if lambda_ is None else lambda_
    q, h, m = views(x, target, C, activation, ignore_index)
    K = q.shape[2]
    sym = variant == "symmetric"
    shape = (1, 1, K) + (1,) * (q.dim() - 3)
    w = torch.tensor([1 - delta] + [delta] * (K - 1)).view(shape)
    ef = torch.tensor([gamma] + [gamma if sym else 0.0] * (K - 1)).view(shape)
    focal_map = (w * (1 - q) ** ef * (-h * torch.log(q))).sum(2, keepdim=True) * m
    focal = focal_map.sum() / (m.sum() * q.shape[1])
    axes = list(range(3, q.dim()))
    if batch:
        axes = [0] + axes
    qm, hm = q * m, h * m
    tp = (qm * hm).sum(axes)
    fn = ((1 - q) * hm).sum(axes)
    fp = (qm * (1 - h)).sum(axes)
    mti = (tp + smooth_nr) / (tp + delta * fn + (1 - delta) * fp + smooth_dr)
    et = torch.tensor([1 - gamma if sym else 1.0] + [1 - gamma] * (K - 1))
    ftl = ((1 - mti).clamp(min=0) ** et).mean()
    return lam * focal + (1 - lam) * ftl


def ref_code_binary(x, target, C, variant="asymmetric", delta=0.6, gamma=0.5, **kw):
    """The reference code's {sym,asym}_unified_focal_loss(weight=0.5) on two softmax
    channels, channels-first instead of channels-last."""
    eps = 1e-7
    y_pred = torch.softmax(x, 1).clamp(eps, 1 - eps)
    y_true = R.onehot(target, 2)
    axis = list(range(2, x.dim()))
    tp = (y_true * y_pred).sum(axis)
    fn = (y_true * (1 - y_pred)).sum(axis)
    fp = ((1 - y_true) * y_pred).sum(axis)
    dice_class = (tp + eps) / (tp + delta * fn + (1 - delta) * fp + eps)
    fore_dice = (1 - dice_class[:, 1]) * torch.pow(1 - dice_class[:, 1], -gamma)
    if variant == "symmetric":
        back_dice = (1 - dice_class[:, 0]) * torch.pow(1 - dice_class[:, 0], -gamma)
    else:
        back_dice = 1 - dice_class[:, 0]
    ftl = torch.stack([back_dice, fore_dice], -1).mean()
    ce = -y_true * torch.log(y_pred)
    back_ce = (1 - delta) * torch.pow(1 - y_pred[:, 0], gamma) * ce[:, 0]
    fore_ce = delta * (torch.pow(1 - y_pred[:, 1], gamma) * ce[:, 1] if variant == "symmetric" else ce[:, 1])
    fl = torch.stack([back_ce, fore_ce], -1).sum(-1).mean()
    weight = 0.5
    return weight * ftl + (1 - weight) * fl


def main():
    chk = slref.Check("unified_focal vs PyTorch")
    spec = lambda p: R.spec_of("unified_focal", p)
    variants = [
        {},
        {"variant": "symmetric", "_channels": (1, 2, 4)},
        {"lambda": 0.2, "delta": 0.7, "gamma": 0.2, "batch": True, "_channels": (4,), "_kinds": ("soft",)},
        {"variant": "symmetric", "lambda": 0.9, "gamma": 0.0, "_channels": (2,), "_kinds": ("labels",)},
        {"gamma": 0.9, "smooth_nr": 0.0, "smooth_dr": 1.0, "ignore_index": 3, "_ignore": 3, "_kinds": ("labels",),
         "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "variant": "symmetric", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "unified_focal", spec, ref_unified, variants)
    RR.edge_cases(chk, "unified_focal", "unified_focal", ref_unified)
    RR.edge_cases(chk, "unified_focal sym", "unified_focal(variant=symmetric)", ref_unified,
                  {"variant": "symmetric"})
    rng = np.random.default_rng(12)
    with R.tmpdir() as tmp:
        for variant in ("asymmetric", "symmetric"):
            for shape in ((6, 7), (4, 5, 6)):
                x, y = R.make_inputs(rng, 2, 2, shape, "labels")
                sp = "unified_focal(variant=%s,smooth_nr=1e-7,smooth_dr=1e-7)" % variant
                R.check_loss(chk, "unified_focal=reference-code", sp, ref_code_binary, {"variant": variant}, x, y, 2,
                             tmp, fd=False)
    RR.bad_spec(chk, "unified_focal(variant=both)", ["unified_focal", "variant", "symmetric|asymmetric"])
    RR.bad_spec(chk, "unified_focal(gamma=2)", ["unified_focal", "gamma"])
    RR.bad_spec(chk, "unified_focal(delta=-1)", ["unified_focal", "delta"])
    RR.bad_spec(chk, "unified_focal(lambda=1.5)", ["unified_focal", "lambda"])
    RR.bad_spec(chk, "unified_focal(smooth_nr=1,smooth_dr=0)", ["unified_focal", "smooth_nr"])
    RR.threads_identical(chk, "unified_focal")
    RR.threads_identical(chk, "unified_focal(variant=symmetric,activation=sigmoid)")
    chk.report()


if __name__ == "__main__":
    main()
