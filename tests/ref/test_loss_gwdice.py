"""gwdice against a PyTorch reference written from Fidon et al. 2017 / docs/losses-region.md:
per voxel δ = Σ_l Σ_k M[l][k] h_l q_k (the Wasserstein distance to a one-hot target),
TP = Σ a(1 − δ) with a = Σ_l M[l][0] h_l, AE = Σ δ, per sample (or pooled),
loss = mean of 1 − (2TP + s_nr)/(2TP + AE + s_dr). One sigmoid channel is the two classes
(1 − p, p). Also: equality with MONAI's GeneralizedWassersteinDiceLoss(weighting_mode=
"default") — α = 1 for every foreground class — when M[l][0] = 1, transcribed from its
documented algorithm."""
import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def dist(q, h, C, M):
    K = q.shape[1]
    Mt = torch.tensor(M, dtype=torch.float64).view(K, K) if M is not None else 1 - torch.eye(K)
    m = torch.einsum("nl...,lk->nk...", h, Mt)
    delta = (m * q).sum(1)
    a = torch.einsum("nl...,l->n...", h, Mt[:, 0])
    return delta, a


def ref_gwdice(x, target, C, activation="auto", batch=False, smooth_nr=1e-5, smooth_dr=1e-5, ignore_index=None,
               M=None):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    mask = R.valid_mask(target, ignore_index, C)[:, 0]
    if C == 1:
        p, g = torch.cat([1 - p, p], 1), torch.cat([1 - g, g], 1)
    delta, a = dist(p, g, C, M)
    axes = list(range(1, delta.dim()))
    if batch:
        axes = [0] + axes
    tp = (a * (1 - delta) * mask).sum(axes)
    ae = (delta * mask).sum(axes)
    return (1 - (2 * tp + smooth_nr) / (2 * tp + ae + smooth_dr)).mean()


def ref_monai_default(x, target, C, M=None, smooth_nr=1e-5, smooth_dr=1e-5, **kw):
    """MONAI GeneralizedWassersteinDiceLoss, weighting_mode="default", label-map target."""
    probs = torch.softmax(x, 1).flatten(2)
    y = target.flatten(1)
    Mt = torch.tensor(M, dtype=torch.float64).view(C, C) if M is not None else 1 - torch.eye(C)
    Mt = Mt / Mt.max()
    wmap = (Mt[y].permute(0, 2, 1) * probs).sum(1)          # [B, S]: M[y_i, k] p_ik summed over k
    alpha = torch.ones(x.shape[0], C)
    alpha[:, 0] = 0
    alpha_i = torch.gather(alpha, 1, y)
    tp = (alpha_i * (1 - wmap)).sum(1)
    denom = 2 * tp + wmap.sum(1)
    return (1 - (2 * tp + smooth_nr) / (denom + smooth_dr)).mean()


M3 = [0.0, 1.0, 0.6, 1.0, 0.0, 0.3, 0.6, 0.3, 0.0]          # α = (0, 1, 0.6): unequal background distances
M4 = [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.6, 0.2, 1.0, 0.6, 0.0, 0.5, 1.0, 0.2, 0.5, 0.0]


def main():
    chk = slref.Check("gwdice vs PyTorch")
    spec = lambda p: R.spec_of("gwdice", p)
    variants = [
        {"_channels": (1, 2, 4)},
        {"M": M3, "_channels": (3,)},
        {"M": M4, "batch": True, "_channels": (4,), "_kinds": ("soft",)},
        {"M": [0.0, 0.7, 0.7, 0.0], "smooth_nr": 0.0, "smooth_dr": 1.0, "_channels": (1, 2), "_kinds": ("labels",)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "M": M3, "_channels": (3,), "_kinds": ("labels",)},
        {"_activation": "none", "_channels": (1,), "_kinds": ("soft",)},
        {"_activation": "sigmoid", "_channels": (1,), "_kinds": ("labels",)},
    ]
    R.run_matrix(chk, "gwdice", spec, ref_gwdice, variants)
    RR.edge_cases(chk, "gwdice", "gwdice", ref_gwdice)
    rng = np.random.default_rng(9)
    with R.tmpdir() as tmp:
        for C, M in ((2, None), (4, None), (4, M4)):
            x, y = R.make_inputs(rng, 2, C, (6, 7), "labels")
            sp = "gwdice" if M is None else R.spec_of("gwdice", {"M": M})
            R.check_loss(chk, "gwdice=MONAI-default", sp, ref_monai_default, {"M": M}, x, y, C, tmp, fd=False)
    RR.bad_spec(chk, "gwdice(M=[0,1,1,0,0])", ["gwdice", "M", "5"])
    RR.bad_spec(chk, "gwdice(M=[0,1,1,1])", ["gwdice", "M[1][1]"])
    RR.bad_spec(chk, "gwdice(M=[0,1,0.5,0])", ["gwdice", "symmetric"])
    RR.bad_spec(chk, "gwdice(M=[0,2,2,0])", ["gwdice", "M", "range"])
    RR.bad_spec(chk, "gwdice(M=[0,0,0,0])", ["gwdice", "zeros"])
    RR.bad_spec(chk, "gwdice(M=[0,0,0,0,0,1,0,1,0])", ["gwdice", "background"])
    RR.bad_spec(chk, "gwdice(include_background=false)", ["gwdice", "include_background"])
    x = np.zeros((1, 3, 4, 4), np.float32)
    y = np.zeros((1, 4, 4), np.int64)
    RR.bad_run(chk, "gwdice(M=[0,1,1,0])", x, y, ["gwdice", "M", "4 numbers", "3 classes"])
    RR.bad_run(chk, "gwdice(activation=sigmoid)", x, y, ["gwdice", "softmax"])
    RR.threads_identical(chk, "gwdice")
    RR.threads_identical(chk, "gwdice(batch=true)")
    chk.report()


if __name__ == "__main__":
    main()
