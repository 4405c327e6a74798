"""topk and ohem against PyTorch float64 references written from Wu et al. 2016 /
nnU-Net's TopKLoss (mean CE of the k % largest, ranked over the batch) and from
the OHEM threshold rule (true-class probability < thresh, at least min_kept).
Ties at the boundary: the reference takes them in index order with a stable
sort, the documented choice of the C code; a dedicated test checks it."""
import math

import numpy as np
import torch
import torch.nn.functional as F

import distref as D
import lossref as R
import slref


def per_element_ce(x, target, C, activation, ignore_index):
    """Flat CE per element (voxel for softmax, (channel, voxel) for sigmoid) in memory
    order, and the flat validity mask."""
    if activation == "auto":
        activation = "softmax" if C > 1 else "sigmoid"
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    if activation == "softmax" or (activation == "none" and C > 1):
        logp = torch.log_softmax(x, 1) if activation == "softmax" else torch.log(x)
        ce = -(g * logp).sum(1)
        return ce.reshape(-1), m[:, 0].reshape(-1) > 0, logp.exp(), g, True
    if activation == "none":
        ce = -(g * torch.log(x) + (1 - g) * torch.log1p(-x))
        p = x
    else:
        ce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
        p = torch.sigmoid(x)
    return ce.reshape(-1), (m.expand_as(ce) > 0).reshape(-1), p, g, False


def top_mean(ce, valid, K):
    """Mean of the K largest valid values; ties in index order (stable sort)."""
    v = ce[valid]
    order = torch.sort(-v.detach(), stable=True).indices
    return v[order[:K]].mean()


def ref_topk(x, target, C, activation="auto", k=10.0, ignore_index=None):
    ce, valid, _, _, _ = per_element_ce(x, target, C, activation, ignore_index)
    V = int(valid.sum())
    if V == 0:
        return (x * 0).sum()
    K = max(1, int(math.floor(V * k / 100.0)))
    return top_mean(ce, valid, K)


def ref_ohem(x, target, C, activation="auto", thresh=0.7, min_kept=0.1, ignore_index=None):
    ce, valid, p, g, softmax = per_element_ce(x, target, C, activation, ignore_index)
    V = int(valid.sum())
    if V == 0:
        return (x * 0).sum()
    if target.dtype.is_floating_point:
        ptrue = torch.exp(-ce)  # geometric mean Π p_c^g_c (or p^t (1-p)^(1-t))
    elif softmax:  # softmax on a label map: p of the label
        ptrue = (p * g).sum(1).reshape(-1)
    else:  # binary: p for positives, 1 - p for negatives
        ptrue = (p * g + (1 - p) * (1 - g)).reshape(-1)
    hard = (ptrue.detach() < thresh) & valid
    kmin = int(math.floor(V * min_kept))
    if int(hard.sum()) >= kmin:
        if int(hard.sum()) == 0:
            return (x * 0).sum()
        return ce[hard].mean()
    return top_mean(ce, valid, kmin)


