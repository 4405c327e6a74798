"""Boundary losses, forward+backward including the distance maps: segloss against the usual PyTorch + scipy pipeline.

Specs (logits 2x4x128^3 float32, a blobby label map with several lesions per class, logits = 3·onehot + smooth noise;
BENCH_SHAPE=N,C,D,H,W overrides):

  0.5*gdice+0.5*boundary   peer: LIVIAETS-style — scipy one_hot2dist maps (edt(neg)·neg − (edt(pos) − 1)·pos) per
                           sample and foreground class, then 0.5·generalized Dice + 0.5·mean(p·φ) in PyTorch eager
  dice+hausdorff_dt        peer: MONAI-style — DiceLoss(softmax) + HausdorffDTLoss(softmax, include_background=False)
                           whose distance_field runs scipy edt(fg) + edt(bg) per sample and channel on p > 0.5 and on g

Both sides get the same threads (BENCH_THREADS, default 2: torch.set_num_threads and segloss opts.threads; scipy's EDT
is single-threaded and holds the GIL, so a thread pool does not help it). segloss is called through ctypes on the same
numpy buffers with a preallocated gradient; the maps are computed inside every call. Times are the median of
BENCH_REPS runs (default 3) after a warm-up. The printed ratio is peer/segloss; the target is >= 20x.

    /usr/bin/python3 perf/bench_boundary.py       (perf/run.sh runs it with the others)
"""
import os

import numpy as np
import scipy.ndimage as ndi
import torch

from benchlib import SHAPE, THREADS, LossCall, catalogue_names, median_time, slref

REPS = int(os.environ.get("BENCH_REPS", "3"))
torch.set_num_threads(THREADS)


def blobby(rng, shape):
    """Label map (N, spatial): classes 1..C-1 where smoothed noise exceeds its 90 % quantile (later over earlier)."""
    N, Cn = shape[0], shape[1]
    y = np.zeros((N,) + shape[2:], np.int32)
    for n in range(N):
        for c in range(1, Cn):
            f = ndi.gaussian_filter(rng.normal(size=shape[2:]).astype(np.float32), 4, mode="wrap")
            y[n][f > np.quantile(f, 0.9)] = c
    return y


# ------------------------------------------------------------------ the PyTorch + scipy peers

def onehot(y, Cn):
    return torch.nn.functional.one_hot(y, Cn).permute(0, y.dim(), *range(1, y.dim())).double()


