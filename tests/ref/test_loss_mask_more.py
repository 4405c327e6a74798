"""Voxel masks for the losses of issue 16's second round: dpce, boundary_aware, lovasz, blob, ssim, edge_dice,
hausdorff_er, cldice, against float64 PyTorch references written from docs/losses.md#masks.
# sanitized: skip

Each reference below is the loss's own reference (tests/ref/test_loss_<name>.py) with the mask put in where the
definition says, not a transcription of the C code:
  dpce            Σ m·w·CE / (K·Σ m)            (w = 1 + λ(1 − d/d_max), maps from the whole target)
  boundary_aware  Σ m·w·CE / Σ m·w
  lovasz          set counts weighted: I_k = Σ m·g − Σ_{j≤k} m·g_π(j), U_k = Σ m·g + Σ_{j≤k} m·(1 − g_π(j))
  blob            per blob: 2 Σ m·p·[k] / (Σ m·p·(bg ∪ k) + Σ m·[k]); a blob of weight 0 leaves the mean
  ssim            1 − Σ_o ω_o SSIM_o / Σ_o ω_o, ω_o = m at the centre of window o
  edge_dice       the six sums weighted by m (edge maps of the whole maps)
  hausdorff_er    Σ m·Σ_k k^α b_k / Σ m (erosions of the whole map)
  cldice          Σ m·S_p·g, Σ m·S_p, Σ m·S_g·p, Σ m·S_g (skeletons of the whole maps)
Autograd gives the reference gradients; a central difference checks the C gradient (release pass).
Also: a mask of ones equals no mask; lovasz with a binary mask equals its ignore_index on the same voxels;
an integer weight w on a voxel equals w copies of it for lovasz (the weighted Jaccard extension)."""
import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

import boundaryref as B
import lossref as R
import regionref as RR
import slref
from test_loss_cldice import soft_skel
from test_loss_edge_dice import edge_map
from test_loss_hausdorff_er import cross_kernel
import test_loss_mask as M
from test_loss_mask import draw_mask
from test_loss_ssim import kernel

# ---------------------------------------------------------------- references with a mask m (N, 1, ...)


def masked_wce(x, target, C, act, w, mask, by_weights):
    """B.weighted_ce with every weight multiplied by the mask; D = Σ w·m, or K·Σ m (the number of terms)."""
    g = R.onehot(target, C)
    binary = act == "sigmoid" or (act in ("auto", "none") and C == 1)
    w = torch.as_tensor(w) * mask
    if binary:
        ce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
    else:
        ce = -(g * torch.log_softmax(x, dim=1)).sum(dim=1, keepdim=True)
    num = (w * ce).sum()
    D = w.sum() if by_weights else mask.sum() * w.shape[1]
    return num / D if D > 0 else num * 0


def ref_dpce(x, target, C, mask, lam=1.0):
    sp = (1.0,) * (x.dim() - 2)
    lab = B.hard_labels(target, C, "auto")
    w = np.ones(lab.shape)
    for n in range(lab.shape[0]):
        for k in range(lab.shape[1]):
            d = B.label_distance(lab[n, k], sp)
            if d is not None:
                w[n, k] = 1 + lam * (1 - d / d.max())
    return masked_wce(x, target, C, "auto", w, mask, by_weights=False)


def ref_ba(x, target, C, mask, width=2, p_boundary=2.0, p_inner=1.0):
    sp = (1.0,) * (x.dim() - 2)
    lab = B.hard_labels(target, C, "auto")
    w = np.full(lab.shape, float(p_inner))
    for n in range(lab.shape[0]):
        for k in range(lab.shape[1]):
            d = B.label_distance(lab[n, k], sp)
            if d is not None:
                w[n, k][d <= width * min(sp) * (1 + 1e-6)] = p_boundary
    return masked_wce(x, target, C, "auto", w, mask, by_weights=True)


def weighted_increments(g_sorted, w_sorted):
    """δ_k of the weighted Jaccard loss along the sorted order: each voxel counts w times in I and U."""
    gts = (w_sorted * g_sorted).sum()
    inter = gts - (w_sorted * g_sorted).cumsum(0)
    union = gts + (w_sorted * (1 - g_sorted)).cumsum(0)
    J = 1 - inter / union
    return torch.cat([J[:1], J[1:] - J[:-1]])


