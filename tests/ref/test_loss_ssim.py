"""ssim against a PyTorch reference written from Wang et al. 2004 and MONAI's SSIMLoss
conventions (docs/losses-morphology.md): per (sample, class) map,

    μ = K ⊛ ·, σx = K⊛x² − μx², σy = K⊛y² − μy², σxy = K⊛xy − μxμy,
    SSIM = (2μxμy + c1)(2σxy + c2)/((μx² + μy² + c1)(σx + σy + c2)), c1 = 0.01², c2 = 0.03²,

K the separable Gaussian window (MONAI's gaussian_1d), padding=valid (conv without padding,
MONAI) or zero (padding (k−1)/2); L = 1 − mean SSIM, mean over included groups of w_c·L.
SSIM is smooth, so the default finite-difference check applies.

The run_matrix shapes (7..11 voxels per axis) take windows 3 and 5; the default window 11 runs
on 12×13 and 11×12×11 images. A literal transcription of MONAI's computation (per-batch mean
over channels and positions, 1 − the batch mean) must give our default value."""
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


def gauss(k, sigma):
    d = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    w = torch.exp(-0.5 * (d / sigma) ** 2)
    return w / w.sum()


def kernel(nd, k, sigma):
    w = gauss(k, sigma)
    ker = w
    for _ in range(nd - 1):
        ker = ker.unsqueeze(-1) * w
    return ker.reshape((1, 1) + (k,) * nd)


def ref_ssim(x, target, C, activation="auto", include_background=True, weight=None, ignore_index=None,
             window=11, sigma=1.5, padding="valid"):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    p, g = p * m, g * m
    N, sp, nd = x.shape[0], tuple(x.shape[2:]), x.dim() - 2
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    K = kernel(nd, window, sigma)
    pad = (window - 1) // 2 if padding == "zero" else 0
    a = p.reshape((N * C, 1) + sp)
    b = g.reshape((N * C, 1) + sp)
    f = lambda v: conv(v, K, padding=pad)
    ux, uy = f(a), f(b)
    sx, sy, sxy = f(a * a) - ux * ux, f(b * b) - uy * uy, f(a * b) - ux * uy
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = (2 * ux * uy + c1) * (2 * sxy + c2) / ((ux ** 2 + uy ** 2 + c1) * (sx + sy + c2))
    l = 1 - s.reshape(N, C, -1).mean(-1)
    return RR.mean_groups(l, C, weight, include_background)


