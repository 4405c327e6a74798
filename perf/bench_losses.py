"""Loss forward+backward: segloss against PyTorch eager, same inputs, same process, same threads.

Inputs: logits 2x4x128^3 float32 and a random label map (override with
BENCH_SHAPE=N,C,D,H,W). For each spec the PyTorch version is what a user writes
(MONAI-style code in eager mode, autograd for the gradient); segloss is called
through ctypes on the same numpy buffers with a preallocated gradient. Times are
the minimum of BENCH_REPS rounds (default 5) after a warm-up, segloss and PyTorch
called in turn in each round; the printed figure is the ratio torch/segloss, also as
one "RATIO name: ..." line per loss. For dice+ce the machine's bound is printed too,
the larger of
  - memory: two reads of the logits and one write of the gradient at the triad
    bandwidth that perf/stream measures in the same run with the same thread count;
  - compute: the kernel's exponentials and logarithms (one exp per logit in each of
    its two passes, one log per voxel) at the exp/log throughput perf/explog measures
    for the library's own primitives on a cache-resident buffer, divided by the thread
    count: what the arithmetic costs with no memory traffic and nothing else,
and which of the two binds (one "BOUND dice+ce: ..." line).

    make perf           (or: /usr/bin/python3 perf/bench_losses.py; BENCH_ONLY=dice+ce,focal for some)
"""
import os
import re
import subprocess

import numpy as np
import torch
import torch.nn.functional as F

from benchlib import SHAPE, THREADS, LossCall, catalogue_names, interleaved_min, ratio_line, slref
from smpref import focal_loss_with_logits  # noqa: E402  (tests/ref, on the path through benchlib)

REPS = int(os.environ.get("BENCH_REPS", "5"))
torch.set_num_threads(THREADS)


# ------------------------------------------------------------------ PyTorch eager versions

def onehot(y, C):
    return F.one_hot(y, C).permute(0, y.dim(), *range(1, y.dim())).float()


def t_dice_ce(x, y):
    Cn = x.shape[1]
    p = torch.softmax(x, 1)
    g = onehot(y, Cn)
    ax = list(range(2, x.dim()))
    tp = (p * g).sum(ax)
    den = p.sum(ax) + g.sum(ax)
    dice = (1 - (2 * tp + 1e-5) / (den + 1e-5)).mean()
    return dice + F.cross_entropy(x, y)


def t_focal(x, y, gamma=2.0):
    logp = F.log_softmax(x, 1)
    lpy = logp.gather(1, y.unsqueeze(1))
    return (-(1 - lpy.exp()) ** gamma * lpy).mean()


def t_gdice(x, y):
    Cn = x.shape[1]
    p = torch.softmax(x, 1)
    g = onehot(y, Cn)
    ax = list(range(2, x.dim()))
    sg = g.sum(ax)
    w = 1.0 / (sg * sg)
    inf = torch.isinf(w)
    w = torch.where(inf, torch.zeros_like(w), w)
    w = torch.where(inf, w.max(1, keepdim=True).values.expand_as(w), w)
    num = (w * (p * g).sum(ax)).sum(1)
    den = (w * (p.sum(ax) + sg)).sum(1)
    return (1 - 2 * num / den).mean()


def t_tversky(x, y, a=0.3, b=0.7):
    Cn = x.shape[1]
    p = torch.softmax(x, 1)
    g = onehot(y, Cn)
    ax = list(range(2, x.dim()))
    tp = (p * g).sum(ax)
    fp = (p * (1 - g)).sum(ax)
    fn = ((1 - p) * g).sum(ax)
    return (1 - (tp + 1e-5) / (tp + a * fp + b * fn + 1e-5)).mean()


def t_lovasz(x, y):
    # Berman et al.'s Lovasz-softmax, flattened over the batch, present classes.
    Cn = x.shape[1]
    p = torch.softmax(x, 1).movedim(1, -1).reshape(-1, Cn)
    lab = y.reshape(-1)
    losses = []
    for c in range(Cn):
        fg = (lab == c).float()
        if fg.sum() == 0:
            continue
        err = (fg - p[:, c]).abs()
        err_s, perm = torch.sort(err, descending=True)
        fg_s = fg[perm]
        gts = fg_s.sum()
        inter = gts - fg_s.cumsum(0)
        union = gts + (1 - fg_s).cumsum(0)
        jac = 1 - inter / union
        jac[1:] = jac[1:] - jac[:-1]
        losses.append((err_s * jac).sum())
    return torch.stack(losses).mean()


def t_topk(x, y, k=10.0):
    # nnU-Net's TopKLoss: the mean of the k % largest per-voxel cross-entropies.
    ce = F.cross_entropy(x, y, reduction="none").reshape(-1)
    v, _ = torch.topk(ce, max(1, int(ce.numel() * k / 100)), sorted=False)
    return v.mean()


def t_ohem(x, y, thresh=0.7, min_kept=0.1):
    # mmsegmentation's OHEMPixelSampler (threshold form), min_kept as a fraction of the voxels.
    ce = F.cross_entropy(x, y, reduction="none").reshape(-1)
    hard = torch.exp(-ce.detach()) < thresh
    kmin = int(ce.numel() * min_kept)
    if int(hard.sum()) < kmin:
        v, _ = torch.topk(ce, kmin, sorted=False)
        return v.mean()
    return ce[hard].mean()


def t_focal_smp(x, y, gamma=2.0, normalized=True, reduced_threshold=None):
    # segmentation_models_pytorch's focal_loss_with_logits on the one-hot target (its multilabel mode), no alpha
    return focal_loss_with_logits(x, onehot(y, x.shape[1]), gamma, None, normalized, reduced_threshold)


