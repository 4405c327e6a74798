"""Shared pieces of the boundary-loss reference tests (boundary, hausdorff_dt, dpce, boundary_aware, blob).

Random label maps make degenerate boundaries (every voxel is a boundary voxel), so these tests draw
"blobby" targets instead: smoothed Gaussian noise, thresholded, one field per foreground class, which
gives several connected components of various sizes per class. Distance maps in the references come
from scipy.ndimage.distance_transform_edt (float64), never from segloss.
"""
import numpy as np
import scipy.ndimage as ndi
import torch

import lossref as R
import slref

torch.set_default_dtype(torch.float64)


def blobby_labels(rng, N, C, spatial, frac=0.22, sigma=1.4):
    """Label map (N, *spatial) int64: class c > 0 where its smoothed-noise field exceeds the quantile giving
    about `frac` of the voxels (later classes over earlier ones). C = 1 means labels {0, 1}."""
    hi = 2 if C == 1 else C
    y = np.zeros((N,) + tuple(spatial), np.int64)
    for n in range(N):
        for c in range(1, hi):
            f = ndi.gaussian_filter(rng.normal(size=spatial), sigma, mode="wrap")
            y[n][f > np.quantile(f, 1 - frac)] = c
    return y


def soft_from_labels(rng, y, C):
    """A soft target (N, C, ...) float32 whose 0.5-threshold (and argmax) is the label map y."""
    if C == 1:
        g = np.where(y == 1, rng.uniform(0.55, 1.0, y.shape), rng.uniform(0.0, 0.45, y.shape))
        return g[:, None].astype(np.float32)
    oh = np.moveaxis(np.eye(C)[y], -1, 1)
    noise = rng.dirichlet(np.ones(C), size=y.shape)  # (..., C)
    noise = np.moveaxis(noise, -1, 1)
    return (0.6 * oh + 0.4 * noise).astype(np.float32)


def logits(rng, N, C, spatial, scale=2.0, activation="auto"):
    shape = (N, C) + tuple(spatial)
    if activation == "none":
        if C > 1:
            z = rng.normal(0, 1.5, shape)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return rng.uniform(0.02, 0.98, shape).astype(np.float32)
    return rng.normal(0, scale, shape).astype(np.float32)


def masks_of(target, C):
    """(N, C, ...) bool numpy masks g > 0.5 from a label map or a soft target (torch or numpy)."""
    t = torch.as_tensor(target)
    return (R.onehot(t, C) > 0.5).numpy() if not t.dtype.is_floating_point else (t > 0.5).numpy()


def edt(mask, spacing):
    return ndi.distance_transform_edt(mask, sampling=spacing)


def kervadec_map(mask, spacing):
    """LIVIAETS one_hot2dist for one class: edt(neg)·neg − (edt(pos) − 1)·pos; 0 without a boundary."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape)
    neg = ~mask
    return edt(neg, spacing) * neg - (edt(mask, spacing) - 1) * mask


def monai_field(mask, spacing):
    """MONAI HausdorffDTLoss.distance_field for one channel: edt(fg) + edt(bg); 0 without a boundary."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape)
    return edt(mask, spacing) + edt(~mask, spacing)


def spacing_of(spatial, spacing):
    return tuple(spacing) if spacing is not None else (1.0,) * len(spatial)


def spacing_arg(spacing):
    return ["--spacing", ",".join(repr(float(s)) for s in spacing)] if spacing is not None else []


def shapes(quick):
    """(N, spatial): 2-D and 3-D, one and two samples, big enough for a few blobs."""
    if quick:
        return [(1, (18, 20)), (2, (8, 9, 10))]
    return [(1, (20, 22)), (2, (16, 19)), (1, (9, 10, 11)), (2, (8, 9, 10))]


def targets(rng, N, C, spatial, kind):
    y = blobby_labels(rng, N, C, spatial)
    return y if kind == "labels" else soft_from_labels(rng, y, C)


def hard_labels(target, C, act):
    """What the CE-based boundary losses build their maps from: (N, K, ...) int label maps, K = 1 for the
    multi-class form (the label map; a soft target's argmax) or K = C for the binary form (g_c > 0.5)."""
    t = torch.as_tensor(target)
    binary = act == "sigmoid" or (act == "auto" and C == 1) or (act == "none" and C == 1)
    if binary:
        return (R.onehot(t, C) > 0.5).numpy().astype(np.int64)
    if t.dtype.is_floating_point:
        return t.argmax(dim=1, keepdim=True).numpy()
    return t.numpy()[:, None]


def label_distance(lab, spacing):
    """Distance of every voxel to the nearest voxel of another label (scipy, one EDT per label);
    None when the map has a single label."""
    labels = np.unique(lab)
    if len(labels) < 2:
        return None
    d = np.zeros(lab.shape)
    for l in labels:
        m = lab == l
        d[m] = edt(m, spacing)[m]
    return d


def weighted_ce(x, target, C, act, w, by_weights):
    """Σ w·CE / D with D = the number of terms or Σ w; w is (N, K, ...) as hard_labels."""
    g = R.onehot(target, C)
    binary = act == "sigmoid" or (act in ("auto", "none") and C == 1)
    w = torch.as_tensor(w)
    if binary:
        if act == "none":
            ce = -(g * torch.log(x) + (1 - g) * torch.log1p(-x))
        else:
            ce = torch.nn.functional.binary_cross_entropy_with_logits(x, g, reduction="none")
    else:
        logp = torch.log(x) if act == "none" else torch.log_softmax(x, dim=1)
        ce = -(g * logp).sum(dim=1, keepdim=True)
    num = (w * ce).sum()
    D = w.sum() if by_weights else float(ce.numel())
    return num / D if D > 0 else num * 0


# Under the sanitizers (SL_QUICK=1) the finite-difference checks are left out (they triple the CLI calls, and that pass
# looks for memory errors) and the matrix is smaller.
FD = {"fd": False} if slref.QUICK else {}


def matrix(chk, tmp, rng, variants, run, channels=(1, 2, 3), prepare=None):
    """Runs every variant over shapes, C and target kinds: run(chk, tmp, x, y, C, params). A variant's '_channels'
    restricts C; params 'spacing': 'aniso' becomes an anisotropic spacing of the right length; prepare(rng, x, C, act)
    may adjust the scores. Quick mode: the first three variants, with one target kind each."""
    vs = variants[:3] if slref.QUICK else variants
    for i, v in enumerate(vs):
        for C in v.get("_channels", channels):
            kinds = (("labels", "soft")[(i + C) % 2],) if slref.QUICK else ("labels", "soft")
            for kind in kinds:
                # every shape for the first two variants; one 2-D and one 3-D batch of two for the others
                for N, spatial in (shapes(slref.QUICK) if i < 2 or slref.QUICK else shapes(False)[1::2]):
                    params = {k: val for k, val in v.items() if not k.startswith("_")}
                    if params.get("spacing") == "aniso":
                        params["spacing"] = [2.5, 0.7, 1.3][-len(spatial):]
                    act = params.get("activation", "auto")
                    x = logits(rng, N, C, spatial, activation=act)
                    if prepare:
                        x = prepare(rng, x, C, act)
                    run(chk, tmp, x, targets(rng, N, C, spatial, kind), C, params)
