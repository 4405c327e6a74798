"""segloss.compat.monai against a transcription of MONAI's functional
metrics (monai/metrics: meandice.DiceHelper, meaniou.compute_iou,
utils.get_mask_edges / get_surface_distance / prepare_spacing,
hausdorff_distance, surface_distance, surface_dice; MONAI >= 1.2) written
here with torch and scipy, including the empty-class results (NaN / inf / 0).
MONAI crops both masks to the bounding box of their union before the
erosion and the EDT; that crop does not change any edge or distance (every
edge voxel lies inside it and the image edge already counts as
background), so the transcription works on the whole image."""
# sanitized: skip (loads libsegloss.so through ctypes)
import numpy as np
import torch
from scipy import ndimage as ndi

import pyref  # noqa: F401  (paths)
import slref

from segloss.compat import monai as sm

torch.set_num_threads(1)
chk = slref.Check("segloss.compat.monai")
rng = np.random.default_rng(13)


# ---- MONAI, transcribed -----------------------------------------------------------
def ref_ignore_background(y_pred, y):
    y = y[:, 1:] if y.shape[1] > 1 else y
    y_pred = y_pred[:, 1:] if y_pred.shape[1] > 1 else y_pred
    return y_pred, y


def ref_dice(y_pred, y, include_background=True, ignore_empty=True, num_classes=None):
    n_pred_ch = y_pred.shape[1] if num_classes is None else num_classes
    first_ch = 0 if include_background else 1
    data = []
    for b in range(y_pred.shape[0]):
        c_list = []
        for c in range(first_ch, n_pred_ch) if n_pred_ch > 1 else [1]:
            x_pred = (y_pred[b, 0] == c) if (y_pred.shape[1] == 1) else y_pred[b, c].bool()
            x = (y[b, 0] == c) if (y.shape[1] == 1) else y[b, c]
            y_o = torch.sum(x)
            if y_o > 0:
                c_list.append((2.0 * torch.sum(torch.masked_select(x, x_pred))) / (y_o + torch.sum(x_pred)))
            elif ignore_empty:
                c_list.append(torch.tensor(float("nan")))
            else:
                c_list.append(torch.tensor(1.0) if y_o + torch.sum(x_pred) <= 0 else torch.tensor(0.0))
        data.append(torch.stack([v.float() for v in c_list]))
    return torch.stack(data)


def ref_iou(y_pred, y, include_background=True, ignore_empty=True):
    if not include_background:
        y_pred, y = ref_ignore_background(y_pred, y)
    reduce_axis = list(range(2, y_pred.ndim))
    intersection = torch.sum(y * y_pred, dim=reduce_axis)
    y_o = torch.sum(y, reduce_axis)
    union = y_o + torch.sum(y_pred, dim=reduce_axis) - intersection
    if ignore_empty:
        return torch.where(y_o > 0, intersection / union, torch.tensor(float("nan")))
    return torch.where(union > 0, intersection / union, torch.tensor(1.0))


def ref_edges(seg):
    seg = seg == 1          # MONAI's label_idx rule on its float tensors
    return ndi.binary_erosion(seg) ^ seg


def ref_surface_distance(seg_pred, seg_gt, spacing):
    if not seg_gt.any():
        dis = np.inf * np.ones(seg_gt.shape)
    else:
        if not seg_pred.any():
            return (np.inf * np.ones(seg_gt.shape))[seg_gt]
        dis = ndi.distance_transform_edt(~seg_gt, sampling=spacing)
    return dis[seg_pred]


def ref_edge_distances(y_pred, y, b, c, spacing, symmetric):
    ep, eg = ref_edges(y_pred[b, c].numpy()), ref_edges(y[b, c].numpy())
    d = [torch.from_numpy(ref_surface_distance(ep, eg, spacing))]
    if symmetric:
        d.append(torch.from_numpy(ref_surface_distance(eg, ep, spacing)))
    return d


def ref_percentile(d, percentile):
    if d.shape == (0,):
        return torch.tensor(float("nan"), dtype=torch.float64)
    if not percentile:
        return d.max()
    return torch.quantile(d, percentile / 100)


def ref_hausdorff(y_pred, y, include_background=False, percentile=None, directed=False, spacing=None):
    if not include_background:
        y_pred, y = ref_ignore_background(y_pred, y)
    B, C = y_pred.shape[:2]
    hd = torch.empty((B, C), dtype=torch.float64)
    for b, c in np.ndindex(B, C):
        ds = ref_edge_distances(y_pred, y, b, c, spacing, not directed)
        hd[b, c] = torch.max(torch.stack([ref_percentile(d, percentile) for d in ds]))
    return hd


