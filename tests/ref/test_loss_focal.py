"""focal against a PyTorch float64 reference written from Lin et al. 2017
(softmax form, mean over valid voxels) and from torchvision's documented
sigmoid_focal_loss semantics (per channel, mean over elements)."""
import numpy as np
import torch
import torch.nn.functional as F

import distref as D
import lossref as R
import slref


def alpha_vec(alpha, C, softmax):
    if alpha is None:
        return torch.ones(C)
    if isinstance(alpha, (list, tuple)):
        return torch.tensor([float(a) for a in alpha])
    a = float(alpha)
    if softmax:  # MONAI's reading of a scalar: background 1 - a, the others a
        return torch.tensor([1 - a] + [a] * (C - 1))
    return torch.full((C,), a)


def ref_focal(x, target, C, activation="auto", gamma=2.0, alpha=None, ignore_index=None):
    if activation == "auto":
        activation = "softmax" if C > 1 else "sigmoid"
    softmax = activation == "softmax" or (activation == "none" and C > 1)
    m = R.valid_mask(target, ignore_index, C)
    g = R.onehot(target, C)
    shape = (1, C) + (1,) * (x.dim() - 2)
    if softmax:
        logp = torch.log_softmax(x, 1) if activation == "softmax" else torch.log(x)
        q = -torch.expm1(logp)  # 1 - p, exact where p rounds to 1
        a = alpha_vec(alpha, C, True).view(shape)
        l = -(a * q ** gamma * g * logp * m).sum()
        return l / m.sum()
    # sigmoid / one probability channel: binary focal per element
    if activation == "none":
        p = x
        ce = -(g * torch.log(p) + (1 - g) * torch.log1p(-p))
    else:
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
    q = 1 - p if activation == "none" else torch.sigmoid(-x)
    l = ce * (p * (1 - g) + q * g) ** gamma  # (1 - p_t)^gamma, p_t = p g + (1 - p)(1 - g)
    if alpha is not None:
        a = alpha_vec(alpha, C, False).view(shape)
        l = l * (a * g + (1 - a) * (1 - g))
    return (l * m).sum() / (m.sum() * C)


