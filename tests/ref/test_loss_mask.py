"""Voxel masks / weight maps (sl_target.mask, segloss loss --mask) against float64 PyTorch references.
# sanitized: skip

The definition under test (docs/losses.md#masks): a weight m >= 0 per voxel, 0 excluding it from every statistic.
Every voxel sum becomes a weighted sum — region sums Σ m·p·g, Σ m·p, Σ m·g (Σ m·p², Σ m·g²); the mean of a
per-voxel loss becomes Σ m·l / Σ m (ce, bce, focal, boundary, hausdorff_dt). The references below are written from
that definition, not from the C code; autograd gives the gradients and a central difference checks the C gradient.

Also: MONAI's MaskedDiceLoss transcribed (input and target multiplied by the mask, then DiceLoss) equals dice with
a binary mask; a binary mask equals ignore_index on the same voxels; a mask of ones equals no mask (fused path);
bad masks are refused with SL_ERANGE / SL_ENONFINITE / SL_EINVAL and a message, and through the CLI a mask of the
wrong shape is refused before anything is written."""
import ctypes
import os

import numpy as np
import torch
import torch.nn.functional as F

import boundaryref as B
import lossref as R
import slref
from test_loss_hausdorff_dt import away_from_half

SL_EINVAL, SL_ERANGE, SL_ENONFINITE = 1, 4, 5

# ---------------------------------------------------------------- references (weighted-sum definition)


def wsums(x, target, C, activation, mask, batch=False):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = mask.expand_as(p)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    return dict(tp=(m * p * g).sum(axes), sp=(m * p).sum(axes), sg=(m * g).sum(axes),
                sp2=(m * p * p).sum(axes), sg2=(m * g * g).sum(axes))


def group_mean(l, C, include_background=True):
    if not include_background and C > 1:
        l = l[..., 1:]
    return l.mean()


def ref_dice(x, target, C, mask, activation="auto", include_background=True, batch=False, squared=False,
             smooth_nr=1e-5, smooth_dr=1e-5):
    s = wsums(x, target, C, activation, mask, batch)
    den = s["sp2"] + s["sg2"] if squared else s["sp"] + s["sg"]
    return group_mean(1 - (2 * s["tp"] + smooth_nr) / (den + smooth_dr), C, include_background)


def ref_iou(x, target, C, mask, activation="auto", smooth_nr=1e-5, smooth_dr=1e-5):
    s = wsums(x, target, C, activation, mask)
    return group_mean(1 - (s["tp"] + smooth_nr) / (s["sp"] + s["sg"] - s["tp"] + smooth_dr), C)


def ref_tversky(x, target, C, mask, activation="auto", alpha=0.5, beta=0.5, smooth_nr=1e-5, smooth_dr=1e-5):
    s = wsums(x, target, C, activation, mask)
    fp, fn = s["sp"] - s["tp"], s["sg"] - s["tp"]
    return group_mean(1 - (s["tp"] + smooth_nr) / (s["tp"] + alpha * fp + beta * fn + smooth_dr), C)


def ref_ce(x, target, C, mask, activation="auto", weight=None):
    """Softmax CE: Σ m w_y (−log p_y) / Σ m w_y (labels), Σ m Σ_c w_c g_c (−log p_c) / Σ m (soft);
    sigmoid (C = 1): Σ m BCE / Σ m."""
    m = mask[:, 0]
    w = torch.ones(C) if weight is None else torch.tensor(weight, dtype=torch.float64)
    if C == 1:
        l = F.binary_cross_entropy_with_logits(x, R.onehot(target, C), reduction="none")
        return (l * mask).sum() / (mask.sum() * C)
    logp = torch.log_softmax(x, 1)
    if target.dtype.is_floating_point:
        wv = w.view((1, C) + (1,) * (x.dim() - 2))
        return -(m * (wv * target * logp).sum(1)).sum() / m.sum()
    ly = logp.gather(1, target.unsqueeze(1))[:, 0]
    return -(m * w[target] * ly).sum() / (m * w[target]).sum()


def ref_focal(x, target, C, mask, gamma=2.0):
    g = R.onehot(target, C)
    if C > 1:
        logp = torch.log_softmax(x, 1)
        l = -((-torch.expm1(logp)) ** gamma * g * logp).sum(1, keepdim=True)
        return (mask * l).sum() / mask.sum()
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
    l = ce * (p * (1 - g) + (1 - p) * g) ** gamma
    return (mask * l).sum() / (mask.sum() * C)


