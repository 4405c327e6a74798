"""iou against a PyTorch reference written from Rahman & Wang 2016 / docs/losses-region.md:
1 − (tp + s_nr)/(Σp + Σg − tp + s_dr) per (sample, class), mean over included groups;
squared=true uses Σp² + Σg², log=true gives −log J. Also checks the MONAI relation:
MONAI's DiceLoss(jaccard=True) is 1 − (2tp + s'_nr)/(2(Σp + Σg − tp) + s'_dr), i.e. ours with
the smoothing halved."""
import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def ref_iou(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
            smooth_dr=1e-5, weight=None, ignore_index=None, squared=False, log=False):
    p, g, m = RR.masked(x, target, C, activation, ignore_index)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    inter = (p * g).sum(axes)
    tot = (p * p + g * g).sum(axes) if squared else (p + g).sum(axes)
    j = (inter + smooth_nr) / (tot - inter + smooth_dr)
    l = -torch.log(j) if log else 1 - j
    return RR.mean_groups(l, C, weight, include_background)


def ref_monai_jaccard(x, target, C, smooth_nr=1e-5, smooth_dr=1e-5, **kw):
    """MONAI DiceLoss(jaccard=True, softmax/sigmoid) transcribed from its documented formula."""
    p = R.probs(x, C)
    g = R.onehot(target, C)
    axes = list(range(2, x.dim()))
    inter = (p * g).sum(axes)
    den = 2.0 * ((p + g).sum(axes) - inter)
    return (1.0 - (2.0 * inter + smooth_nr) / (den + smooth_dr)).mean()


def main():
    chk = slref.Check("iou vs PyTorch")
    spec = lambda p: R.spec_of("iou", p)
    variants = [
        {},
        {"include_background": False, "_channels": (4,)},
        {"batch": True, "squared": True, "_channels": (2,)},
        {"log": True, "_channels": (1, 4), "_kinds": ("soft",)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "weight": [0.5, 2.0], "_channels": (2,)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "iou", spec, ref_iou, variants)
    RR.both_paths(chk, "iou", spec, ref_iou, [{}, {"batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
                          {"ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    RR.edge_cases(chk, "iou", "iou", ref_iou)
    rng = np.random.default_rng(3)
    with R.tmpdir() as tmp:
        for C in (1, 3):
            x, y = R.make_inputs(rng, 2, C, (6, 7), "labels")
            R.check_loss(chk, "iou=MONAI-jaccard", "iou(smooth_nr=0.5,smooth_dr=0.25)", ref_monai_jaccard,
                         {"smooth_nr": 1.0, "smooth_dr": 0.5}, x, y, C, tmp, fd=False)
    RR.bad_spec(chk, "iou(smooth_dr=-1)", ["iou", "smooth_dr"])
    RR.bad_spec(chk, "iou(alpha=1)", ["iou", "alpha"])
    chk.report()


if __name__ == "__main__":
    main()