def main():
    chk = slref.Check("focal vs PyTorch")
    spec = lambda p: R.spec_of("focal", p)
    variants = [
        {},
        {"gamma": 0.0, "_kinds": ("soft",)},
        {"gamma": 0.5, "_channels": (1, 4)},
        {"gamma": 3.5, "_channels": (1, 2), "_kinds": ("labels",)},
        {"alpha": 0.25, "_channels": (1, 4)},
        {"alpha": [0.1, 0.5, 2.0, 1.0], "_channels": (4,)},
        {"alpha": [0.3, 0.7], "_channels": (2,), "gamma": 1.0},
        {"ignore_index": 255, "_ignore": 255, "_kinds": ("labels",), "_channels": (1, 4)},
        {"_activation": "none", "_channels": (1, 2)},
        {"_activation": "none", "gamma": 0.5, "alpha": 0.4, "_channels": (1, 4)},
        {"_activation": "sigmoid", "_channels": (4,), "_kinds": ("soft", "labels")},
        {"_activation": "sigmoid", "alpha": [0.2, 0.9], "_channels": (2,), "gamma": 1.5},
    ]
    R.run_matrix(chk, "focal", spec, ref_focal, variants, **D.kw())

    D.edge_cases(chk, "focal", "focal(ignore_index=7)", ref_focal, {"ignore_index": 7}, **D.kw())
    D.edge_cases(chk, "focal", "focal(gamma=1,alpha=0.25)", ref_focal, {"gamma": 1.0, "alpha": 0.25},
                 channels=(1, 3), **D.kw())

    rng = np.random.default_rng(5)
    with R.tmpdir() as tmp:
        # gamma = 0 without alpha is ce exactly (value and gradient, same code path denominators)
        for C, kind, extra in ((1, "labels", ""), (3, "labels", ""), (3, "soft", ""), (4, "labels", ",ignore_index=2"),
                               (2, "soft", ",activation=sigmoid"), (3, "labels", ",activation=none")):
            act = "sigmoid" if "sigmoid" in extra else "none" if "none" in extra else "auto"
            x, y = R.make_inputs(rng, 2, C, (6, 7), kind, activation=act, ignore_index=2 if "ignore" in extra else None)
            vf, gf, ef = R.run_cli("focal(gamma=0%s)" % extra, x, y, tmp)
            vc, gc, ec = R.run_cli("ce(%s)" % extra.lstrip(",") if extra else "ce", x, y, tmp)
            chk.true("focal(gamma=0) vs ce C=%d %s%s: %s %s" % (C, kind, extra, ef, ec), ef is None and ec is None)
            if ef is None and ec is None:
                chk.close("focal==ce value", vf, vc, rtol=1e-6, atol=1e-9)  # ce may take the fused path (its own exp)
                chk.close("focal==ce grad", gf, gc, rtol=1e-5, atol=1e-8)
        # MONAI's softmax focal loss: the same elementwise terms, mean over (N, C, voxels) = ours / C
        for C in (2, 4):
            x, y = R.make_inputs(rng, 2, C, (5, 6, 4), "labels")
            v, _, err = R.run_cli("focal(gamma=2,alpha=0.25)", x, y, tmp)
            xt = torch.tensor(x.astype(np.float64))
            logp = torch.log_softmax(xt, 1)
            g = R.onehot(torch.tensor(y), C)
            afac = torch.tensor([0.75] + [0.25] * (C - 1)).view(1, C, 1, 1, 1)
            monai = (-afac * (1 - logp.exp()) ** 2 * g * logp).mean()
            chk.close("focal monai-softmax x C", v, float(monai) * C, rtol=1e-6, atol=1e-9)
        # Saturated logits: the logit gradient must stay finite and exact.
        x = np.array([[[[60.0, -60.0, 0.0]], [[-60.0, 60.0, 0.0]]]], np.float32)
        y = np.array([[[1, 1, 0]]], np.int64)
        R.check_loss(chk, "focal saturated", "focal", ref_focal, {}, x, y, 2, tmp, fd=False)
        # gamma < 1 needs (1 - p)^(gamma - 1) where 1 - p rounds to 0 in float64 too: the
        # reference's autograd gives NaN at +-60, so compare at +-12 and check +-60 by hand.
        R.check_loss(chk, "focal saturated", "focal(gamma=0.5)", ref_focal, {"gamma": 0.5}, x / 5, y, 2, tmp,
                     fd=False)
        v, g, err = R.run_cli("focal(gamma=0.5)", x, y, tmp)
        chk.true("focal gamma=0.5 at +-60: %s" % err, err is None and np.all(np.isfinite(g)))
        if err is None:
            chk.close("focal saturated-by-hand value", v, (120 + 0 + np.sqrt(0.5) * np.log(2)) / 3, rtol=1e-6)
            chk.close("focal saturated-by-hand grad", g[0, :, 0, :2], [[1 / 3, 0], [-1 / 3, 0]], atol=1e-7)
        xs = np.array([[[[40.0, -40.0, 30.0, 0.5]]]], np.float32)
        ys = np.array([[[1, 0, 0, 1]]], np.int64)
        R.check_loss(chk, "focal saturated", "focal(gamma=0.5,alpha=0.25)", ref_focal,
                     {"gamma": 0.5, "alpha": 0.25}, xs, ys, 1, tmp, fd=False)

    D.bad_params(chk, "focal", [
        ("focal(gamma=-1)", "gamma"),
        ("focal(alpha=1.5)", "alpha"),
        ("focal(alpha=[0.5,-1])", "alpha"),
        ("focal(alpha=[0.2,0.3,0.5])", "alpha has 3 values"),
        ("focal(gamma=true)", "gamma"),
        ("focal(ignore_index=1.5)", "ignore_index"),
        ("focal(beta=1)", "unknown key 'beta'"),
        ("focal(activation=relu)", "activation"),
    ])
    D.threads_identical(chk, "focal", ["focal", "focal(activation=sigmoid,alpha=0.25)"])
    chk.report()


if __name__ == "__main__":
    main()
