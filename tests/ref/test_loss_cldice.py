"""cldice against a PyTorch reference written from Shit et al. 2021 (soft skeleton, Algorithm 1)
and MONAI's SoftclDiceLoss conventions (docs/losses-morphology.md):

    erode = min over the cross (voxel + face neighbours), dilate = max over the 3^d box, both
    over the neighbours inside the image; skel = relu(x − open x), then `iters` times
    x = erode x, δ = relu(x − open x), skel += relu(δ − skel·δ);
    Tprec = (Σ S_p g + s_nr)/(Σ S_p + s_dr), Tsens = (Σ S_g p + s_nr)/(Σ S_g + s_dr),
    L = 1 − 2 Tprec Tsens/(Tprec + Tsens) per (sample, class) group (batch=true: per class;
    pool_classes=true: the included classes' sums added first), mean over included groups.

The reference builds erode/dilate as the min/max over a stack of shifted copies in ascending
linear offset, so torch.min/max(dim) back-propagate to the first voxel among ties: the
documented subgradient. A second, literal transcription of MONAI's max-pool formulation must
give the same numbers as cldice(include_background=false,batch=true,pool_classes=true).

Finite differences: min/max switch their arg-voxel wherever two neighbouring probabilities
cross, so the loss is piecewise smooth with kinks near random inputs; a step of 1e-4 and a 2 %
tolerance keep the difference quotient off them (the harness adds the float32 floor)."""
import itertools

import numpy as np
import torch
import torch.nn.functional as F

import lossref as R
import regionref as RR
import slref

# The sanitized pass (SL_QUICK=1, every evaluation through the CLI) runs C = 1 and 3 only
# (C = 2 takes the same code paths as 3) and leaves the finite differences of the matrix to
# the release pass: it is there to run every code path under ASan/UBSan, not to re-measure.
CHANNELS = (1, 3) if slref.QUICK else (1, 2, 3)


def shifted_stack(x, offsets, fill):
    """x (M, *sp); for each offset d, the map y[i] = x[i + d] (fill outside)."""
    nd = x.dim() - 1
    xp = F.pad(x.unsqueeze(1), [1] * (2 * nd), value=fill).squeeze(1)
    outs = []
    for d in offsets:
        sl = [slice(None)] + [slice(1 + di, 1 + di + n) for di, n in zip(d, x.shape[1:])]
        outs.append(xp[tuple(sl)])
    return torch.stack(outs)


def cross_offsets(nd):
    neg = [tuple(-1 if a == b else 0 for b in range(nd)) for a in range(nd)]
    pos = [tuple(1 if a == b else 0 for b in range(nd)) for a in reversed(range(nd))]
    return neg + [(0,) * nd] + pos


def erode(x):
    return shifted_stack(x, cross_offsets(x.dim() - 1), float("inf")).min(0).values


def dilate(x):
    offs = list(itertools.product((-1, 0, 1), repeat=x.dim() - 1))
    return shifted_stack(x, offs, float("-inf")).max(0).values


def soft_skel(x, iters):
    skel = F.relu(x - dilate(erode(x)))
    for _ in range(iters):
        x = erode(x)
        delta = F.relu(x - dilate(erode(x)))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def ref_cldice(x, target, C, activation="auto", include_background=True, batch=False, pool_classes=False,
               smooth_nr=1.0, smooth_dr=1.0, weight=None, ignore_index=None, iters=3):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    p, g = p * m, g * m
    N, sp = x.shape[0], tuple(x.shape[2:])
    sk_p = soft_skel(p.reshape((N * C,) + sp), iters).reshape(p.shape)
    sk_g = soft_skel(g.reshape((N * C,) + sp), iters).reshape(g.shape)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    sums = [(sk_p * g).sum(axes), sk_p.sum(axes), (sk_g * p).sum(axes), sk_g.sum(axes)]
    first = 1 if (not include_background and C > 1) else 0
    if pool_classes:
        sums = [s[..., first:].sum(-1) for s in sums]
    tprec = (sums[0] + smooth_nr) / (sums[1] + smooth_dr)
    tsens = (sums[2] + smooth_nr) / (sums[3] + smooth_dr)
    l = 1 - 2 * tprec * tsens / (tprec + tsens)
    if pool_classes:
        return l.mean()
    return RR.mean_groups(l, C, weight, include_background)


def monai_literal(y_true, y_pred, iters=3, smooth=1.0):
    """MONAI SoftclDiceLoss as its documentation and source describe it (2-D and 3-D):
    erosion = min of the 1-D min-pools along each axis, dilation = 3^d max-pool."""
    nd = y_pred.dim() - 2

    def er(img):
        pool = F.max_pool2d if nd == 2 else F.max_pool3d
        outs = []
        for a in range(nd):
            k = tuple(3 if b == a else 1 for b in range(nd))
            pad = tuple(1 if b == a else 0 for b in range(nd))
            outs.append(-pool(-img, k, (1,) * nd, pad))
        r = outs[0]
        for o in outs[1:]:
            r = torch.min(r, o)
        return r

    def di(img):
        pool = F.max_pool2d if nd == 2 else F.max_pool3d
        return pool(img, (3,) * nd, (1,) * nd, (1,) * nd)

    def skel(img):
        s = F.relu(img - di(er(img)))
        for _ in range(iters):
            img = er(img)
            d = F.relu(img - di(er(img)))
            s = s + F.relu(d - s * d)
        return s

    sp, st = skel(y_pred), skel(y_true)
    tprec = ((sp * y_true)[:, 1:].sum() + smooth) / (sp[:, 1:].sum() + smooth)
    tsens = ((st * y_pred)[:, 1:].sum() + smooth) / (st[:, 1:].sum() + smooth)
    return 1 - 2 * tprec * tsens / (tprec + tsens)