def one_hot2dist(mask):
    """LIVIAETS one_hot2dist for one class (numpy, scipy)."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    neg = ~mask
    return (ndi.distance_transform_edt(neg) * neg - (ndi.distance_transform_edt(mask) - 1) * mask).astype(np.float32)


def distance_field(mask):
    """MONAI HausdorffDTLoss.distance_field for one channel of one sample."""
    if mask.any() and not mask.all():
        return (ndi.distance_transform_edt(mask) + ndi.distance_transform_edt(~mask)).astype(np.float32)
    return np.zeros(mask.shape, np.float32)


def t_gdice(p, g):
    """segloss's gdice: weights 1/(Σg)², absent classes take the sample's largest weight, normalised, smooth 1e-5."""
    ax = list(range(2, p.dim()))
    sg = g.sum(ax)
    w = 1.0 / (sg * sg)
    inf = torch.isinf(w)
    w = torch.where(inf, torch.zeros_like(w), w)
    w = torch.where(inf, w.max(1, keepdim=True).values.expand_as(w), w)
    w = w / w.sum(1, keepdim=True)
    num = 2 * (w * (p * g).sum(ax)).sum(1) + 1e-5
    den = (w * (p.sum(ax) + sg)).sum(1) + 1e-5
    return (1 - num / den).mean()


def peer_gdice_boundary(x, y):
    Cn = x.shape[1]
    yn = y.numpy()
    idc = list(range(1, Cn))
    dist = np.stack([np.stack([one_hot2dist(yn[n] == c) for c in idc]) for n in range(yn.shape[0])])
    p = torch.softmax(x, 1)
    g = onehot(y, Cn).to(p.dtype)
    surface = (p[:, idc] * torch.from_numpy(dist)).mean()
    return 0.5 * t_gdice(p, g) + 0.5 * surface


def peer_dice_hausdorff(x, y):
    Cn = x.shape[1]
    p = torch.softmax(x, 1)
    g = onehot(y, Cn).to(p.dtype)
    ax = list(range(2, x.dim()))
    dice = (1 - (2 * (p * g).sum(ax) + 1e-5) / (p.sum(ax) + g.sum(ax) + 1e-5)).mean()
    pm = (p.detach() > 0.5).numpy()
    gm = (g > 0.5).numpy()
    terms = []
    for c in range(1, Cn):
        dp = torch.from_numpy(np.stack([distance_field(pm[n, c]) for n in range(x.shape[0])]))
        dg = torch.from_numpy(np.stack([distance_field(gm[n, c]) for n in range(x.shape[0])]))
        terms.append(((p[:, c] - g[:, c]) ** 2 * (dp ** 2 + dg ** 2)).mean(dim=list(range(1, x.dim() - 1))))
    return dice + torch.stack(terms).mean()


PEERS = [("0.5*gdice+0.5*boundary", peer_gdice_boundary), ("dice+hausdorff_dt", peer_dice_hausdorff)]


def main():
    lib = slref.lib()
    names = catalogue_names(lib)
    rng = np.random.default_rng(0)
    N, Cn = SHAPE[0], SHAPE[1]
    y = blobby(rng, SHAPE)
    # Logits that follow the target with spatially smooth errors, as a network's do: 3·onehot + Gaussian noise
    # smoothed over ~2 voxels (std 1.5), so that the p > 0.5 masks of hausdorff_dt are lesion-like, not speckle.
    noise = np.stack([np.stack([ndi.gaussian_filter(rng.normal(size=SHAPE[2:]).astype(np.float32), 2, mode="wrap")
                                for _ in range(Cn)]) for _ in range(N)])
    noise *= 1.5 / noise.std()
    x = np.ascontiguousarray(3.0 * np.moveaxis(np.eye(Cn, dtype=np.float32)[y], -1, 1) + noise, np.float32)
    g = np.empty_like(x)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = torch.from_numpy(y.astype(np.int64))
    print("segloss vs PyTorch %s eager + scipy maps, forward+backward incl. distance maps, logits %s float32, "
          "%d threads, median of %d" % (torch.__version__, "x".join(map(str, SHAPE)), THREADS, REPS))
    print("load average (1 min) before: %.1f on %d cores" % (os.getloadavg()[0], os.cpu_count()))
    print("%-24s %12s %12s %9s" % ("spec", "peer", "segloss", "ratio"))
    for spec, fn in PEERS:
        missing = [t.split("*")[-1] for t in spec.split("+") if t.split("*")[-1] not in names]
        if missing:
            print("%-24s skipped: %s not in this build's catalogue" % (spec, ", ".join(missing)))
            continue
        try:
            lc = LossCall(lib, spec, x, y, g)
        except ValueError as e:
            print("%-24s error: %s" % (spec, e))
            continue
        ts, cs = median_time(lc.call, REPS)
        # the peer needs no warm-up (scipy and eager PyTorch allocate per call anyway); its last run is compared
        out = {}

        def tor_keep():
            xt.grad = None
            out["v"] = fn(xt, yt)
            out["v"].backward()

        tt, ct = median_time(tor_keep, reps=max(1, REPS - 1), warm=False)
        gd = float(np.abs(xt.grad.numpy() - g).max() / max(np.abs(xt.grad.numpy()).max(), 1e-30))
        print("%-24s %10.0f ms %10.1f ms %8.1fx   (|value diff| %.1e of %.4g, max rel grad diff %.1e)"
              % (spec, tt * 1e3, ts * 1e3, tt / ts, abs(float(out["v"]) - lc.value), lc.value, gd))
        print("%-24s %7.0f ms cpu %7.1f ms cpu %5.1fx   (process CPU time; with %d threads segloss's wall time is"
              " about cpu/%d on an idle machine)" % ("", ct * 1e3, cs * 1e3, ct / cs, THREADS, THREADS))
        lc.free()
    print("load average (1 min) after: %.1f" % os.getloadavg()[0])


if __name__ == "__main__":
    main()