def ref_asd(y_pred, y, include_background=False, symmetric=False, spacing=None):
    if not include_background:
        y_pred, y = ref_ignore_background(y_pred, y)
    B, C = y_pred.shape[:2]
    asd = torch.empty((B, C), dtype=torch.float64)
    for b, c in np.ndindex(B, C):
        d = torch.cat(ref_edge_distances(y_pred, y, b, c, spacing, symmetric))
        asd[b, c] = torch.tensor(float("nan")) if d.shape == (0,) else d.mean()
    return asd


def ref_surface_dice(y_pred, y, class_thresholds, include_background=False, spacing=None):
    if not include_background:
        y_pred, y = ref_ignore_background(y_pred, y)
    B, C = y_pred.shape[:2]
    nsd = torch.empty((B, C), dtype=torch.float64)
    for b, c in np.ndindex(B, C):
        d_pg, d_gp = ref_edge_distances(y_pred, y, b, c, spacing, True)
        complete = len(d_pg) + len(d_gp)
        correct = torch.sum(d_pg <= class_thresholds[c]) + torch.sum(d_gp <= class_thresholds[c])
        nsd[b, c] = float("nan") if complete == 0 else correct / complete
    return nsd


# ---------------------------------------------------------------------------------
def close(what, got, want, rtol=2e-6, atol=1e-6):
    """got must be a torch tensor of want's shape; NaN where want is NaN, +inf where want is +inf"""
    chk.true("%s: %s is not a torch tensor" % (what, type(got).__name__), isinstance(got, torch.Tensor))
    # slref.Check compares infinities of one sign as equal; silence its inf - inf warning
    np.seterr(invalid="ignore")
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    chk.true("%s: NaN pattern %s vs %s" % (what, g, w), g.shape == w.shape and np.array_equal(np.isnan(g), np.isnan(w)))
    if g.shape == w.shape:
        chk.close(what, np.where(np.isnan(g), 0, g), np.where(np.isnan(w), 0, w), rtol=rtol, atol=atol,
                  group=what.split(" ")[0])


def onehot_pair(shape, ncls, batch=2, empty_classes=()):
    """(y_pred, y) one-hot float32 (B, C, spatial...) from smooth random label maps; the
    classes in empty_classes are absent from y of item 0 and from y_pred of item 1"""
    ys, ps = [], []
    for b in range(batch):
        f = ndi.gaussian_filter(rng.standard_normal(shape), 2.0)
        g = np.digitize(f, np.quantile(f, np.linspace(0, 1, ncls + 1)[1:-1]))
        f2 = np.roll(f, 1, axis=0) + 0.3 * ndi.gaussian_filter(rng.standard_normal(shape), 1.0)
        p = np.digitize(f2, np.quantile(f2, np.linspace(0, 1, ncls + 1)[1:-1]))
        for c in empty_classes:
            (g if b == 0 else p)[(g if b == 0 else p) == c] = 0
        ys.append(g)
        ps.append(p)
    oh = lambda a: torch.nn.functional.one_hot(torch.from_numpy(np.stack(a)).long(), ncls).movedim(-1, 1).float()
    return oh(ps), oh(ys), torch.from_numpy(np.stack(ps))[:, None], torch.from_numpy(np.stack(ys))[:, None]