FD = dict(fd_step=1e-4, fd_rel=2e-2)


def monai_equality(chk, tmp):
    rng = np.random.default_rng(8)
    spec = "cldice(activation=none,include_background=false,batch=true,pool_classes=true)"
    for shape in ((2, 3, 12, 13), (2, 2, 7, 8, 9)):
        z = rng.normal(0, 2, shape)
        pr = (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32)
        y = rng.integers(0, shape[1], (shape[0],) + shape[2:]).astype(np.int64)
        xt = torch.tensor(pr.astype(np.float64), requires_grad=True)
        want = monai_literal(R.onehot(torch.tensor(y), shape[1]), xt)
        want.backward()
        v, gr, err = R.run_cli(spec, pr, y, tmp)
        chk.true("cldice MONAI run: %s" % err, err is None)
        if err is None:
            chk.close("cldice = MONAI SoftclDiceLoss %s value" % (shape,), v, float(want), rtol=1e-6, atol=1e-9,
                      group="cldice MONAI value")
            chk.close("cldice = MONAI SoftclDiceLoss %s grad" % (shape,), gr, xt.grad.numpy(), rtol=1e-4,
                      atol=1e-5 * float(np.abs(xt.grad.numpy()).max()), group="cldice MONAI grad")


def edge_cases(chk, tmp):
    rng = np.random.default_rng(6)
    x = rng.normal(0, 2, (2, 3, 8, 9)).astype(np.float32)
    y = rng.integers(0, 3, (2, 8, 9)).astype(np.int64)
    y[y == 2] = 1
    R.check_loss(chk, "cldice empty-class", "cldice", ref_cldice, {}, x, y, 3, tmp, **FD)
    y = np.ones((2, 8, 9), np.int64)
    R.check_loss(chk, "cldice all-foreground", "cldice", ref_cldice, {}, x[:, :1], y, 1, tmp, **FD)
    R.check_loss(chk, "cldice all-foreground", "cldice", ref_cldice, {}, x[:, :2], y, 2, tmp, **FD)
    y = np.zeros((1, 5, 6, 7), np.int64)
    y[0, 2, 3, 3] = 1
    x3 = rng.normal(0, 2, (1, 2, 5, 6, 7)).astype(np.float32)
    R.check_loss(chk, "cldice single-voxel", "cldice", ref_cldice, {}, x3, y, 2, tmp, **FD)
    y = np.ones((1, 1, 1), np.int64)
    R.check_loss(chk, "cldice one-voxel-image", "cldice", ref_cldice, {}, x[:1, :2, :1, :1], y, 2, tmp, **FD)
    # a thin line: its skeleton is itself, so a perfect prediction gives clDice 1 (loss 0)
    y = np.zeros((1, 9, 9), np.int64)
    y[0, 4, 1:8] = 1
    xp = np.stack([(y == 0), (y == 1)], 1).astype(np.float32)
    v, _, err = R.run_cli("cldice(activation=none,include_background=false)", xp, y, tmp)
    chk.true("cldice perfect line: loss %s (%s)" % (v, err), err is None and abs(v) < 1e-12)


def main():
    chk = slref.Check("cldice vs PyTorch")
    spec = lambda p: R.spec_of("cldice", p)
    variants = [
        {},
        {"iters": 0},
        {"iters": 5, "batch": True},
        {"include_background": False, "_channels": (2, 3)},
        {"pool_classes": True, "include_background": False, "batch": True, "_channels": (2, 3)},
        {"pool_classes": True, "_channels": (1, 3)},
        {"smooth_nr": 0.0, "smooth_dr": 1e-3, "_channels": (2,)},
        {"weight": [0.5, 1.0, 2.0], "_channels": (3,)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 3)},
        {"_activation": "sigmoid", "_channels": (2,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "cldice", spec, ref_cldice, variants, channels=CHANNELS, fd=not slref.QUICK, **FD)
    with R.tmpdir() as tmp:
        monai_equality(chk, tmp)
        edge_cases(chk, tmp)
    RR.bad_spec(chk, "cldice(iters=-1)", ["cldice", "iters"])
    RR.bad_spec(chk, "cldice(smooth_dr=0)", ["cldice", "smooth_dr"])
    RR.bad_spec(chk, "cldice(pool_classes=true,weight=[1,2])", ["cldice", "weight", "pool_classes"])
    RR.bad_spec(chk, "cldice(alpha=0.5)", ["cldice", "alpha"])
    chk.report()


if __name__ == "__main__":
    main()
