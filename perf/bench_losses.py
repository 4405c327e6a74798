"""Loss forward+backward: segloss against PyTorch eager, same inputs, same process, same threads.

Inputs: logits 2x4x128^3 float32 and a random label map (override with
BENCH_SHAPE=N,C,D,H,W). For each spec the PyTorch version is what a user writes
(MONAI-style code in eager mode, autograd for the gradient); segloss is called
through ctypes on the same numpy buffers with a preallocated gradient. Times are
the minimum of BENCH_REPS rounds (default 5) after a warm-up, segloss and PyTorch
called in turn in each round; the printed figure is the ratio torch/segloss, also as
one "RATIO name: ..." line per loss. For each streaming kernel the machine's bound is
printed too (KERNEL_WORK below lists the ways each can be computed, the library's
first; the bound is that of the library's way, and where another way's is lower,
that one too), the larger of
  - memory: its reads of the logits and labels, what it keeps between passes (the
    probabilities, or a float per voxel for topk/ohem), and one write of the
    gradient, at the triad bandwidth that perf/stream measures in the same run with
    the same thread count;
  - compute: its exponentials and logarithms at the exp/log throughput perf/explog
    measures for the library's own primitives on a cache-resident buffer, divided by
    the thread count: what the arithmetic costs with no memory traffic and nothing else,
which of the two binds, and where PyTorch's time stands against the same bound (one
"BOUND name: ..." line). For ce, a "FLOOR ce: ..." line adds the time of perf/ce_floor, a
stripped kernel doing the least work the loss needs (FMAs allowed, none of the
library's checks): how close any kernel comes here.

    make perf           (or: /usr/bin/python3 perf/bench_losses.py; BENCH_ONLY=dice+ce,focal for some)
"""
import os
import re
import subprocess

import numpy as np
import torch
import torch.nn.functional as F

from benchlib import SHAPE, THREADS, LossCall, Target, catalogue_names, interleaved_min, ratio_line, slref
from smpref import focal_loss_with_logits  # noqa: E402  (tests/ref, on the path through benchlib)

REPS = int(os.environ.get("BENCH_REPS", "5"))
torch.set_num_threads(THREADS)


# ------------------------------------------------------------------ PyTorch eager versions

def onehot(y, C):
    return F.one_hot(y, C).permute(0, y.dim(), *range(1, y.dim())).float()


def probs_onehot(x, y):
    """The softmax p, the one-hot labels g and the spatial axes to sum over."""
    return torch.softmax(x, 1), onehot(y, x.shape[1]), list(range(2, x.dim()))


def region_sums(x, y):
    """Per (sample, class): tp = Σ p·g, Σp, Σg over the voxels."""
    p, g, ax = probs_onehot(x, y)
    return (p * g).sum(ax), p.sum(ax), g.sum(ax)


def t_dice(x, y):
    # MONAI DiceLoss(softmax=True, to_onehot_y=True): per (sample, class), then the mean
    tp, sp, sg = region_sums(x, y)
    return (1 - (2 * tp + 1e-5) / (sp + sg + 1e-5)).mean()


def t_dice_ce(x, y):
    return t_dice(x, y) + F.cross_entropy(x, y)


def t_iou(x, y):
    tp, sp, sg = region_sums(x, y)
    return (1 - (tp + 1e-5) / (sp + sg - tp + 1e-5)).mean()


def t_ce(x, y):
    return F.cross_entropy(x, y)


def t_wce(x, y):
    # balanced weights from the batch's labels, w_c = total / (C count_c), 0 for an absent class
    Cn = x.shape[1]
    cnt = torch.bincount(y.reshape(-1), minlength=Cn).double()
    w = torch.where(cnt > 0, y.numel() / (Cn * cnt), torch.zeros_like(cnt)).to(x.dtype)
    return F.cross_entropy(x, y, weight=w)


def t_bce(x, y):
    # one sigmoid per channel against the label map's one-hot channels (multi-label form)
    return F.binary_cross_entropy_with_logits(x, onehot(y, x.shape[1]))


def t_focal(x, y, gamma=2.0):
    logp = F.log_softmax(x, 1)
    lpy = logp.gather(1, y.unsqueeze(1))
    return (-(1 - lpy.exp()) ** gamma * lpy).mean()