def main():
    for shape, sp in [((40, 44), None), ((40, 44), (0.6, 1.7)), ((18, 22, 20), (2.5, 0.8, 0.8)),
                      ((18, 22, 20), 1.5)]:
        yp, yt, lp, lt = onehot_pair(shape, 4, empty_classes=(2,))
        tag = "%dD sp=%s" % (len(shape), sp)
        for ib in (True, False):
            for ie in (True, False):
                close("dice %s bg=%s empty=%s" % (tag, ib, ie), sm.compute_dice(yp, yt, ib, ie), ref_dice(yp, yt, ib, ie),
                      rtol=1e-6, atol=1e-7)
                close("dice labelmaps %s bg=%s empty=%s" % (tag, ib, ie), sm.compute_dice(lp, lt, ib, ie, num_classes=4),
                      ref_dice(lp, lt, ib, ie, num_classes=4), rtol=1e-6, atol=1e-7)
                close("iou %s bg=%s empty=%s" % (tag, ib, ie), sm.compute_iou(yp, yt, ib, ie), ref_iou(yp, yt, ib, ie),
                      rtol=1e-6, atol=1e-7)
        for pc in (None, 0, 50, 95, 100):
            for directed in (False, True):
                close("hd %s q=%s directed=%s" % (tag, pc, directed),
                      sm.compute_hausdorff_distance(yp, yt, percentile=pc, directed=directed, spacing=sp),
                      ref_hausdorff(yp, yt, percentile=pc, directed=directed, spacing=sp))
        close("hd %s with background" % tag, sm.compute_hausdorff_distance(yp, yt, True, spacing=sp),
              ref_hausdorff(yp, yt, True, spacing=sp))
        for sym in (False, True):
            close("asd %s symmetric=%s" % (tag, sym), sm.compute_average_surface_distance(yp, yt, symmetric=sym, spacing=sp),
                  ref_asd(yp, yt, symmetric=sym, spacing=sp))
        thr = [0.0, 1.0, 2.5]
        close("nsd %s" % tag, sm.compute_surface_dice(yp, yt, thr, spacing=sp), ref_surface_dice(yp, yt, thr, spacing=sp))
        close("nsd %s with background" % tag, sm.compute_surface_dice(yp, yt, [1.0] + thr, True, spacing=sp),
              ref_surface_dice(yp, yt, [1.0] + thr, True, spacing=sp))
        # per-item spacing, numpy inputs
        if sp is not None and np.ndim(sp) == 1:
            per = [list(sp), [1.0] * len(shape)]
            want = torch.stack([ref_hausdorff(yp[i:i + 1], yt[i:i + 1], spacing=per[i])[0] for i in range(2)])
            close("hd %s per-item spacing" % tag, sm.compute_hausdorff_distance(yp, yt, spacing=per), want)
        close("hd %s numpy inputs" % tag, sm.compute_hausdorff_distance(yp.numpy(), yt.numpy(), spacing=sp),
              ref_hausdorff(yp, yt, spacing=sp))
    # empty classes: class 2 is absent from y of item 0 and from y_pred of item 1; a class absent
    # from both sides of an item gives NaN
    yp, yt, _, _ = onehot_pair((30, 30), 3, empty_classes=(2,))
    yp[0, 2] = 0
    got = sm.compute_hausdorff_distance(yp, yt)
    chk.true("hd both empty -> NaN, one empty -> inf: %s" % got,
             torch.isnan(got[0, 1]) and torch.isinf(got[1, 1]) and torch.isfinite(got[:, 0]).all())
    got = sm.compute_hausdorff_distance(yp, yt, percentile=95)
    want = ref_hausdorff(yp, yt, percentile=95)
    chk.true("hd95 one side empty -> NaN as torch.quantile of infinities gives: %s vs %s" % (got, want),
             torch.isnan(got[1, 1]) and torch.isnan(want[1, 1]))
    got = sm.compute_average_surface_distance(yp, yt)
    chk.true("asd both empty -> NaN, one empty -> inf: %s" % got, torch.isnan(got[0, 1]) and torch.isinf(got[1, 1]))
    got = sm.compute_surface_dice(yp, yt, [1.0, 1.0])
    chk.true("nsd both empty -> NaN, one empty -> 0: %s" % got, torch.isnan(got[0, 1]) and got[1, 1] == 0)
    got = sm.compute_dice(yp, yt, ignore_empty=False)
    chk.true("dice ignore_empty=False both empty -> 1: %s" % got, got[0, 2] == 1 and got[1, 2] == 0)
    chk.true("dtypes float32", all(f(yp, yt).dtype == torch.float32 for f in
                                   (sm.compute_dice, sm.compute_iou, sm.compute_hausdorff_distance)))
    chk.true("dice float64 y -> float64", sm.compute_dice(yp.double(), yt.double()).dtype == torch.float64)

    # what segloss refuses, and MONAI's argument errors
    def err(what, exc, fn, contains):
        try:
            fn()
        except exc as ex:
            chk.true("%s: %r lacks %r" % (what, str(ex), contains), contains in str(ex))
            return
        except Exception as ex:  # noqa: BLE001
            chk.true("%s: raised %s(%s)" % (what, type(ex).__name__, ex), False)
            return
        chk.true("%s: no exception" % what, False)
    err("taxicab", NotImplementedError, lambda: sm.compute_hausdorff_distance(yp, yt, distance_metric="taxicab"),
        "taxicab")
    err("use_subvoxels", NotImplementedError, lambda: sm.compute_surface_dice(yp, yt, [1, 1], use_subvoxels=True),
        "use_subvoxels")
    err("soft dice input", NotImplementedError, lambda: sm.compute_dice(yp * 0.5, yt), "y_pred")
    err("percentile range", ValueError, lambda: sm.compute_hausdorff_distance(yp, yt, percentile=101), "percentile")
    err("shape mismatch", ValueError, lambda: sm.compute_hausdorff_distance(yp, yt[:, :2]), "same shape")
    err("thresholds count", ValueError, lambda: sm.compute_surface_dice(yp, yt, [1.0]), "class thresholds")
    err("negative threshold", ValueError, lambda: sm.compute_surface_dice(yp, yt, [1.0, -1.0]), ">= 0")
    err("spacing length", ValueError, lambda: sm.compute_hausdorff_distance(yp, yt, spacing=[1.0, 1.0, 1.0]),
        "image dim")
    err("negative spacing (C message)", ValueError, lambda: sm.compute_hausdorff_distance(yp, yt, spacing=[-1.0, 1.0]),
        "spacing")
    chk.report()


if __name__ == "__main__":
    main()