def ref_boundary(x, target, C, mask):
    p = R.probs(x, C, "auto")
    gm = B.masks_of(target, C)
    phi = torch.tensor(np.stack([np.stack([B.kervadec_map(gm[n, c], (1.0,) * (x.dim() - 2)) for c in range(C)])
                                 for n in range(x.shape[0])]))
    idc = [0] if C == 1 else list(range(1, C))
    return (mask * p[:, idc] * phi[:, idc]).sum() / (len(idc) * mask.sum())


def ref_hd(x, target, C, mask, alpha=2.0):
    p = R.probs(x, C, "auto")
    g = R.onehot(target, C)
    first = 1 if C > 1 else 0
    pm, gm = p.detach().numpy() > 0.5, g.numpy() > 0.5
    sp = (1.0,) * (x.dim() - 2)
    tot = 0
    for n in range(x.shape[0]):
        for c in range(first, C):
            d = torch.tensor(B.monai_field(pm[n, c], sp)) ** alpha + torch.tensor(B.monai_field(gm[n, c], sp)) ** alpha
            tot = tot + (mask[n, 0] * (p[n, c] - g[n, c]) ** 2 * d).sum()
    return tot / ((C - first) * mask.sum())


def ref_sensspec(x, target, C, mask, r=0.05, smooth_dr=1e-5):
    """Brosch et al.: r Σ m (g−p)² g / Σ m g + (1−r) Σ m (g−p)² (1−g) / Σ m (1−g), mean over (sample, class)."""
    p = R.probs(x, C, "auto")
    g = R.onehot(target, C)
    m = mask.expand_as(p)
    axes = list(range(2, x.dim()))
    d2 = m * (g - p) ** 2
    l = r * (d2 * g).sum(axes) / ((m * g).sum(axes) + smooth_dr) + \
        (1 - r) * (d2 * (1 - g)).sum(axes) / ((m * (1 - g)).sum(axes) + smooth_dr)
    return l.mean()


def ref_topk(x, target, C, mask, k=10.0):
    """Softmax CE per voxel weighted, m·ℓ; the mean of the floor(k·V/100) largest among the voxels with m > 0
    (V of them)."""
    l = -torch.log_softmax(x, 1).gather(1, target.unsqueeze(1))[:, 0].reshape(-1)
    m = mask[:, 0].reshape(-1)
    idx = torch.nonzero(m > 0)[:, 0]
    K = max(1, int(np.floor(idx.numel() * k / 100.0)))
    wl = m[idx] * l[idx]
    return torch.topk(wl, K).values.sum() / K


def monai_masked_dice(x, target, C, mask):
    """MONAI MaskedDiceLoss given probabilities transcribed: MaskedLoss multiplies input and target by the mask,
    then DiceLoss(reduction=mean) (intersection Σ p·g, denominator Σ p + Σ g, smooth 1e-5). The activation comes
    first here: MaskedLoss applied to logits, with DiceLoss(softmax=True) after the product, would give the
    excluded voxels softmax(0) = 1/C in Σ p."""
    p = torch.softmax(x, 1) if C > 1 else torch.sigmoid(x)
    inp, tgt = p * mask, R.onehot(target, C) * mask
    axes = list(range(2, x.dim()))
    inter = (inp * tgt).sum(axes)
    den = inp.sum(axes) + tgt.sum(axes)
    return (1.0 - (2.0 * inter + 1e-5) / (den + 1e-5)).mean()


# ---------------------------------------------------------------- inputs


def draw_mask(rng, N, spatial, kind):
    shape = (N, 1) + tuple(spatial)
    if kind == "binary":
        return (rng.random(shape) < 0.7).astype(np.float32)
    # a weight map: zeros, ordinary weights and a few large ones (Ronneberger's border weights reach ~10)
    w = rng.uniform(0.2, 3.0, shape)
    w[rng.random(shape) < 0.2] = 0
    w[rng.random(shape) < 0.05] = 10.0
    return w.astype(np.float32)


def status_of(spec, x, y, mask):
    """(status code, message) of sl_loss_forward through ctypes."""
    lib = slref.lib()
    msg = ctypes.create_string_buffer(512)
    loss = ctypes.c_void_p()
    assert lib.sl_loss_create(spec.encode(), ctypes.byref(loss), msg, 512) == 0
    try:
        x = np.ascontiguousarray(x, np.float32)
        yy = np.ascontiguousarray(y, np.int32)
        mm = np.ascontiguousarray(mask, np.float32)
        d = R._Dims(x.shape[0], x.shape[1], x.ndim - 2, (ctypes.c_int64 * 3)(*(list(x.shape[2:]) + [1] * (5 - x.ndim))))
        t = R._Target(0, yy.ctypes.data, None, mm.ctypes.data)
        v = ctypes.c_double()
        st = lib.sl_loss_forward(loss, x.ctypes.data_as(ctypes.c_void_p), ctypes.byref(d), ctypes.byref(t), None,
                                 ctypes.byref(v), None, msg, 512)
        return st, msg.value.decode()
    finally:
        lib.sl_loss_free(loss)