def t_gdice(x, y):
    p, g, ax = probs_onehot(x, y)
    sg = g.sum(ax)
    w = 1.0 / (sg * sg)
    inf = torch.isinf(w)
    w = torch.where(inf, torch.zeros_like(w), w)
    w = torch.where(inf, w.max(1, keepdim=True).values.expand_as(w), w)
    num = (w * (p * g).sum(ax)).sum(1)
    den = (w * (p.sum(ax) + sg)).sum(1)
    return (1 - 2 * num / den).mean()


def tversky_index(x, y, a=0.3, b=0.7):
    # MONAI TverskyLoss's sums, written as it writes them
    p, g, ax = probs_onehot(x, y)
    tp = (p * g).sum(ax)
    fp = (p * (1 - g)).sum(ax)
    fn = ((1 - p) * g).sum(ax)
    return (tp + 1e-5) / (tp + a * fp + b * fn + 1e-5)


def t_tversky(x, y):
    return (1 - tversky_index(x, y)).mean()


def t_focal_tversky(x, y, gamma=0.75):
    return ((1 - tversky_index(x, y)) ** gamma).mean()


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


def t_focal_soft(x, t, gamma=2.0):
    # the softmax focal loss on a soft target t (MONAI's FocalLoss(use_softmax=True) times C): mean over voxels
    logp = F.log_softmax(x, 1)
    return (-((1 - logp.exp()) ** gamma * t * logp).sum(1)).mean()


def t_focal_smp(x, y, gamma=2.0, normalized=True, reduced_threshold=None):
    # segmentation_models_pytorch's focal_loss_with_logits on the one-hot target (its multilabel mode), no alpha
    return focal_loss_with_logits(x, onehot(y, x.shape[1]), gamma, None, normalized, reduced_threshold)


PEERS = [("dice+ce", t_dice_ce), ("focal", t_focal), ("gdice", t_gdice), ("lovasz", t_lovasz),
         ("tversky", t_tversky), ("ce", t_ce), ("wce", t_wce), ("bce", t_bce), ("dice", t_dice), ("iou", t_iou),
         ("focal_tversky", t_focal_tversky), ("topk", t_topk), ("ohem", t_ohem), ("ohem(thresh=0.05)", lambda x, y: t_ohem(x, y, 0.05)),
         ("ce(label_smoothing=0.1)", lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1)),
         ("focal [soft target]", t_focal_soft),
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


class Work:
    """What one way of computing a loss's value and gradient costs: reads of the logits and of the target,
    4-byte values per voxel and per logit written and read back between passes, exponentials per logit,
    logarithms per voxel and per logit. The gradient is written once by every way."""

    def __init__(self, how, logit_reads, target_reads, kept_voxel, kept_logit, exp_logit, log_voxel, log_logit):
        self.how, self.xr, self.tr, self.kv, self.kl = how, logit_reads, target_reads, kept_voxel, kept_logit
        self.exps, self.logs_v, self.logs_l = exp_logit, log_voxel, log_logit

    def seconds(self, shape, soft, bw, explog):
        """(memory, compute) seconds on THREADS cores at bandwidth bw and perf/explog's (ns per exp, per log)."""
        logits = float(np.prod(shape))
        voxels = logits / shape[1]
        target = logits * 4 if soft else voxels * 4  # soft: C floats a voxel; labels: one int32
        mem = ((self.xr + 1) * logits * 4 + self.tr * target + 2 * (self.kv * voxels + self.kl * logits) * 4) / bw
        comp = (self.exps * logits * explog[0] + (self.logs_v * voxels + self.logs_l * logits) * explog[1]) * 1e-9
        return mem, comp / THREADS

    def describe(self):
        kept = (", one float per voxel written and read back" if self.kv else
                ", one float per logit written and read back" if self.kl else "")
        return ("%s: %d read%s of the logits and %d of the target%s + 1 write of the gradient; %d exp per logit%s%s"
                % (self.how, self.xr, "s" if self.xr > 1 else "", self.tr, kept, self.exps,
                   ", 1 log per voxel" if self.logs_v else "",
                   ", %d log per logit" % self.logs_l if self.logs_l else ""))


