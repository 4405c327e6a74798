"""pool_classes=true for dice, iou, logcosh_dice, tversky, focal_tversky, asym against float64 PyTorch references.
# sanitized: skip

The sums run over the voxels and over the included classes together (Keras code's reduce_sum(axis=[1, 2, 3]) on
NHWC; the survey's equations for Tversky and the asymmetric loss), giving one ratio per sample — one for the batch
with batch=true — and the loss is their mean. Written here from that definition; autograd and central differences
check the gradient. Also: combined with soft_label and a mask, C = 1 unchanged, class weights refused."""
import numpy as np
import torch

import lossref as R
import slref


def pooled(x, target, C, activation="auto", include_background=True, batch=False, soft_label=False, mask=None):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = torch.ones_like(p[:, :1]) if mask is None else mask
    if not include_background and C > 1:
        p, g = p[:, 1:], g[:, 1:]
    axes = list(range(1, x.dim()))
    if batch:
        axes = [0] + axes
    sp, sg = (m * p).sum(axes), (m * g).sum(axes)
    tp = (sp + sg - (m * (p - g).abs()).sum(axes)) / 2 if soft_label else (m * p * g).sum(axes)
    return tp, sp, sg


def ref(kind):
    def f(x, target, C, activation="auto", include_background=True, batch=False, soft_label=False, pool_classes=True,
          smooth_nr=1e-5, smooth_dr=1e-5, alpha=0.3, beta=0.7, gamma=0.75, mask=None):
        tp, sp, sg = pooled(x, target, C, activation, include_background, batch, soft_label, mask)
        if kind == "dice":
            l = 1 - (2 * tp + smooth_nr) / (sp + sg + smooth_dr)
        elif kind == "logcosh_dice":
            # Jadon's log cosh of the dice loss, which is the mean over groups
            return torch.log(torch.cosh((1 - (2 * tp + smooth_nr) / (sp + sg + smooth_dr)).mean()))
        elif kind == "iou":
            l = 1 - (tp + smooth_nr) / (sp + sg - tp + smooth_dr)
        elif kind in ("tversky", "focal_tversky"):
            ti = (tp + smooth_nr) / (tp + alpha * (sp - tp) + beta * (sg - tp) + smooth_dr)
            l = 1 - ti if kind == "tversky" else (1 - ti) ** gamma
        else:  # asym: 1 − F_β = 1 − (1 + β²)tp / (Σp + β²Σg)
            b2 = beta * beta
            l = 1 - ((1 + b2) * tp + smooth_nr) / (sp + b2 * sg + smooth_dr)
        return l.mean()
    return f


def main():
    chk = slref.Check("pool_classes vs PyTorch")
    variants = [
        {"pool_classes": True},
        {"pool_classes": True, "include_background": False, "_channels": (3,)},
        {"pool_classes": True, "batch": True},
        {"pool_classes": True, "_activation": "none", "_channels": (3,)},
    ]
    for name, extra in (("dice", {}), ("iou", {}), ("logcosh_dice", {}), ("tversky", {"alpha": 0.2, "beta": 0.8}),
                        ("focal_tversky", {"gamma": 1.5}), ("asym", {"beta": 1.5})):
        R.run_matrix(chk, name, lambda p, n=name: R.spec_of(n, p), ref(name), [dict(v, **extra) for v in variants],
                     channels=(1, 3), seed=13)
    rng = np.random.default_rng(14)
    with R.tmpdir() as tmp:
        x, y = R.make_inputs(rng, 2, 3, (6, 7), "soft")
        m = rng.uniform(0, 2, (2, 1, 6, 7)).astype(np.float32)
        R.check_loss(chk, "dice pooled+soft+mask", "dice(pool_classes=true,soft_label=true)", ref("dice"),
                     {"soft_label": True}, x, y, 3, tmp, mask=m, fd_step=1e-3)
        x, y = R.make_inputs(rng, 2, 1, (6, 7), "labels")
        a, ga, _ = R.run_lib("tversky(pool_classes=true)", x, y)
        b, gb, _ = R.run_lib("tversky", x, y)
        chk.close("one channel: pool_classes changes nothing", a, b, rtol=1e-7, group="identities")
        v, _, err = R.run_lib("dice(pool_classes=true,weight=[1,2,3])", *R.make_inputs(rng, 1, 3, (4, 4), "labels"))
        chk.true("class weights with pool_classes are refused (%s)" % err, v is None and "pool_classes" in err)
    chk.report()


if __name__ == "__main__":
    main()
