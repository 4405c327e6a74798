"""The compound losses of docs/losses.md that are written as spec sums, against sums of
independent PyTorch references written from docs/losses.md:

    dice+focal     Dice + Focal (AnatomyNet, Zhu et al. 2019)
    dice+topk      Dice + TopK (nnU-Net's DC_and_topk_loss shape)
    bce+iou+ssim   the hybrid loss (Qin et al. 2019 BASNet; Huang et al. 2020 UNet 3+)

Each term follows its own activation (bce: sigmoid per channel, the others softmax for C > 1),
so bce+iou+ssim on C > 1 mixes two activations in one forward. Weighted sums check that the
term weights multiply value and gradient.

TopK is piecewise smooth (its selection changes where two voxels' CE cross), so the sums
with topk use a finite-difference step of 1e-4, as tests/ref/test_loss_topk.py does."""
import numpy as np
import torch
import torch.nn.functional as F

import lossref as R
import regionref as RR
import slref
from test_loss_ssim import ref_ssim

# The sanitized pass (SL_QUICK=1, every evaluation through the CLI) runs C = 1 and 3 only
# (C = 2 takes the same code paths as 3) and leaves the finite differences of the matrix to
# the release pass: it is there to run every code path under ASan/UBSan, not to re-measure.
CHANNELS = (1, 3) if slref.QUICK else (1, 2, 3)


def ref_dice(x, target, C, smooth=1e-5):
    s = RR.sums(x, target, C)
    return (1 - RR.dice_score(s, smooth, smooth)).mean()


def ref_iou(x, target, C, smooth=1e-5):
    s = RR.sums(x, target, C)
    return (1 - (s["tp"] + smooth) / (s["sp"] + s["sg"] - s["tp"] + smooth)).mean()


def ref_focal(x, target, C, gamma=2.0):
    """Lin et al. 2017: softmax −mean_voxels Σ_c (1 − p_c)^γ g_c log p_c; one sigmoid channel:
    the mean over elements of (1 − p_t)^γ · BCE (torchvision's sigmoid_focal_loss, no α)."""
    g = R.onehot(target, C)
    if C > 1:
        logp = torch.log_softmax(x, 1)
        p = logp.exp()
        per_voxel = -((1 - p) ** gamma * g * logp).sum(1)
        return per_voxel.mean()
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
    pt = p * g + (1 - p) * (1 - g)
    return ((1 - pt) ** gamma * ce).mean()


def ref_topk(x, target, C, k=10.0):
    """Wu et al. 2016 / nnU-Net TopK: per-element CE ranked over the whole batch, the mean of the
    max(1, floor(k·V/100)) largest."""
    g = R.onehot(target, C)
    if C > 1:
        ce = -(g * torch.log_softmax(x, 1)).sum(1).reshape(-1)
    else:
        ce = F.binary_cross_entropy_with_logits(x, g, reduction="none").reshape(-1)
    K = max(1, int(np.floor(k * ce.numel() / 100)))
    return torch.topk(ce, K).values.mean()


def ref_bce(x, target, C):
    """PyTorch binary_cross_entropy_with_logits on every channel (one-hot targets for C > 1)."""
    return F.binary_cross_entropy_with_logits(x, R.onehot(target, C))


def summed(*parts):
    def ref(x, target, C, **_):
        return sum(w * f(x, target, C) for w, f in parts)
    return ref


def main():
    chk = slref.Check("spec sums vs PyTorch")
    ssim3 = lambda x, t, C: ref_ssim(x, t, C, window=3)
    small = dict(fd_step=1e-4)
    cases = [
        ("dice+focal", summed((1, ref_dice), (1, ref_focal)), {}),
        ("0.5*dice+2*focal(gamma=1)", summed((0.5, ref_dice), (2, lambda x, t, C: ref_focal(x, t, C, 1.0))), {}),
        ("dice+topk", summed((1, ref_dice), (1, ref_topk)), small),
        ("dice+0.25*topk(k=30)", summed((1, ref_dice), (0.25, lambda x, t, C: ref_topk(x, t, C, 30.0))), small),
        ("bce+iou+ssim(window=3)", summed((1, ref_bce), (1, ref_iou), (1, ssim3)), {}),
    ]
    for spec, ref, kw in cases:
        R.run_matrix(chk, spec.split("(")[0], lambda p, s=spec: s, ref, [{}], channels=CHANNELS,
                     fd=not slref.QUICK, **kw)
    # the hybrid loss with the default SSIM window (11) on images it fits
    rng = np.random.default_rng(12)
    ref = summed((1, ref_bce), (1, ref_iou), (1, ref_ssim))
    with R.tmpdir() as tmp:
        for C in CHANNELS:
            for kind in ("labels", "soft"):
                for N, sp in ((2, (12, 13)), (1, (11, 12, 11)))[:1 if slref.QUICK else 2]:
                    x, y = R.make_inputs(rng, N, C, sp, kind)
                    R.check_loss(chk, "bce+iou+ssim", "bce+iou+ssim", ref, {}, x, y, C, tmp)
    chk.report()


if __name__ == "__main__":
    main()