def ref_lovasz(x, target, C, mask, per_image=False):
    hinge = C == 1
    p = R.probs(x, C, "auto")
    g = R.onehot(target, C)
    m = mask[:, 0]
    N = x.shape[0]
    groups = [[n] for n in range(N)] if per_image else [list(range(N))]
    total = (x * 0).sum()
    for grp in groups:
        losses = []
        for c in range(C):
            es, gs, ws = [], [], []
            for n in grp:
                keep = m[n] > 0
                gc = g[n, c][keep]
                es.append(1 - x[n, c][keep] * (2 * gc - 1) if hinge else (gc - p[n, c][keep]).abs())
                gs.append(gc)
                ws.append(m[n][keep])
            e, gc, wc = torch.cat(es), torch.cat(gs), torch.cat(ws)
            if not hinge and float((wc * gc).sum()) == 0:
                continue  # classes=present: a class whose weighted target is empty
            if e.numel() == 0:
                losses.append((x * 0).sum())
                continue
            order = torch.sort(e.detach(), descending=True, stable=True).indices
            f = torch.relu(e[order]) if hinge else e[order]
            losses.append(torch.dot(f, weighted_increments(gc[order], wc[order])))
        if losses:
            total = total + sum(losses) / len(losses)
    return total / len(groups)


def ref_blob(x, target, C, mask, smooth_nr=1e-5, smooth_dr=1e-5):
    p = R.probs(x, C, "auto")
    gm = B.masks_of(target, C)
    first = 1 if C > 1 else 0
    nd = x.dim() - 2
    structure = ndi.generate_binary_structure(nd, nd)
    groups = []
    for n in range(x.shape[0]):
        m = mask[n, 0]
        for c in range(first, C):
            comp, K = ndi.label(gm[n, c], structure=structure)
            losses = []
            for k in range(1, K + 1):
                blob = torch.tensor((comp == k).astype(np.float64))
                seen = torch.tensor(((comp == 0) | (comp == k)).astype(np.float64))
                size = (m * blob).sum()
                if float(size) == 0:
                    continue  # a blob of weight 0 leaves the mean
                tp = (m * p[n, c] * blob).sum()
                losses.append(1 - (2 * tp + smooth_nr) / ((m * p[n, c] * seen).sum() + size + smooth_dr))
            if losses:
                groups.append(sum(losses) / len(losses))
    if not groups:
        return x.sum() * 0
    return sum(groups) / len(groups)


def ref_ssim(x, target, C, mask, window=3, sigma=1.5, padding="valid", groups=False):
    p = R.probs(x, C, "auto")
    g = R.onehot(target, C)
    N, sp, nd = x.shape[0], tuple(x.shape[2:]), x.dim() - 2
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    K = kernel(nd, window, sigma)
    pad = (window - 1) // 2 if padding == "zero" else 0
    a, b = p.reshape((N * C, 1) + sp), g.reshape((N * C, 1) + sp)
    f = lambda v: conv(v, K, padding=pad)
    ux, uy = f(a), f(b)
    sx, sy, sxy = f(a * a) - ux * ux, f(b * b) - uy * uy, f(a * b) - ux * uy
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * sxy + c2) / ((ux ** 2 + uy ** 2 + c1) * (sx + sy + c2))).reshape(N, C, -1)
    # ω: the mask at each window's centre voxel ((window − 1) // 2 along each axis with padding=valid)
    h = 0 if padding == "zero" else (window - 1) // 2
    om = mask[(slice(None), 0) + tuple(slice(h, h + o) for o in ux.shape[2:])].reshape(N, 1, -1)
    W = om.sum(-1)
    l = torch.where(W > 0, 1 - (om * s).sum(-1) / W.clamp(min=1e-300), torch.zeros_like(s[..., 0]))
    return l if groups else RR.mean_groups(l, C, None, True)  # groups: the (N, C) values


def ref_edge_dice(x, target, C, mask, alpha=0.7, groups=False):
    p = R.probs(x, C, "auto")
    g = R.onehot(target, C)
    N, sp = x.shape[0], tuple(x.shape[2:])
    ep = edge_map(p.reshape((N * C, 1) + sp), "zero").reshape(p.shape)
    eg = edge_map(g.reshape((N * C, 1) + sp), "zero").reshape(g.shape)
    axes = list(range(2, x.dim()))

    def dice(a, b):
        return (2 * (mask * a * b).sum(axes) + 1e-5) / ((mask * a).sum(axes) + (mask * b).sum(axes) + 1e-5)

    l = alpha * (1 - dice(p, g)) + (1 - alpha) * (1 - dice(ep, eg))
    return l if groups else RR.mean_groups(l, C, None, True)  # groups: the (N, C) values


