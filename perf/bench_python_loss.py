"""SegLoss("dice+ce") against a MONAI-style eager DiceCELoss, forward + backward through
autograd, on the same CPU logits, in the same process, with the same thread count.

    PYTHONPATH=python SEGLOSS_LIB=build/libsegloss.so /usr/bin/python3 perf/bench_python_loss.py [--threads T] [--size S] [--reps R]

The eager loss is MONAI's DiceLoss(softmax=True, to_onehot_y=True) + CrossEntropyLoss written
out in PyTorch ops (softmax, one-hot, sums over the spatial axes, cross_entropy); both values
are printed and must agree. The two are timed in turn (segloss, eager, segloss, ...) so that
a load on a shared machine hits both alike; prints the minimum of each and one line
"RATIO SegLoss dice+ce: ..." in the form every perf script uses.
"""
import argparse
import time

import torch
import torch.nn.functional as F

from segloss.torch import SegLoss


def eager_dice_ce(logits, target, smooth_nr=1e-5, smooth_dr=1e-5):
    """MONAI DiceCELoss(softmax=True, to_onehot_y=True) as eager PyTorch ops."""
    C = logits.shape[1]
    p = torch.softmax(logits, 1)
    g = F.one_hot(target[:, 0], C).movedim(-1, 1).to(p.dtype)
    axes = list(range(2, logits.dim()))
    inter = (p * g).sum(axes)
    den = p.sum(axes) + g.sum(axes)
    dice = (1.0 - (2.0 * inter + smooth_nr) / (den + smooth_dr)).mean()
    return dice + F.cross_entropy(logits, target[:, 0])


def timed(fn, x, y):
    """seconds and value of one forward + backward (the input copy not timed)"""
    xx = x.detach().clone().requires_grad_(True)
    t0 = time.perf_counter()
    v = fn(xx, y)
    v.backward()
    return time.perf_counter() - t0, float(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    s = a.size
    x = torch.randn(2, 4, s, s, s, generator=g)
    y = torch.randint(0, 4, (2, 1, s, s, s), generator=g)
    loss = SegLoss("dice+ce", threads=a.threads)
    timed(loss, x, y)                         # warm-up (library load, allocations)
    timed(eager_dice_ce, x, y)
    ts = te = float("inf")
    for _ in range(a.reps):
        t, vs = timed(loss, x, y)
        ts = min(ts, t)
        t, ve = timed(eager_dice_ce, x, y)
        te = min(te, t)
    print("logits 2x4x%d^3, %d threads, minimum of %d forward+backward, timed in turn" % (s, a.threads, a.reps))
    print("  segloss SegLoss('dice+ce')      %8.3f s   value %.6f" % (ts, vs))
    print("  eager MONAI-style DiceCELoss    %8.3f s   value %.6f" % (te, ve))
    print("  ratio eager/segloss             %8.1fx" % (te / ts))
    print("RATIO SegLoss dice+ce: %.1fx (segloss %.4f s, monai-style-eager %.4f s, threads %d)" % (te / ts, ts, te, a.threads))


if __name__ == "__main__":
    main()
