"""The native PyTorch backend (SegLoss(..., backend="torch")) with reduction="none" and with mask=, against
MONAI-style eager losses doing the same, forward + backward on the same CPU logits, same process and thread
count, runs interleaved (segloss, eager, segloss, ...; the median of each). Issue 14's target for the native
path: within 1.5x of the eager implementation (a RATIO of eager / native >= 0.67).

    PYTHONPATH=python SEGLOSS_LIB=build/libsegloss.so /usr/bin/python3 perf/bench_native_none.py [--threads T] [--size S] [--reps R]

Prints one RATIO line per comparison (eager time / native time) and the max |difference| of the values.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_reduction_none import compare, eager_dice_none, eager_lovasz_masked, eager_tversky_none  # noqa: E402

from segloss.torch import SegLoss  # noqa: E402


def eager_masked_dice_ce(logits, target, mask):
    """dice + ce with every voxel sum weighted once by the mask (MONAI's MaskedDiceLoss given a binary mask,
    and F.cross_entropy's mean made Σ m·ℓ / Σ m)."""
    C = logits.shape[1]
    p = torch.softmax(logits, 1)
    g = F.one_hot(target, C).movedim(-1, 1).to(p.dtype)
    axes = list(range(2, logits.dim()))
    dice = 1.0 - (2.0 * (mask * p * g).sum(axes) + 1e-5) / ((mask * p).sum(axes) + (mask * g).sum(axes) + 1e-5)
    ce = (F.cross_entropy(logits, target, reduction="none") * mask[:, 0]).sum() / mask.sum()
    return (dice.mean() + ce).reshape(1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    s = a.size
    x = torch.randn(2, 4, s, s, s, generator=gen)
    y = torch.randint(0, 4, (2, s, s, s), generator=gen)
    m = torch.rand((2, 1, s, s, s), generator=gen) * 3
    m[m < 0.5] = 0
    print("native backend, logits 2x4x%d^3 float32 CPU, %d threads, median of %d forward+backward, interleaved"
          % (s, a.threads, a.reps))
    dice = SegLoss("dice", reduction="none", backend="torch")
    compare("native dice reduction=none (N, C)", lambda v: dice(v, y), lambda v: eager_dice_none(v, y), x, a.reps,
            a.threads)
    tv = SegLoss("tversky", reduction="none", backend="torch")
    compare("native tversky reduction=none (N, C)", lambda v: tv(v, y), lambda v: eager_tversky_none(v, y), x,
            a.reps, a.threads)
    dc = SegLoss("dice+ce", backend="torch")
    compare("native dice+ce masked", lambda v: dc(v, y, mask=m).reshape(1, 1),
            lambda v: eager_masked_dice_ce(v, y, m), x, a.reps, a.threads, with_upstream=False)
    s2 = max(8, s // 2)
    x2 = torch.randn(2, 4, s2, s2, s2, generator=gen)
    y2 = torch.randint(0, 4, (2, s2, s2, s2), generator=gen)
    m2 = torch.rand((2, 1, s2, s2, s2), generator=gen) * 3
    m2[m2 < 0.5] = 0
    lv = SegLoss("lovasz", backend="torch")
    print("lovasz with a weight map: logits 2x4x%d^3" % s2)
    compare("native lovasz masked", lambda v: lv(v, y2, mask=m2).reshape(1, 1),
            lambda v: eager_lovasz_masked(v, y2, m2), x2, a.reps, a.threads, with_upstream=False)


if __name__ == "__main__":
    main()