def main():
    chk = slref.Check("topk/ohem vs PyTorch")
    fd = D.kw(fd_step=1e-4)
    R.run_matrix(chk, "topk", lambda p: R.spec_of("topk", p), ref_topk, [
        {},
        {"k": 33.3, "_channels": (1, 4)},
        {"k": 100.0, "_channels": (2,), "_kinds": ("soft",)},
        {"k": 0.5, "_channels": (4,), "_kinds": ("labels",)},
        {"ignore_index": 255, "_ignore": 255, "_kinds": ("labels",), "_channels": (1, 4)},
        {"_activation": "none", "_channels": (1, 4)},
        {"_activation": "sigmoid", "_channels": (2,), "k": 20.0},
    ], **fd)
    R.run_matrix(chk, "ohem", lambda p: R.spec_of("ohem", p), ref_ohem, [
        {},
        {"thresh": 0.3, "min_kept": 0.0, "_channels": (2,)},
        {"thresh": 0.9, "min_kept": 0.5, "_channels": (1, 4), "_kinds": ("labels",)},
        {"thresh": 0.05, "min_kept": 0.2, "_channels": (4,)},
        {"ignore_index": 255, "_ignore": 255, "_kinds": ("labels",), "_channels": (4,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("soft",)},
        {"_activation": "sigmoid", "_channels": (2,), "thresh": 0.5, "_kinds": ("labels",)},
    ], **fd)
    D.edge_cases(chk, "topk", "topk(ignore_index=9)", ref_topk, {"ignore_index": 9}, channels=(1, 3), **fd)
    D.edge_cases(chk, "ohem", "ohem(ignore_index=9)", ref_ohem, {"ignore_index": 9}, channels=(2,), **fd)

    with R.tmpdir() as tmp:
        # Ties: 20 identical voxels (same logits, same label); k=10 keeps 2 of them,
        # which by the documented rule are voxels 0 and 1 (lowest index first).
        x = np.zeros((1, 3, 4, 5), np.float32)
        x[0, 0], x[0, 1], x[0, 2] = 0.5, -0.25, 1.0
        y = np.ones((1, 4, 5), np.int64)
        v, g, err = R.run_cli("topk", x, y, tmp)
        chk.true("topk ties: %s" % err, err is None)
        if err is None:
            p = np.exp(x[0, :, 0, 0] - x[0, :, 0, 0].max())
            p /= p.sum()
            want = np.zeros_like(g)
            for s in (0, 1):
                want[0, :, 0, s] = (p - np.array([0, 1, 0])) / 2
            chk.close("topk ties value", v, -math.log(p[1]), rtol=1e-6)
            chk.close("topk ties grad", g, want, atol=1e-7)
        R.check_loss(chk, "topk ties", "topk", ref_topk, {}, x, y, 3, tmp, fd=False)
        # ohem with ties on the min_kept path: every voxel has p_true > thresh,
        # so the 25 % hardest are kept: the 5 lowest-index voxels.
        v, g, err = R.run_cli("ohem(thresh=0.05,min_kept=0.25)", x, y, tmp)
        chk.true("ohem ties: %s" % err, err is None)
        if err is None:
            chk.close("ohem ties grad support", (np.abs(g[0]).sum(0) > 0).reshape(-1).astype(float),
                      np.arange(20) < 5)
        R.check_loss(chk, "ohem ties", "ohem(thresh=0.05,min_kept=0.25)", ref_ohem,
                     {"thresh": 0.05, "min_kept": 0.25}, x, y, 3, tmp, fd=False)
        # k = 100 is ce; ohem with thresh = 1 is ce (every p < 1).
        rng = np.random.default_rng(2)
        for C in (1, 4):
            x, y = R.make_inputs(rng, 2, C, (6, 7), "labels")
            vc, gc, _ = R.run_cli("ce", x, y, tmp)
            for spec in ("topk(k=100)", "ohem(thresh=1)"):
                vt, gt, err = R.run_cli(spec, x, y, tmp)
                chk.true("%s vs ce: %s" % (spec, err), err is None)
                if err is None:
                    chk.close("topk==ce value", vt, vc, rtol=1e-6, atol=1e-9)  # ce may take the fused path
                    chk.close("topk==ce grad", gt, gc, rtol=1e-5, atol=1e-8)
        # ohem with nothing below the threshold and min_kept = 0: loss 0, no gradient.
        x = np.zeros((1, 2, 3, 3), np.float32)
        x[0, 1] = 8
        y = np.ones((1, 3, 3), np.int64)
        v, g, err = R.run_cli("ohem(min_kept=0)", x, y, tmp)
        chk.true("ohem none-hard: %s" % err, err is None and v == 0 and not np.any(g))

    D.bad_params(chk, "topk", [
        ("topk(k=0)", "k=0"),
        ("topk(k=101)", "out of range"),
        ("topk(k=-5)", "out of range"),
        ("topk(thresh=0.5)", "unknown key 'thresh'"),
        ("ohem(thresh=1.5)", "thresh"),
        ("ohem(min_kept=2)", "min_kept"),
        ("ohem(min_kept=-0.1)", "min_kept"),
        ("ohem(k=3)", "unknown key 'k'"),
    ])
    D.threads_identical(chk, "topk", ["topk", "ohem"])
    chk.report()


if __name__ == "__main__":
    main()