# The ways each streaming kernel's loss can be computed, the library's first. A region loss (+ a CE) needs
# its sums before any gradient: either two passes that compute the softmax twice, or a first pass that keeps
# the probabilities for the second (fused_dce.c does that: half the exponentials, more memory traffic). A sum
# of log-sum-exps (the CE's value) needs no logarithm per voxel: fused_dce.c takes it as logs of products of
# the sums, a few per block; the focal losses' (1 - p)^gamma log p does. ce and wce need no sums before the
# gradient: one pass (fused_dce.c's focal kernel at gamma = 0, log-sum-exps as logs of products); wce's class
# weights come from the batch's class counts, one more read of the labels first. One-pass kernels also: focal
# and ce with label smoothing on the softmax focal kernel, bce and sigmoid focal on the sigmoid one; topk/ohem
# keep one float per voxel between their two passes. Lovász sorts: no streaming bound.
TWO_PASS_REGION = (Work("keep the probabilities", 1, 2, 0, 1, 1, 0, 0),
                   Work("recompute the softmax", 2, 2, 0, 0, 2, 0, 0))
ONE_PASS_CE = (Work("one pass", 1, 1, 0, 0, 1, 0, 0),)
WCE = (Work("one pass after counting the classes", 1, 2, 0, 0, 1, 0, 0),)
ONE_PASS_FOCAL = (Work("one pass", 1, 1, 0, 0, 1, 1, 0),)
SELECT = (Work("two passes", 2, 2, 1, 0, 2, 1, 0),)
KERNEL_WORK = {"dice+ce": TWO_PASS_REGION, "ce": ONE_PASS_CE, "wce": WCE,
               "dice": TWO_PASS_REGION, "iou": TWO_PASS_REGION, "gdice": TWO_PASS_REGION,
               "tversky": TWO_PASS_REGION, "focal_tversky": TWO_PASS_REGION,
               "focal": ONE_PASS_FOCAL, "bce": (Work("one pass", 1, 1, 0, 0, 1, 0, 1),),
               "ce(label_smoothing=0.1)": ONE_PASS_CE, "focal [soft target]": ONE_PASS_FOCAL,
               "topk": SELECT, "ohem": SELECT, "ohem(thresh=0.05)": SELECT,
               "focal(activation=sigmoid,normalized=true)": (Work("two passes", 2, 2, 0, 0, 2, 0, 2),),
               "focal(activation=sigmoid,reduced_threshold=0.5)": (Work("one pass", 1, 1, 0, 0, 1, 0, 1),)}


def ce_floor(shape):
    """Seconds of perf/ce_floor on this shape and thread count: the least any one-pass softmax CE (value and
    gradient) takes here, FMAs allowed and none of the library's checks (see perf/ce_floor.c); None where it
    does not apply (C outside 2..8, or S not a multiple of 256)."""
    S = int(np.prod(shape[2:]))
    if not 2 <= shape[1] <= 8 or S % 256:
        return None
    exe = os.path.join(slref.BUILD, "perf", "ce_floor")
    out = subprocess.run([exe, str(shape[0]), str(shape[1]), str(S), str(THREADS)], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), out[1]


def kernel_bound(spec, shape, bw, explog):
    """The machine's bound for a spec on THREADS cores, as (memory seconds, compute seconds) of the library's
    way of computing it, the least bound over all the ways (seconds), and what they count. Each way's memory
    traffic at the triad bandwidth measured in this run, and its exponentials and logarithms at the exp/log
    throughput perf/explog measures for the library's own primitives on a cache-resident buffer, divided by
    the thread count (no memory traffic, nothing else computed): the machine's capability for the work,
    measured with micro-benchmarks, not with the kernel; a way's bound is the larger of the two. None where
    no streaming bound applies."""
    if spec not in KERNEL_WORK:
        return None
    soft = spec.endswith(" [soft target]")
    ways = KERNEL_WORK[spec]
    mem, comp = ways[0].seconds(shape, soft, bw, explog)
    least = min(max(w.seconds(shape, soft, bw, explog)) for w in ways)
    what = "; ".join(("the library's way, " if i == 0 and len(ways) > 1 else "") + w.describe()
                     + ("" if i == 0 else " (bound %.4f s)" % max(w.seconds(shape, soft, bw, explog)))
                     for i, w in enumerate(ways))
    return mem, comp, least, "%s; at %.3f / %.3f ns per exp / log per thread (%s, perf/explog)" % (
        what, explog[0], explog[1], explog[2])


