"""edge_dice against a PyTorch reference written from docs/losses-morphology.md (seed "Dice Loss实战"
2.2.2, fixed): per (sample, class) group, or per class with batch=true,

    L = α·(1 − D(p, g)) + (1 − α)·(1 − D(E(p), E(g))),  E(x) = |Λ ⊛ x| / n,

Λ the 3^d box with neighbours 1 and centre −n (n = 8 in 2-D, 26 in 3-D), zero padding (a
conv with padding 1) or replicate padding (F.pad(mode="replicate")); Dice with MONAI's
smoothing 1e-5 and mean over included groups of w_c·L. |·| has the subgradient sign(0) = 0,
which is what torch.abs back-propagates.

The boundary handling is pinned by hand-computed numbers on a 3×3 image, and edge_dice with
alpha=1 must equal dice."""
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


def edge_map(x, pad):
    """E(x) for x (M, 1, *spatial)."""
    nd = x.dim() - 2
    n = 3 ** nd - 1
    k = torch.ones((1, 1) + (3,) * nd)
    k[(0, 0) + (1,) * nd] = -n
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    if pad == "replicate":
        r = conv(F.pad(x, [1] * (2 * nd), mode="replicate"), k)
    else:
        r = conv(x, k, padding=1)
    return r.abs() / n


def ref_edge_dice(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
                  smooth_dr=1e-5, weight=None, ignore_index=None, alpha=0.7, padding="zero"):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    p, g = p * m, g * m
    N = x.shape[0]
    sp = tuple(x.shape[2:])
    ep = edge_map(p.reshape((N * C, 1) + sp), padding).reshape(p.shape) * m
    eg = edge_map(g.reshape((N * C, 1) + sp), padding).reshape(g.shape) * m
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes

    def dice(a, b):
        return (2 * (a * b).sum(axes) + smooth_nr) / (a.sum(axes) + b.sum(axes) + smooth_dr)

    l = alpha * (1 - dice(p, g)) + (1 - alpha) * (1 - dice(ep, eg))
    return RR.mean_groups(l, C, weight, include_background)


# |Λ ⊛ p| has a kink wherever a response crosses 0, and random probabilities put such
# crossings within a step of 1e-2 of many inputs; a step of 1e-3 keeps the difference
# quotient on one side of them (or within 1 % when it straddles one).
FD = dict(fd_step=1e-3, fd_rel=1e-2)


def hand_numbers(chk, tmp):
    """3×3 image, target all foreground, p = 0.5 everywhere (activation=none), alpha=0.
    Zero padding: the response is −5p at a corner (3 neighbours inside), −3p on an edge
    (5 inside), 0 at the centre, so E(p) = p·(5/8, 3/8, 0), E(g) = (5/8, 3/8, 0) and
    D = (2·p·(4·25 + 4·9)/64 + s)/(4p + 4 + s) = (2.125 + s)/(6 + s) at p = 0.5.
    Replicate padding: a constant image has no edge anywhere, D = s/s = 1, loss 0."""
    s = 1e-5
    x = np.full((1, 1, 3, 3), 0.5, np.float32)
    y = np.ones((1, 3, 3), np.int64)
    want = 1 - (2.125 + s) / (6 + s)
    v, _, err = R.run_cli("edge_dice(alpha=0,activation=none)", x, y, tmp)
    chk.true("edge_dice hand zero: %s" % err, err is None)
    if err is None:
        chk.close("edge_dice hand-computed, zero padding", v, want, rtol=1e-6, atol=1e-9, group="edge_dice hand")
    v, _, err = R.run_cli("edge_dice(alpha=0,activation=none,padding=replicate)", x, y, tmp)
    chk.true("edge_dice hand replicate: %s" % err, err is None)
    if err is None:
        chk.close("edge_dice hand-computed, replicate padding", v, 0.0, rtol=0, atol=1e-9, group="edge_dice hand")
    # gradient at the zero responses (the centre of the constant image, every voxel with
    # replicate): sign(0) = 0. No finite differences here: |·| has a kink at these points.
    for spec, prm in (("edge_dice(alpha=0,activation=none)", {}),
                      ("edge_dice(alpha=0.5,activation=none,padding=replicate)", {"padding": "replicate",
                                                                                  "alpha": 0.5})):
        R.check_loss(chk, "edge_dice sign(0)", spec, ref_edge_dice, dict(prm, activation="none",
                                                                           alpha=prm.get("alpha", 0.0)),
                     x, y, 1, tmp, fd=False)


def edge_cases(chk, tmp):
    rng = np.random.default_rng(5)
    for pad in ("zero", "replicate"):
        spec = "edge_dice" if pad == "zero" else "edge_dice(padding=replicate)"
        prm = {} if pad == "zero" else {"padding": "replicate"}
        x = rng.normal(0, 2, (2, 3, 7, 8)).astype(np.float32)
        y = rng.integers(0, 3, (2, 7, 8)).astype(np.int64)
        y[y == 2] = 0
        R.check_loss(chk, "edge_dice empty-class", spec, ref_edge_dice, prm, x, y, 3, tmp, **FD)
        y = np.ones((2, 7, 8), np.int64)
        R.check_loss(chk, "edge_dice all-foreground", spec, ref_edge_dice, prm, x[:, :1], y, 1, tmp, **FD)
        R.check_loss(chk, "edge_dice all-foreground", spec, ref_edge_dice, prm, x[:, :2], y, 2, tmp, **FD)
        y = np.zeros((1, 5, 6, 7), np.int64)
        y[0, 2, 3, 3] = 1
        x3 = rng.normal(0, 2, (1, 2, 5, 6, 7)).astype(np.float32)
        R.check_loss(chk, "edge_dice single-voxel", spec, ref_edge_dice, prm, x3, y, 2, tmp, **FD)
        y = np.ones((1, 1, 1), np.int64)
        R.check_loss(chk, "edge_dice one-voxel-image", spec, ref_edge_dice, prm, x[:1, :2, :1, :1], y, 2, tmp, **FD)


def main():
    chk = slref.Check("edge_dice vs PyTorch")
    spec = lambda p: R.spec_of("edge_dice", p)
    variants = [
        {},
        {"padding": "replicate"},
        {"alpha": 0.2, "batch": True},
        {"alpha": 0.0, "padding": "replicate", "_channels": (2,)},
        {"include_background": False, "_channels": (2, 3)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "_channels": (3,)},
        {"weight": [0.5, 1.0, 2.0], "_channels": (3,)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 3)},
        {"_activation": "sigmoid", "_channels": (2,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "edge_dice", spec, ref_edge_dice, variants, channels=CHANNELS, fd=not slref.QUICK, **FD)
    with R.tmpdir() as tmp:
        hand_numbers(chk, tmp)
        edge_cases(chk, tmp)
    RR.same_value(chk, "edge_dice(alpha=1) = dice", "edge_dice(alpha=1)", "dice")
    RR.same_value(chk, "edge_dice(alpha=1,batch=true) = dice(batch=true)", "edge_dice(alpha=1,batch=true)",
                  "dice(batch=true)")
    RR.bad_spec(chk, "edge_dice(alpha=1.5)", ["edge_dice", "alpha"])
    RR.bad_spec(chk, "edge_dice(padding=reflect)", ["edge_dice", "padding", "zero|replicate"])
    RR.bad_spec(chk, "edge_dice(squared=true)", ["edge_dice", "squared"])
    chk.report()


if __name__ == "__main__":
    main()