def monai_literal(y_pred, y, nd):
    """MONAI SSIMLoss(spatial_dims=nd) with its defaults as documented: Gaussian 11 / 1.5,
    k1 0.01, k2 0.03, data range 1, grouped convolution without padding, per-sample mean
    over channels and positions, loss 1 − the mean over the batch."""
    Cn = y_pred.shape[1]
    ker = kernel(nd, 11, 1.5).expand((Cn, 1) + (11,) * nd)
    conv = {2: F.conv2d, 3: F.conv3d}[nd]
    f = lambda v: conv(v, ker, groups=Cn)
    mx, my = f(y_pred), f(y)
    sx, sy, sxy = f(y_pred * y_pred) - mx * mx, f(y * y) - my * my, f(y_pred * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim = ((2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)) * (2 * sxy + c2) / (sx + sy + c2)
    per_batch = ssim.view(ssim.shape[0], -1).mean(1, keepdim=True)
    return (1 - per_batch).mean()


def big_shapes(chk, tmp, params, spec, channels=CHANNELS, kinds=("labels", "soft"), seed=1, **kw):
    rng = np.random.default_rng(seed)
    shapes = [(2, (12, 13)), (1, (11, 12, 11))] if not slref.QUICK else [(1, (12, 11))]
    for C in channels:
        for kind in kinds:
            for N, sp in shapes:
                act = params.get("activation", "auto")
                x, y = R.make_inputs(rng, N, C, sp, kind, activation=act)
                R.check_loss(chk, "ssim", spec, ref_ssim, params, x, y, C, tmp, **kw)


def monai_equality(chk, tmp):
    rng = np.random.default_rng(2)
    for shape in ((2, 3, 13, 12), (2, 2, 11, 12, 13)):
        z = rng.normal(0, 2, shape)
        pr = (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32)
        y = rng.integers(0, shape[1], (shape[0],) + shape[2:]).astype(np.int64)
        want = float(monai_literal(torch.tensor(pr.astype(np.float64)), R.onehot(torch.tensor(y), shape[1]),
                                   len(shape) - 2))
        v, _, err = R.run_cli("ssim(activation=none)", pr, y, tmp)
        chk.true("ssim MONAI run: %s" % err, err is None)
        if err is None:
            chk.close("ssim = MONAI SSIMLoss %s" % (shape,), v, want, rtol=1e-6, atol=1e-9, group="ssim MONAI")


def edge_cases(chk, tmp):
    rng = np.random.default_rng(4)
    p5 = {"window": 5}
    s5 = "ssim(window=5)"
    x = rng.normal(0, 2, (2, 3, 8, 9)).astype(np.float32)
    y = rng.integers(0, 3, (2, 8, 9)).astype(np.int64)
    y[y == 1] = 2
    R.check_loss(chk, "ssim empty-class", s5, ref_ssim, p5, x, y, 3, tmp)
    y = np.ones((2, 8, 9), np.int64)
    R.check_loss(chk, "ssim all-foreground", s5, ref_ssim, p5, x[:, :1], y, 1, tmp)
    R.check_loss(chk, "ssim all-foreground", s5, ref_ssim, p5, x[:, :2], y, 2, tmp)
    y = np.zeros((1, 5, 6, 7), np.int64)
    y[0, 2, 3, 3] = 1
    x3 = rng.normal(0, 2, (1, 2, 5, 6, 7)).astype(np.float32)
    R.check_loss(chk, "ssim single-voxel", "ssim(window=3)", ref_ssim, {"window": 3}, x3, y, 2, tmp)
    y = np.ones((1, 1, 1), np.int64)
    R.check_loss(chk, "ssim one-voxel-image", "ssim(window=1)", ref_ssim, {"window": 1}, x[:1, :2, :1, :1], y, 2,
                 tmp)
    R.check_loss(chk, "ssim one-voxel-image", "ssim(padding=zero)", ref_ssim, {"padding": "zero"},
                 x[:1, :2, :1, :1], y, 2, tmp)
    # identical maps: SSIM 1, loss 0
    y = rng.integers(0, 2, (1, 12, 12)).astype(np.int64)
    xp = np.stack([(y == 0), (y == 1)], 1).astype(np.float32)
    v, _, err = R.run_cli("ssim(activation=none)", xp, y, tmp)
    chk.true("ssim identical maps: loss %s (%s)" % (v, err), err is None and abs(v) < 1e-12)
    # the window must fit with padding=valid
    RR.bad_run(chk, "ssim", np.zeros((1, 2, 9, 12), np.float32), np.zeros((1, 9, 12), np.int64),
               ["ssim", "window 11", "axis 0", "extent 9", "padding=zero"])


def main():
    chk = slref.Check("ssim vs PyTorch")
    spec = lambda p: R.spec_of("ssim", p)
    variants = [
        {"window": 3},
        {"window": 5, "sigma": 0.8, "padding": "zero"},
        {"window": 4, "sigma": 2.0, "_channels": (2,)},
        {"window": 7, "padding": "zero"},
        {"window": 11, "padding": "zero", "_channels": (2,)},
        {"window": 3, "include_background": False, "_channels": (2, 3)},
        {"window": 3, "weight": [0.5, 1.0, 2.0], "_channels": (3,)},
        {"window": 3, "ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"window": 5, "padding": "zero", "_activation": "none", "_channels": (1, 3)},
        {"window": 3, "_activation": "sigmoid", "_channels": (2,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "ssim", spec, ref_ssim, variants, channels=CHANNELS, fd=not slref.QUICK)
    with R.tmpdir() as tmp:
        big_shapes(chk, tmp, {}, "ssim")
        big_shapes(chk, tmp, {"include_background": False}, "ssim(include_background=false)", channels=(2,),
                   kinds=("labels",))
        monai_equality(chk, tmp)
        edge_cases(chk, tmp)
    RR.bad_spec(chk, "ssim(window=0)", ["ssim", "window"])
    RR.bad_spec(chk, "ssim(window=4,padding=zero)", ["ssim", "odd", "window=4"])
    RR.bad_spec(chk, "ssim(sigma=0)", ["ssim", "sigma"])
    RR.bad_spec(chk, "ssim(padding=same)", ["ssim", "padding", "valid|zero"])
    RR.bad_spec(chk, "ssim(batch=true)", ["ssim", "batch"])
    chk.report()


if __name__ == "__main__":
    main()