def ref_hausdorff_er(x, target, C, mask, alpha=2.0, erosions=3, groups=False):
    p = R.probs(x, C, "auto")
    g = R.onehot(target, C)
    N, nd, sp = x.shape[0], x.dim() - 2, tuple(x.shape[2:])
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    ker = cross_kernel(nd)
    b = ((p - g) ** 2).reshape((N * C, 1) + sp)
    total = torch.zeros_like(b)
    for k in range(1, erosions + 1):
        r = conv(b, ker, padding=1) - 0.5
        e = torch.where(r < 0, torch.zeros_like(r), r)
        flat = e.reshape(N * C, -1)
        hi = flat.max(1).values.reshape((N * C,) + (1,) * (nd + 1))
        lo = flat.min(1).values.reshape((N * C,) + (1,) * (nd + 1))
        norm = hi != lo
        b = torch.where(norm, (e - lo) / torch.where(norm, hi - lo, torch.ones_like(hi)), e)
        total = total + b * float(k) ** alpha
    total = total.reshape((N, C) + sp)
    axes = list(range(2, x.dim()))
    W = mask.sum(axes)
    l = torch.where(W > 0, (total * mask).sum(axes) / W.clamp(min=1e-300), torch.zeros_like(W))
    return l if groups else RR.mean_groups(l, C, None, True)  # groups: the (N, C) values


def ref_cldice(x, target, C, mask, iters=3, groups=False):
    p = R.probs(x, C, "auto")
    g = R.onehot(target, C)
    N, sp = x.shape[0], tuple(x.shape[2:])
    sk_p = soft_skel(p.reshape((N * C,) + sp), iters).reshape(p.shape)
    sk_g = soft_skel(g.reshape((N * C,) + sp), iters).reshape(g.shape)
    axes = list(range(2, x.dim()))
    s = [(mask * sk_p * g).sum(axes), (mask * sk_p).sum(axes), (mask * sk_g * p).sum(axes), (mask * sk_g).sum(axes)]
    tprec, tsens = (s[0] + 1) / (s[1] + 1), (s[2] + 1) / (s[3] + 1)
    l = 1 - 2 * tprec * tsens / (tprec + tsens)
    return l if groups else RR.mean_groups(l, C, None, True)  # groups: the (N, C) values


# ---------------------------------------------------------------- cases

# name, spec, reference, params, channels, target kinds, check_loss keywords (finite-difference steps of the
# loss's own test: the kinks of lovasz, the min/max of hausdorff_er and cldice, the |·| of edge_dice)
CASES = [
    ("dpce", "dpce", ref_dpce, {}, (1, 3), ("labels", "soft"), {}),
    ("dpce", "dpce(lambda=3)", ref_dpce, {"lam": 3.0}, (3,), ("labels",), {}),
    ("boundary_aware", "boundary_aware", ref_ba, {}, (1, 3), ("labels", "soft"), {}),
    ("boundary_aware", "boundary_aware(width=1,p_boundary=5,p_inner=0.5)", ref_ba,
     {"width": 1, "p_boundary": 5.0, "p_inner": 0.5}, (3,), ("labels",), {}),
    ("lovasz", "lovasz", ref_lovasz, {}, (1, 3), ("labels", "soft"), {"fd_step": 1e-4}),
    ("lovasz", "lovasz(per_image=true)", ref_lovasz, {"per_image": True}, (1, 3), ("labels",), {"fd_step": 1e-4}),
    ("blob", "blob", ref_blob, {}, (1, 3), ("labels", "soft"), {}),
    ("ssim", "ssim(window=3)", ref_ssim, {}, (1, 3), ("labels", "soft"), {}),
    ("ssim", "ssim(window=4,sigma=2)", ref_ssim, {"window": 4, "sigma": 2.0}, (2,), ("labels",), {}),
    ("ssim", "ssim(window=5,padding=zero)", ref_ssim, {"window": 5, "padding": "zero"}, (3,), ("labels",), {}),
    ("edge_dice", "edge_dice", ref_edge_dice, {}, (1, 3), ("labels", "soft"), {"fd_step": 1e-3, "fd_rel": 1e-2}),
    ("hausdorff_er", "hausdorff_er(erosions=3)", ref_hausdorff_er, {}, (1, 3), ("labels", "soft"),
     {"fd_step": 1e-4, "fd_rel": 2e-2}),
    ("cldice", "cldice", ref_cldice, {}, (1, 3), ("labels", "soft"), {"fd_step": 1e-4, "fd_rel": 2e-2}),
    # the survey's pixel- plus lesion-level compound as the spec expresses it (docs/losses.md): α·blob + (1 − α)·focal
    ("blob+focal", "0.3*blob+0.7*focal", lambda x, t, C, mask: 0.3 * ref_blob(x, t, C, mask) +
     0.7 * M.ref_focal(x, t, C, mask), {}, (1, 3), ("labels",), {}),
]


