"""wdice against a PyTorch reference written from docs/losses-region.md: Σ_c w_c (1 − D_c) / Σ_c w_c
over the included classes (per sample, or pooled with batch=true), then the mean over
samples. The weight is required; a list, or inverse/median class frequencies of the batch."""
import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def ref_wdice(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
              smooth_dr=1e-5, weight=None, ignore_index=None):
    s = RR.sums(x, target, C, activation, ignore_index, batch)
    d = RR.dice_score(s, smooth_nr, smooth_dr)
    w = RR.class_weights(target, C, weight, ignore_index)
    return RR.wnorm_groups(1 - d, C, w, include_background)


def main():
    chk = slref.Check("wdice vs PyTorch")
    spec = lambda p: R.spec_of("wdice", p)
    variants = [
        {"weight": [1.0, 5.0, 10.0, 2.0], "_channels": (4,)},
        {"weight": [3.0], "_channels": (1,)},
        {"weight": [1.0, 4.0], "_channels": (2,), "batch": True},
        {"weight": [1.0, 5.0, 10.0, 2.0], "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
        {"weight": "inverse", "_channels": (4,), "_kinds": ("labels",)},
        {"weight": "median", "_channels": (4,), "_kinds": ("labels",), "smooth_nr": 0.0, "smooth_dr": 1.0},
        {"weight": [1.0, 2.0], "ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"weight": [1.0, 2.0, 3.0, 4.0], "_activation": "none", "_channels": (4,), "_kinds": ("labels",)},
        {"weight": [1.0, 2.0, 3.0], "_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "wdice", spec, ref_wdice, variants)
    RR.both_paths(chk, "wdice", spec, ref_wdice, [{"weight": [1.0, 5.0, 10.0, 2.0], "_channels": (4,)},
                          {"weight": [2.0], "_channels": (1,)},
                          {"weight": "inverse", "batch": True, "include_background": False, "_channels": (4,),
                           "_kinds": ("labels",)},
                          {"weight": [1.0, 3.0], "ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"weight": [1.0, 2.0, 3.0], "_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    wl = lambda C: [float(c + 1) for c in range(C)]
    RR.edge_cases(chk, "wdice", lambda C: R.spec_of("wdice", {"weight": wl(C)}), ref_wdice,
                  lambda C: {"weight": wl(C)})
    # inverse weights give an absent class weight 0; with only absent classes the loss is 0
    rng = np.random.default_rng(2)
    with R.tmpdir() as tmp:
        x = rng.normal(0, 2, (2, 4, 6, 7)).astype(np.float32)
        y = rng.integers(0, 4, (2, 6, 7)).astype(np.int64)
        y[y == 2] = 1
        R.check_loss(chk, "wdice inverse-absent-class", "wdice(weight=inverse)", ref_wdice, {"weight": "inverse"},
                     x, y, 4, tmp)
        y[:] = 0
        R.check_loss(chk, "wdice inverse-only-background", "wdice(weight=inverse,include_background=false)",
                     ref_wdice, {"weight": "inverse", "include_background": False}, x, y, 4, tmp)
    RR.same_value(chk, "wdice(equal weights)=dice", "wdice(weight=[2,2,2])", "dice", channels=(3,))
    RR.bad_spec(chk, "wdice", ["wdice", "weight", "required"])
    RR.bad_spec(chk, "wdice(weight=[-1,2])", ["wdice", "weight"])
    RR.bad_spec(chk, "wdice(weight=[0,0,0])", ["wdice", "weight"])
    RR.bad_spec(chk, "wdice(weight=sqrt)", ["wdice", "weight"])
    x = np.zeros((1, 3, 4, 4), np.float32)
    y = np.zeros((1, 4, 4), np.int64)
    RR.bad_run(chk, "wdice(weight=[1,2])", x, y, ["weight", "2", "C = 3"])
    chk.report()


if __name__ == "__main__":
    main()