PEERS = [("dice+ce", t_dice_ce), ("focal", t_focal), ("gdice", t_gdice), ("lovasz", t_lovasz),
         ("tversky", t_tversky), ("topk", t_topk), ("ohem", t_ohem), ("ohem(thresh=0.05)", lambda x, y: t_ohem(x, y, 0.05)),
         ("focal(activation=sigmoid,normalized=true)", t_focal_smp),
         ("focal(activation=sigmoid,reduced_threshold=0.5)",
          lambda x, y: t_focal_smp(x, y, normalized=False, reduced_threshold=0.5))]


def stream_bandwidth():
    exe = os.path.join(slref.BUILD, "perf", "stream")
    out = subprocess.run([exe, str(THREADS), "256"], capture_output=True, text=True, check=True).stdout
    return float(out.strip()) * 1e9


def explog_ns():
    """(ns per exp, ns per log) of one thread: perf/explog times the library's own exp/log primitives
    (src/core/fastexp.h) on a cache-resident buffer, compiled for the best instruction set here."""
    exe = os.path.join(slref.BUILD, "perf", "explog")
    out = subprocess.run([exe, str(THREADS)], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def compute_bound(shape):
    """Seconds the dice+ce kernel's exp/log arithmetic needs on THREADS cores at the machine's exp/log
    throughput: one exp per logit in each of its two passes and one log per voxel (pass 1), no memory
    traffic, nothing else computed. The machine's capability for this kernel's arithmetic, measured with a
    micro-benchmark of the primitives alone, not with the kernel itself."""
    e_ns, l_ns, isa = explog_ns()
    logits, voxels = float(np.prod(shape)), float(np.prod(shape)) / shape[1]
    return (2 * logits * e_ns + voxels * l_ns) * 1e-9 / THREADS, e_ns, l_ns, isa


def main():
    lib = slref.lib()
    rng = np.random.default_rng(0)
    N, Cn = SHAPE[0], SHAPE[1]
    x = rng.normal(0, 2, SHAPE).astype(np.float32)
    y = rng.integers(0, Cn, (N,) + SHAPE[2:]).astype(np.int32)
    g = np.empty_like(x)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = torch.from_numpy(y.astype(np.int64))
    names = catalogue_names(lib)

    bw = stream_bandwidth()
    print("segloss vs PyTorch %s eager, forward+backward, logits %s float32, %d threads, "
          "minimum of %d rounds timed in turn" % (torch.__version__, "x".join(map(str, SHAPE)), THREADS, REPS))
    print("triad bandwidth: %.1f GB/s" % (bw / 1e9))
    print("%-10s %12s %12s %10s" % ("loss", "pytorch", "segloss", "ratio"))
    # e.g. BENCH_ONLY=dice+ce,focal; commas inside a spec's parentheses do not split it
    only = [o for o in re.split(r",(?![^(]*\))", os.environ.get("BENCH_ONLY", "")) if o]
    for spec, fn in PEERS:
        if only and spec not in only:
            continue
        if not all(part.split("(")[0] in names for part in spec.split("+")):
            print("%-10s (not in this build's catalogue)" % spec)
            continue
        try:
            lc = LossCall(lib, spec, x, y, g)
        except ValueError as e:
            print("%-10s error: %s" % (spec, e))
            continue

        def tor():
            xt.grad = None
            fn(xt, yt).backward()

        ts, tt = interleaved_min([lc.call, tor], REPS)
        # same value and gradient? Against the peer in float64. Lovász's gradient is a function of each voxel's
        # rank among the errors: an ulp of difference in p reorders near-equal errors of millions and moves their
        # gradients (0.15 of the largest here, at equal values); tests/ref/test_loss_lovasz.py checks it on small inputs
        x64 = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
        ref = fn(x64, yt)
        ref.backward()
        gd = float(np.abs(x64.grad.numpy() - g).max() / max(np.abs(x64.grad.numpy()).max(), 1e-30))
        del x64
        print("%-10s %10.1f ms %10.1f ms %9.1fx   (|value diff| %.1e, max rel grad diff %.1e)"
              % (spec, tt * 1e3, ts * 1e3, tt / ts, abs(float(ref) - lc.value), gd))
        print(ratio_line(spec, ts, "pytorch-eager", tt))
        if spec == "dice+ce":
            roof = 3 * x.nbytes / bw
            comp, e_ns, l_ns, isa = compute_bound(SHAPE)
            bound = max(roof, comp)
            lib.sl_loss_set_fused(lc.loss, 0)
            tp = interleaved_min([lc.call], REPS)[0]
            lib.sl_loss_set_fused(lc.loss, 1)
            print("%-10s roofline (2 reads of the logits + 1 write of the gradient) %.1f ms: segloss at %.2fx of it;"
                  " plain (unfused) path %.1f ms" % ("", roof * 1e3, ts / roof, tp * 1e3))
            print("%-10s compute bound (2 exp per logit + 1 log per voxel at %.3f / %.3f ns per thread, %s, "
                  "perf/explog) %.1f ms" % ("", e_ns, l_ns, isa, comp * 1e3))
            print("BOUND %s: segloss at %.2fx of the machine's bound (segloss %.4f s; memory %.4f s at %.1f GB/s, "
                  "compute %.4f s: %s binds; threads %d)" % (spec, ts / bound, ts, roof, bw / 1e9, comp,
                                                            "memory" if roof >= comp else "compute", THREADS))
        lc.free()


if __name__ == "__main__":
    main()