def main():
    chk = slref.Check("masks for dpce, boundary_aware, lovasz, blob, ssim, edge_dice, hausdorff_er, cldice")
    rng = np.random.default_rng(1616)
    shapes = B.shapes(slref.QUICK)
    with R.tmpdir() as tmp:
        for i, (name, spec, ref, params, channels, kinds, kw) in enumerate(CASES):
            for C in channels:
                for ki, kind in enumerate(kinds):
                    # every shape in the release pass; under the sanitizers one, alternating 2-D and 3-D
                    for N, spatial in ([shapes[(i + C + ki) % len(shapes)]] if slref.QUICK else shapes):
                        y = B.targets(rng, N, C, spatial, kind)
                        x = B.logits(rng, N, C, spatial)
                        m = draw_mask(rng, N, spatial, "weights" if (C + ki) % 2 else "binary")
                        R.check_loss(chk, name, spec, ref, params, x, y, C, tmp, mask=m, **dict(B.FD, **kw))

        # A mask of ones is no mask; a mask of zeros gives 0 and no gradient.
        x, y = B.logits(rng, 2, 3, (12, 13)), B.blobby_labels(rng, 2, 3, (12, 13))
        ones, zeros = np.ones((2, 1, 12, 13), np.float32), np.zeros((2, 1, 12, 13), np.float32)
        for spec in ("dpce", "boundary_aware", "lovasz", "blob", "ssim(window=3)", "edge_dice", "hausdorff_er",
                     "cldice"):
            v1, g1, e1 = R.run_lib(spec, x, y, mask=ones)
            v0, g0, e0 = R.run_lib(spec, x, y)
            if chk.true("%s with a mask of ones runs: %s %s" % (spec, e1, e0), e1 is None and e0 is None):
                chk.close("%s mask of ones == no mask value" % spec, v1, v0, rtol=1e-6, atol=1e-8, group="ones")
                chk.close("%s mask of ones == no mask grad" % spec, g1, g0, rtol=1e-5,
                          atol=1e-7 * max(1.0, float(np.abs(g0).max())), group="ones")
        for spec in ("dpce", "boundary_aware", "lovasz", "blob", "ssim(window=3)", "hausdorff_er"):
            v, g, e = R.run_lib(spec, x, y, mask=zeros)
            chk.true("%s mask of zeros gives 0 and no gradient (%s, %r)" % (spec, e, v),
                     e is None and v == 0 and not g.any())

        # lovasz: a binary mask is its ignore_index on the same voxels; weight 2 is the voxel twice.
        for C in (1, 3):
            for per_image in ("false", "true"):
                x, y = B.logits(rng, 2, C, (9, 10)), B.blobby_labels(rng, 2, C, (9, 10))
                m = draw_mask(rng, 2, (9, 10), "binary")
                yi = np.where(m[:, 0] > 0, y, 9)
                vm, gm, e1 = R.run_lib("lovasz(per_image=%s)" % per_image, x, y, mask=m)
                vi, gi, e2 = R.run_lib("lovasz(per_image=%s,ignore_index=9)" % per_image, x, yi)
                if chk.true("lovasz binary mask and ignore_index run: %s %s" % (e1, e2), e1 is None and e2 is None):
                    chk.close("lovasz C=%d per_image=%s binary mask == ignore_index value" % (C, per_image), vm, vi,
                              rtol=1e-6, atol=1e-8, group="lovasz mask == ignore")
                    chk.close("lovasz C=%d per_image=%s binary mask == ignore_index grad" % (C, per_image), gm, gi,
                              rtol=1e-5, atol=1e-8, group="lovasz mask == ignore")
            # one row of 6 voxels, the first with weight 2, against the same row with that voxel doubled
            x = rng.normal(0, 2, (1, C, 1, 6)).astype(np.float32)
            y = rng.integers(0, max(C, 2), (1, 1, 6))
            m = np.ones((1, 1, 1, 6), np.float32)
            m[..., 0] = 2
            x2, y2 = np.concatenate([x[..., :1], x], -1), np.concatenate([y[..., :1], y], -1)
            vw, gw, e1 = R.run_lib("lovasz", x, y, mask=m)
            vd, gd, e2 = R.run_lib("lovasz", x2, y2)
            if chk.true("lovasz weight 2 and the doubled voxel run: %s %s" % (e1, e2), e1 is None and e2 is None):
                chk.close("lovasz C=%d weight 2 == the voxel twice (value)" % C, vw, vd, rtol=1e-6, atol=1e-8,
                          group="lovasz weight == copies")
                gsum = np.concatenate([gd[..., :1] + gd[..., 1:2], gd[..., 2:]], -1)
                chk.close("lovasz C=%d weight 2 == the voxel twice (gradient)" % C, gw, gsum, rtol=1e-5, atol=1e-8,
                          group="lovasz weight == copies")
    chk.report()


if __name__ == "__main__":
    main()
