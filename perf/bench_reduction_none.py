"""SegLoss(spec, reduction="none") against MONAI-style eager losses with reduction="none", forward + backward of a
random upstream (v.backward(u)), on the same CPU logits, in the same process and thread count, runs interleaved
(segloss, eager, segloss, ...; the median of each). Also the masked lovasz (a weight map) against an eager
weighted Lovász-softmax.

    PYTHONPATH=python SEGLOSS_LIB=build/libsegloss.so /usr/bin/python3 perf/bench_reduction_none.py [--threads T] [--size S] [--reps R]

Prints one RATIO line per comparison (eager time / segloss time) and the max |difference| of the values.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from segloss.torch import SegLoss


def eager_dice_none(logits, target):
    """MONAI DiceLoss(softmax=True, to_onehot_y=True, reduction="none"): (N, C) of 1 − D."""
    C = logits.shape[1]
    p = torch.softmax(logits, 1)
    g = F.one_hot(target, C).movedim(-1, 1).to(p.dtype)
    axes = list(range(2, logits.dim()))
    return 1.0 - (2.0 * (p * g).sum(axes) + 1e-5) / (p.sum(axes) + g.sum(axes) + 1e-5)


def eager_tversky_none(logits, target, alpha=0.3, beta=0.7):
    C = logits.shape[1]
    p = torch.softmax(logits, 1)
    g = F.one_hot(target, C).movedim(-1, 1).to(p.dtype)
    axes = list(range(2, logits.dim()))
    tp = (p * g).sum(axes)
    return 1.0 - (tp + 1e-5) / (tp + alpha * (p.sum(axes) - tp) + beta * (g.sum(axes) - tp) + 1e-5)


def eager_lovasz_masked(logits, target, mask):
    """Lovász-softmax over the batch, classes present, each voxel counting m times in the set counts."""
    C = logits.shape[1]
    p = torch.softmax(logits, 1).movedim(1, -1).reshape(-1, C)
    g = F.one_hot(target.reshape(-1), C).to(p.dtype)
    m = mask.reshape(-1)
    keep = m > 0
    p, g, m = p[keep], g[keep], m[keep]
    losses = []
    for c in range(C):
        gc = g[:, c]
        if float((m * gc).sum()) == 0:
            continue
        e = (gc - p[:, c]).abs()
        order = torch.sort(e.detach(), descending=True).indices
        gs, ms = gc[order], m[order]
        tot = (ms * gs).sum()
        J = 1 - (tot - (ms * gs).cumsum(0)) / (tot + (ms * (1 - gs)).cumsum(0))
        losses.append(torch.dot(e[order], torch.cat([J[:1], J[1:] - J[:-1]])))
    return (sum(losses) / len(losses)).reshape(1, 1)


def timed(fn, x, reps_out, u):
    xx = x.detach().clone().requires_grad_(True)
    t0 = time.perf_counter()
    v = fn(xx)
    v.backward(u if u is not None else torch.ones_like(v))
    reps_out.append(time.perf_counter() - t0)
    return v.detach()


def compare(name, ours, eager, x, reps, threads, with_upstream=True):
    ts, te = [], []
    v0 = ours(x).detach()
    u = torch.randn(v0.shape, generator=torch.Generator().manual_seed(1)) if with_upstream else None
    for _ in range(reps + 1):  # the first of each is a warm-up
        vs = timed(ours, x, ts, u)
        ve = timed(eager, x, te, u)
    t1, t2 = statistics.median(ts[1:]), statistics.median(te[1:])
    print("RATIO %s: %.1fx (segloss %.4f s, eager PyTorch %.4f s, threads %d)  max |dvalue| %.2e"
          % (name, t2 / t1, t1, t2, threads, float((vs.double() - ve.double()).abs().max())))


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
    print("logits 2x4x%d^3, %d threads, median of %d forward+backward(u), interleaved" % (s, a.threads, a.reps))
    dice = SegLoss("dice", reduction="none", threads=a.threads)
    compare("dice reduction=none (N, C)", lambda v: dice(v, y), lambda v: eager_dice_none(v, y), x, a.reps, a.threads)
    tv = SegLoss("tversky", reduction="none", threads=a.threads)
    compare("tversky reduction=none (N, C)", lambda v: tv(v, y), lambda v: eager_tversky_none(v, y), x, a.reps,
            a.threads)
    # masked lovasz on a smaller volume (the eager sort dominates)
    s2 = max(8, s // 2)
    x2 = torch.randn(2, 4, s2, s2, s2, generator=gen)
    y2 = torch.randint(0, 4, (2, s2, s2, s2), generator=gen)
    m2 = torch.rand((2, 1, s2, s2, s2), generator=gen) * 3
    m2[m2 < 0.5] = 0
    lv = SegLoss("lovasz", threads=a.threads)
    print("lovasz with a weight map: logits 2x4x%d^3" % s2)
    compare("lovasz masked", lambda v: lv(v, y2, mask=m2).reshape(1, 1), lambda v: eager_lovasz_masked(v, y2, m2),
            x2, a.reps, a.threads, with_upstream=False)


if __name__ == "__main__":
    main()