def main():
    lib = slref.lib()
    rng = np.random.default_rng(0)
    N, Cn = SHAPE[0], SHAPE[1]
    x = rng.normal(0, 2, SHAPE).astype(np.float32)
    y = rng.integers(0, Cn, (N,) + SHAPE[2:]).astype(np.int32)
    g = np.empty_like(x)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = torch.from_numpy(y.astype(np.int64))
    # a soft target for the specs marked " [soft target]": a softmax of random scores per voxel
    z = np.exp(rng.normal(0, 1, SHAPE))
    soft = (z / z.sum(1, keepdims=True)).astype(np.float32)
    del z
    st = torch.from_numpy(soft)
    names = catalogue_names(lib)

    bw = stream_bandwidth()
    explog = explog_ns()
    print("segloss vs PyTorch %s eager, forward+backward, logits %s float32, %d threads, "
          "minimum of %d rounds timed in turn" % (torch.__version__, "x".join(map(str, SHAPE)), THREADS, REPS))
    print("triad bandwidth: %.1f GB/s" % (bw / 1e9))
    print("%-10s %12s %12s %10s" % ("loss", "pytorch", "segloss", "ratio"))
    # e.g. BENCH_ONLY=dice+ce,focal; commas inside a spec's parentheses do not split it
    only = [o for o in re.split(r",(?![^(]*\))", os.environ.get("BENCH_ONLY", "")) if o]
    for spec, fn in PEERS:
        if only and spec not in only:
            continue
        is_soft = spec.endswith(" [soft target]")
        sl_spec = spec.split(" [")[0]
        if not all(part.split("(")[0] in names for part in sl_spec.split("+")):
            print("%-10s (not in this build's catalogue)" % spec)
            continue
        try:
            lc = LossCall(lib, sl_spec, x, y, g)
        except ValueError as e:
            print("%-10s error: %s" % (spec, e))
            continue
        if is_soft:
            lc.tgt = Target(1, None, soft.ctypes.data, None)
        tgt_t = st if is_soft else yt

        def tor():
            xt.grad = None
            fn(xt, tgt_t).backward()

        ts, tt = interleaved_min([lc.call, tor], REPS)
        # same value and gradient? Against the peer in float64. Lovász's gradient is a function of each voxel's
        # rank among the errors: an ulp of difference in p reorders near-equal errors of millions and moves their
        # gradients (0.15 of the largest here, at equal values); tests/ref/test_loss_lovasz.py checks it on small inputs
        x64 = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
        ref = fn(x64, st.double() if is_soft else yt)
        ref.backward()
        gd = float(np.abs(x64.grad.numpy() - g).max() / max(np.abs(x64.grad.numpy()).max(), 1e-30))
        del x64
        print("%-10s %10.1f ms %10.1f ms %9.1fx   (|value diff| %.1e, max rel grad diff %.1e)"
              % (spec, tt * 1e3, ts * 1e3, tt / ts, abs(float(ref) - lc.value), gd))
        print(ratio_line(spec, ts, "pytorch-eager", tt))
        kb = kernel_bound(spec, SHAPE, bw, explog)
        if kb:
            mem, comp, least, what = kb
            bound = max(mem, comp)
            if spec == "dice+ce":
                lib.sl_loss_set_fused(lc.loss, 0)
                tp = interleaved_min([lc.call], REPS)[0]
                lib.sl_loss_set_fused(lc.loss, 1)
                print("%-10s plain (unfused) path %.1f ms" % ("", tp * 1e3))
            print("%-10s least work: %s" % ("", what))
            print("BOUND %s: segloss at %.2fx of the machine's bound (segloss %.4f s; memory %.4f s at %.1f GB/s, "
                  "compute %.4f s: %s binds; threads %d)%s; PyTorch at %.1fx of it"
                  % (spec, ts / bound, ts, mem, bw / 1e9, comp, "memory" if mem >= comp else "compute", THREADS,
                     "" if least == bound else ", at %.2fx of the least bound of any way (%.4f s)" % (ts / least,
                                                                                                    least),
                     tt / min(bound, least)))
        if spec == "ce" and ce_floor(SHAPE):
            fl, isa = ce_floor(SHAPE)
            print("FLOOR ce: a stripped one-pass kernel (perf/ce_floor, %s, FMAs, no checks) takes %.4f s here: segloss "
                  "at %.2fx of it; 10x PyTorch would need %.4f s, %.2fx of it" % (isa, fl, ts / fl, tt / 10, tt / 10 / fl))
        lc.free()


if __name__ == "__main__":
    main()
