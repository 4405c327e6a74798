"""soft_label=true for dice, iou, tversky, focal_tversky against MONAI's soft-label formula, transcribed here in
float64 PyTorch (monai.losses.utils.compute_tp_fp_fn, ord = 1, the Dice semimetric of Wang & Blaschko 2023):

    pred_o = ||p||_1,  ground_o = ||g||_1,  difference = ||p − g||_1      (sums over each group's voxels)
    tp = (pred_o + ground_o − difference) / 2,  fp = pred_o − tp,  fn = ground_o − tp

then Dice = (2tp + s_nr)/(2tp + fp + fn + s_dr), Jaccard = (tp + s_nr)/(tp + fp + fn + s_dr), Tversky =
(tp + s_nr)/(tp + α fp + β fn + s_dr), the losses as without soft_label. With a hard target tp is Σ p·g, so the
soft_label value equals the plain one; with a soft target the loss is 0 where p equals the target (checked).
Autograd and a central difference check the gradients (which involve sign(p − g)).
# sanitized: skip
"""
import numpy as np
import torch

import lossref as R
import slref


def tp_fp_fn(x, target, C, activation, batch, mask=None):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = torch.ones_like(p[:, :1]) if mask is None else mask
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    pred_o = (m * p.abs()).sum(axes)
    ground_o = (m * g.abs()).sum(axes)
    difference = (m * (p - g).abs()).sum(axes)
    tp = (pred_o + ground_o - difference) / 2
    return tp, pred_o - tp, ground_o - tp


def reduce(l, C, include_background):
    if not include_background and C > 1:
        l = l[..., 1:]
    return l.mean()


def ref_dice(x, target, C, activation="auto", batch=False, include_background=True, soft_label=True,
             smooth_nr=1e-5, smooth_dr=1e-5, mask=None):
    tp, fp, fn = tp_fp_fn(x, target, C, activation, batch, mask)
    return reduce(1 - (2 * tp + smooth_nr) / (2 * tp + fp + fn + smooth_dr), C, include_background)


def ref_iou(x, target, C, activation="auto", batch=False, include_background=True, soft_label=True,
            smooth_nr=1e-5, smooth_dr=1e-5, mask=None):
    tp, fp, fn = tp_fp_fn(x, target, C, activation, batch, mask)
    return reduce(1 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr), C, include_background)


def ref_tversky(x, target, C, activation="auto", batch=False, include_background=True, soft_label=True,
                alpha=0.3, beta=0.7, smooth_nr=1e-5, smooth_dr=1e-5, gamma=None, mask=None):
    tp, fp, fn = tp_fp_fn(x, target, C, activation, batch, mask)
    ti = (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    return reduce(1 - ti if gamma is None else (1 - ti) ** gamma, C, include_background)


def ref_focal_tversky(x, target, C, gamma=0.75, **kw):
    return ref_tversky(x, target, C, gamma=gamma, **kw)


def main():
    chk = slref.Check("soft_label vs MONAI compute_tp_fp_fn (PyTorch)")
    base = {"soft_label": True}
    variants = [
        dict(base),
        dict(base, batch=True, include_background=False, _channels=(3,)),
        dict(base, _activation="none", _channels=(1, 3)),
        dict(base, _activation="sigmoid", _channels=(3,), _kinds=("soft",)),
    ]
    for name, ref, extra in (("dice", ref_dice, {}), ("iou", ref_iou, {}),
                             ("tversky", ref_tversky, {"alpha": 0.4, "beta": 0.6}),
                             ("focal_tversky", ref_focal_tversky, {"gamma": 1.5})):
        R.run_matrix(chk, name, lambda p, n=name: R.spec_of(n, p), ref, [dict(v, **extra) for v in variants],
                     channels=(1, 3), seed=5, fd_step=1e-3)

    rng = np.random.default_rng(9)
    with R.tmpdir() as tmp:
        # Combined with a voxel mask (weights multiply every sum, |p − g| included).
        for C in (1, 3):
            x, y = R.make_inputs(rng, 2, C, (6, 7), "soft")
            m = rng.uniform(0, 2, (2, 1, 6, 7)).astype(np.float32)
            R.check_loss(chk, "dice masked", "dice(soft_label=true)", ref_dice, {}, x, y, C, tmp, mask=m, fd_step=1e-3)
        # The point of soft_label: p equal to a soft target is a perfect score, not ~0.1.
        for C in (1, 4):
            _, y = R.make_inputs(rng, 2, C, (9, 10), "soft", activation="none")
            for name in ("dice", "iou", "tversky", "focal_tversky"):
                v, _, err = R.run_lib("%s(activation=none,soft_label=true)" % name, y, y)
                plain, _, _ = R.run_lib("%s(activation=none)" % name, y, y)
                chk.true("%s(soft_label=true) at p = g (C=%d) is 0: %s (%s)" % (name, C, v, err),
                         err is None and abs(v) < 1e-6)
                chk.true("%s without soft_label at p = g is not 0 (%s)" % (name, plain), plain is not None and plain > 0.01)
        # Hard targets: soft_label changes nothing (Σ|p − g| = Σp + Σg − 2Σp·g for g in {0, 1}).
        x, y = R.make_inputs(rng, 2, 4, (7, 8), "labels")
        for name in ("dice", "iou", "tversky", "focal_tversky"):
            a, ga, _ = R.run_lib("%s(soft_label=true)" % name, x, y)
            b, gb, _ = R.run_lib(name, x, y)
            chk.close("%s soft_label == plain on a label map (value)" % name, a, b, rtol=1e-6, atol=1e-7, group="hard")
            chk.close("%s soft_label == plain on a label map (grad)" % name, ga, gb, rtol=1e-4, atol=1e-7, group="hard")
    chk.report()


if __name__ == "__main__":
    main()