def main():
    chk = slref.Check("masks and weight maps vs PyTorch")
    rng = np.random.default_rng(16)
    shapes = R.shapes(slref.QUICK)
    cases = [
        ("dice", "dice", ref_dice, {}, (1, 3), ("labels", "soft")),
        ("dice", "dice(batch=true,include_background=false)", ref_dice, {"batch": True, "include_background": False},
         (3,), ("labels",)),
        ("dice", "dice(squared=true)", ref_dice, {"squared": True}, (2,), ("soft",)),
        ("iou", "iou", ref_iou, {}, (1, 3), ("labels",)),
        ("tversky", "tversky(alpha=0.3,beta=0.7)", ref_tversky, {"alpha": 0.3, "beta": 0.7}, (3,), ("labels", "soft")),
        ("ce", "ce", ref_ce, {}, (1, 3), ("labels", "soft")),
        ("ce", "ce(weight=[0.5,1.0,2.0])", ref_ce, {"weight": [0.5, 1.0, 2.0]}, (3,), ("labels",)),
        ("focal", "focal", ref_focal, {}, (1, 3), ("labels",)),
        ("sensspec", "sensspec", ref_sensspec, {}, (1, 3), ("labels", "soft")),
        ("topk", "topk(k=30)", ref_topk, {"k": 30.0}, (3,), ("labels",)),
        ("dice+ce", "dice+ce", lambda x, t, C, mask: ref_dice(x, t, C, mask) + ref_ce(x, t, C, mask), {}, (3,),
         ("labels",)),
    ]
    with R.tmpdir() as tmp:
        for name, spec, ref, params, channels, kinds in cases:
            for C in channels:
                for kind in kinds:
                    for N, spatial in shapes:
                        for mkind in ("binary", "weights"):
                            x, y = R.make_inputs(rng, N, C, spatial, kind)
                            m = draw_mask(rng, N, spatial, mkind)
                            # topk's selection has kinks where two values swap: a small step (as test_loss_topk.py)
                            R.check_loss(chk, name, spec, ref, params, x, y, C, tmp, mask=m,
                                         fd_step=1e-4 if name == "topk" else None)

        # boundary family: blobby targets so that the distance maps have structure.
        for N, spatial in B.shapes(slref.QUICK):
            for C in (1, 3):
                y = B.targets(rng, N, C, spatial, "labels")
                x = B.logits(rng, N, C, spatial)
                m = draw_mask(rng, N, spatial, "weights")
                R.check_loss(chk, "boundary", "boundary", ref_boundary, {}, x, y, C, tmp, mask=m)
                # hausdorff_dt: the prediction mask p > 0.5 must not flip under the finite difference
                x = away_from_half(rng, x, C, "auto")
                R.check_loss(chk, "hausdorff_dt", "hausdorff_dt", ref_hd, {}, x, y, C, tmp, mask=m, **B.FD)

        # MONAI MaskedDiceLoss, transcribed, equals dice with a binary mask.
        for C in (1, 3):
            x, y = R.make_inputs(rng, 2, C, (6, 7), "labels")
            m = draw_mask(rng, 2, (6, 7), "binary")
            R.check_loss(chk, "MONAI MaskedDiceLoss", "dice", monai_masked_dice, {}, x, y, C, tmp, mask=m, fd=False)

        # A binary mask is ignore_index on the same voxels; a mask of ones is no mask (the fused path).
        x, y = R.make_inputs(rng, 2, 4, (7, 8), "labels")
        m = draw_mask(rng, 2, (7, 8), "binary")
        yi = np.where(m[:, 0] > 0, y, 9)
        for spec, spec_i in (("dice", "dice(ignore_index=9)"), ("ce", "ce(ignore_index=9)"),
                             ("focal", "focal(ignore_index=9)"), ("tversky", "tversky(ignore_index=9)"),
                             ("combo", "combo(ignore_index=9)"), ("unified_focal", "unified_focal(ignore_index=9)"),
                             ("sensspec", "sensspec(ignore_index=9)"), ("gwdice", "gwdice(ignore_index=9)"),
                             ("gdice", "gdice(ignore_index=9)"), ("mcc", "mcc(ignore_index=9)"),
                             ("topk", "topk(ignore_index=9)"), ("ohem", "ohem(ignore_index=9)")):
            vm, gm, e1 = R.run_lib(spec, x, y, mask=m)
            vi, gi, e2 = R.run_lib(spec_i, x, yi)
            chk.true("%s binary mask runs: %s %s" % (spec, e1, e2), e1 is None and e2 is None)
            if e1 is None and e2 is None:
                chk.close("%s binary mask == ignore_index value" % spec, vm, vi, rtol=1e-6, atol=1e-7, group="ignore-equiv")
                chk.close("%s binary mask == ignore_index grad" % spec, gm, gi, rtol=1e-5, atol=1e-7, group="ignore-equiv")
        ones = np.ones((2, 1, 7, 8), np.float32)
        for spec in ("dice+ce", "focal", "boundary", "iou+bce(activation=sigmoid)"):
            v1, g1, e1 = R.run_lib(spec, x, y, mask=ones)
            v0, g0, e0 = R.run_lib(spec, x, y)
            chk.true("%s ones mask runs: %s %s" % (spec, e1, e0), e1 is None and e0 is None)
            if e1 is None and e0 is None:
                chk.close("%s mask of ones == no mask value" % spec, v1, v0, rtol=2e-6, atol=1e-7, group="ones")
                chk.close("%s mask of ones == no mask grad" % spec, g1, g0, rtol=1e-4, atol=1e-7 * max(1, abs(g0).max()),
                          group="ones")
        # A mask of zeros: nothing counts; the losses that are means give 0.
        zeros = np.zeros((2, 1, 7, 8), np.float32)
        for spec in ("ce", "focal", "boundary"):
            v, g, e = R.run_lib(spec, x, y, mask=zeros)
            chk.true("%s mask of zeros gives 0 and no gradient (%s)" % (spec, e), e is None and v == 0 and not g.any())

        # Bad masks: codes and messages.
        bad = m.copy()
        bad[1, 0, 2, 3] = -0.5
        st, msg = status_of("dice", x, y, bad)
        chk.true("negative weight -> SL_ERANGE with a message (%d: %s)" % (st, msg), st == SL_ERANGE and "negative" in msg)
        bad[1, 0, 2, 3] = np.nan
        st, msg = status_of("ce", x, y, bad)
        chk.true("NaN weight -> SL_ENONFINITE (%d: %s)" % (st, msg), st == SL_ENONFINITE and "mask" in msg)
        # every loss takes a mask since issue 16's second round (test_loss_mask_more.py checks the new ones)
        st, msg = status_of("dice+lovasz", x, y, m)
        chk.true("dice+lovasz takes a mask (%d: %s)" % (st, msg), st == 0)
        # CLI: wrong shape, negative weight; the gradient file is not written.
        xp, yp, mp, gp = (os.path.join(tmp, f) for f in ("bx.npy", "by.npy", "bm.npy", "bg.npy"))
        np.save(xp, x)
        np.save(yp, y)
        for mask, words in ((np.ones((2, 1, 7, 9), np.float32), "does not match"),
                            (np.ones((2, 2, 7, 8), np.float32), "does not match"),
                            (-np.ones((2, 1, 7, 8), np.float32), "negative")):
            np.save(mp, mask)
            rc, out, err = slref.cli(["loss", "dice", "--input", xp, "--target", yp, "--mask", mp, "--grad", gp])
            chk.true("CLI bad mask %s: rc 1, '%s' in the message, no output (rc %d: %s)" % (mask.shape, words, rc, err.strip()),
                     rc == 1 and words in err and out == "" and not os.path.exists(gp))
        # (N, spatial...) is accepted as well as (N, 1, spatial...), and an integer mask.
        np.save(mp, m[:, 0].astype(np.uint8))
        rc, out, err = slref.cli(["loss", "dice", "--input", xp, "--target", yp, "--mask", mp])
        vm, _, _ = R.run_lib("dice", x, y, mask=m)
        chk.true("CLI uint8 (N, H, W) mask runs (%s)" % err.strip(), rc == 0)
        if rc == 0:
            import json
            chk.close("CLI uint8 mask == float mask", json.loads(out)["loss"], vm, rtol=1e-6, group="cli")
    chk.report()


if __name__ == "__main__":
    main()
